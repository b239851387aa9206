//! The dataflow transform SDK.
//!
//! A transform is a type implementing [`Transform`]: it is built once from its JSON
//! configuration and then turns one [`Record`] (a parsed JSON document plus string
//! metadata) into zero or more records. [`export!`] turns such a type into a
//! WebAssembly component implementing the `dataflow:transform` world; natively the
//! same type runs through [`process_batch`], which is what unit tests and benchmarks use.
//!
//! ```ignore
//! use dataflow_transform_sdk::{Record, Transform, TransformError, ConfigError};
//!
//! pub struct Upper;
//! impl Transform for Upper {
//!     fn from_config(_config: &str) -> Result<Self, ConfigError> { Ok(Upper) }
//!     fn apply(&mut self, record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
//!         out.push(record);
//!         Ok(())
//!     }
//! }
//! dataflow_transform_sdk::export!(Upper);
//! ```

pub mod alloc;
mod batch;
mod config;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod guest;
pub mod packed;

pub use batch::process_batch;
pub use config::parse_config;
pub use dataflow_core::{
    ConfigError, ErrorKind, Message, Metadata, Outcome, Record, StepCount, TransformError,
    condition, find_meta, json, path, quoted_excerpt, rename,
};

/// A message transformation.
///
/// Implementations should be pure functions of their configuration and input: when a
/// call fails (trap, timeout, memory limit) the host rebuilds the instance and may
/// replay the messages of that call one by one.
pub trait Transform: Sized + 'static {
    /// Builds the transform from its configuration (JSON text). Errors must name the
    /// offending key; [`parse_config`] does that for serde types.
    fn from_config(config: &str) -> Result<Self, ConfigError>;

    /// Transforms one record, pushing its outputs (none, one or many) onto `out`.
    fn apply(&mut self, record: Record, out: &mut Vec<Record>) -> Result<(), TransformError>;

    /// Whether `apply` never changes a record's document: it only keeps, drops,
    /// repeats or tags records (filter, router). Outputs then carry the input's
    /// bytes exactly as they came, instead of the document written anew.
    fn keeps_payload(&self) -> bool {
        false
    }

    /// Per-step counters since the last call, for a transform that runs several
    /// steps per record (the fused built-ins); the host turns them into metrics per
    /// step. A single-step transform keeps the default: the host counts it itself.
    fn take_step_counts(&mut self) -> Vec<StepCount> {
        Vec::new()
    }
}

/// Exports a [`Transform`] implementation as the component's `transform` resource.
///
/// Expands to nothing when not compiling for WebAssembly, so the crate still
/// builds (and tests) natively.
#[macro_export]
macro_rules! export {
    ($transform:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Component;
            impl $crate::guest::bindings::exports::dataflow::transform::transformer::Guest
                for Component
            {
                type Transform = $crate::guest::Adapter<$transform>;
            }
            impl $crate::guest::bindings::exports::dataflow::transform::packed_transformer::Guest
                for Component
            {
                fn process_packed(
                    target: $crate::guest::bindings::exports::dataflow::transform::transformer::TransformBorrow<'_>,
                    batch: ::std::vec::Vec<u8>,
                ) -> ::std::vec::Vec<u8> {
                    target
                        .get::<$crate::guest::Adapter<$transform>>()
                        .process_packed(&batch)
                }
            }
            impl $crate::guest::bindings::exports::dataflow::transform::step_counters::Guest
                for Component
            {
                fn take() -> ::std::vec::Vec<
                    $crate::guest::bindings::exports::dataflow::transform::step_counters::StepCount,
                > {
                    $crate::guest::take_step_counts()
                }
            }
    $crate::guest::bindings::export!(Component with_types_in $crate::guest::bindings);
        };
    };
}

/// Like [`export!`], but only when the calling crate is built with its `component`
/// feature. The built-in crates use it so they can be linked together into one
/// fused component without clashing exports, and still be built one by one.
#[macro_export]
macro_rules! export_if_component {
    ($transform:ty) => {
        #[cfg(feature = "component")]
        $crate::export!($transform);
    };
}
