//! The fused built-ins component, embedded at build time in every binary that
//! runs a chain of built-ins (the processor, and the authors' tool for flow
//! tests), so none of them looks for it on disk.

/// The component's bytes (`make wasm` builds it; `build.rs` copies it here).
pub static BUILTINS_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/builtins.wasm"));
