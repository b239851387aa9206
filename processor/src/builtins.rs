//! The fused built-ins component, embedded in the processor at build time.

pub use dataflow_builtins_embedded::BUILTINS_COMPONENT;
