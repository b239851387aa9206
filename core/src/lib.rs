//! The code every part of dataflow shares: the message that moves through a flow,
//! the packed batch layout that carries messages across the WebAssembly boundary,
//! the JSON document transforms work on, field paths, conditions and key renaming.
//!
//! Used alike by the host (processor), by transform components (through the SDK)
//! and by the API crate's validation. It does no I/O and knows nothing of wasmtime.

pub mod condition;
mod error;
pub mod json;
pub mod limits;
mod message;
pub mod packed;
pub mod path;
pub mod rename;

pub use error::{ConfigError, ErrorKind, TransformError, quoted_excerpt};
pub use message::{Message, Metadata, Outcome, Record, StepCount, find_meta, output_capacity};
