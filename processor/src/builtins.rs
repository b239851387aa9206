//! The fused built-ins component, embedded in the processor at build time.

/// The component's bytes (`make wasm` builds it; `build.rs` copies it here).
pub static BUILTINS_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/builtins.wasm"));
