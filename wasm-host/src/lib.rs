//! The WebAssembly host of dataflow: one engine per process, components compiled
//! once (and cached on disk by content), one sandboxed store per transform instance
//! with memory and time limits, and the transform chain that runs a DataFlow's
//! transformations with lineage.
//!
//! Used by the processor (to run flows) and by the operator's webhook (to check an
//! uploaded component links against our world). It knows nothing of connectors.

mod abi;
mod cache;
mod chain;
mod clock;
mod component_log;
mod engine;
mod epoch;
mod failure;
mod http_refusal;
mod instance;
mod runtimes;
mod state;

pub use cache::cache_dir;
pub use chain::{
    CALL_PAYLOAD_BYTES, ChainError, ChainFailure, ChainOutput, ChainProbe, GroupRun, PART_BYTES,
    TransformChain, call_chunks,
};
pub use dataflow_core::packed::Inputs;
pub use engine::{ComponentPre, MAX_COMPONENT_BYTES, WasmRuntime};
pub use failure::{CallFailure, FailureKind};
pub use instance::TransformInstance;
pub use runtimes::{JAVASCRIPT_RUNTIME, PYTHON_RUNTIME, ScriptRuntimes};
pub use state::Limits;

/// Host bindings of the `dataflow:transform` world.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transform-component",
    });
}

/// Errors loading or creating components.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The component file could not be read.
    #[error("cannot read component {path}: {cause}")]
    Read {
        /// File path.
        path: String,
        /// Cause (shown in the message, so not an error `source`).
        cause: std::io::Error,
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
