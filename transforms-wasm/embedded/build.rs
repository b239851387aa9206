//! Embeds the fused built-ins component (built by `make wasm`) into the binary.

use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-env-changed=DATAFLOW_BUILTINS_WASM");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let source = std::env::var("DATAFLOW_BUILTINS_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            manifest.join("../../target/wasm32-wasip2/wasm/dataflow_builtins.wasm")
        });
    println!("cargo::rerun-if-changed={}", source.display());
    if !source.exists() {
        println!(
            "cargo::error=the built-in transforms component is missing at {}; build it first with `make wasm`",
            source.display()
        );
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("builtins.wasm");
    if let Err(err) = std::fs::copy(&source, &out) {
        println!("cargo::error=cannot copy {}: {err}", source.display());
    }
}
