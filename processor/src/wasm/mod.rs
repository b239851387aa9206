//! The WebAssembly host: one engine per process, components compiled once, one
//! sandboxed store per transform instance.

mod engine;
mod instance;

pub use engine::{BUILTINS_COMPONENT, WasmRuntime};
pub use instance::{CallFailure, FailureKind, HostState, Limits, StepCount, TransformInstance};

/// Host bindings of the `dataflow:transform` world.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transform-component",
    });
}

pub use bindings::dataflow::transform::types::{ErrorKind, Message, Outcome, TransformError};

/// Errors loading or creating components.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The component file could not be read.
    #[error("cannot read component {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file's hash differs from the configured `sha256`.
    #[error("component {path} has sha256 {actual}, expected {expected}")]
    Checksum {
        /// File path.
        path: String,
        /// Configured hash.
        expected: String,
        /// Actual hash.
        actual: String,
    },
    /// The bytes are not a valid component, or do not implement our world.
    #[error("invalid component {name}: {reason}")]
    Invalid {
        /// Which component.
        name: String,
        /// Why.
        reason: String,
    },
    /// The component rejected its configuration.
    #[error("{0}")]
    Config(String),
    /// Instantiation or the constructor trapped.
    #[error("cannot start component {name}: {reason}")]
    Start {
        /// Which component.
        name: String,
        /// Why.
        reason: String,
    },
}
