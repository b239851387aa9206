//! The dataflow processor: runs one DataFlow from source through the Wasm transform
//! chain into its sinks.

pub mod chain;
pub mod connectors;
pub mod error_record;
pub mod error_type;
pub mod pipeline;
pub mod progress;
pub mod spec;
pub mod status_report;
pub mod telemetry;
pub mod wasm;
