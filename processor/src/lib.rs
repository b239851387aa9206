//! The dataflow processor: runs one DataFlow from its source through the Wasm
//! transform chain into its sinks.

pub mod builtins;
pub mod component_image;
pub mod connectors;
pub mod flow;
pub mod inspect;
pub mod local_components;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod progress;
pub mod spec_file;
pub mod status_report;
