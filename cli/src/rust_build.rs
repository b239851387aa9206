//! `dataflow transform build` of a Rust project: cargo builds the crate's cdylib
//! for `wasm32-wasip2` with the release profile, and the component is found in
//! cargo's own report of what it built.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The target components are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The part of one line of cargo's `--message-format=json` report used here.
#[derive(Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    target: Option<CargoTarget>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
    #[serde(default)]
    manifest_path: Option<PathBuf>,
}

#[derive(Deserialize)]
struct CargoTarget {
    crate_types: Vec<String>,
}

/// Builds the crate at `dir` and returns its component's path.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} is missing: a Rust project is a crate",
            manifest.display()
        );
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(&cargo)
        .args(["build", "--release", "--lib", "--target", TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {}: a Rust transform needs the Rust toolchain (https://rustup.rs) and `rustup target add {TARGET}`",
                cargo.to_string_lossy()
            )
        })?;
    let own_manifest = manifest.canonicalize().unwrap_or(manifest.clone());
    let mut component = None;
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.context("cannot read cargo's output")?;
            let Ok(message) = serde_json::from_str::<CargoMessage>(&line) else {
                continue;
            };
            // Compared canonical, so a project reached through a symlink is still found.
            let ours = message
                .manifest_path
                .as_deref()
                .is_some_and(|m| m.canonicalize().is_ok_and(|m| m == own_manifest));
            let cdylib = message
                .target
                .as_ref()
                .is_some_and(|t| t.crate_types.iter().any(|c| c == "cdylib"));
            if message.reason == "compiler-artifact" && ours && cdylib {
                component = message
                    .filenames
                    .into_iter()
                    .find(|f| f.extension().is_some_and(|e| e == "wasm"));
            }
        }
    }
    let status = child.wait().context("cargo did not finish")?;
    if !status.success() {
        bail!(
            "cargo build failed ({status}); if the target is missing: rustup target add {TARGET}"
        );
    }
    component.with_context(|| {
        format!(
            "cargo built no component: {}'s [lib] needs crate-type = [\"cdylib\", \"rlib\"]",
            manifest.display()
        )
    })
}
