//! The DataFlow step a project makes, and the one-step chain that runs it in the
//! processor's own host.

use std::path::Path;

use anyhow::Context;
use dataflow_api::{DataFlowSpec, MAX_SCRIPT_BYTES};
use dataflow_wasm_host::{ScriptRuntimes, TransformChain, WasmRuntime};
use serde_json::{Value, json};

use crate::project::{Language, Project};

/// The `transformations` entry running `project`, its code inline (Python,
/// TypeScript) or its component at `component` (Rust).
pub fn inline_step(
    dir: &Path,
    project: &Project,
    component: Option<&Path>,
) -> anyhow::Result<Value> {
    let config = project.config.clone().unwrap_or(Value::Null);
    Ok(match (project.language, component) {
        (Language::Rust, Some(path)) => json!({
            "type": "wasm",
            "wasm": {"path": path.display().to_string(), "config": config},
        }),
        (language, _) => {
            let kind = script_kind(language).context("a Rust project runs its built component")?;
            let code = read_source(dir, project)?;
            json!({"type": kind, kind: {"code": code, "config": config}})
        }
    })
}

/// The step's `type` for a script language; none for Rust (`wasm`).
pub fn script_kind(language: Language) -> Option<&'static str> {
    match language {
        Language::Python => Some("python"),
        Language::Typescript => Some("javascript"),
        Language::Rust => None,
    }
}

/// A Python or TypeScript project's source, bounded as the processor bounds it.
pub fn read_source(dir: &Path, project: &Project) -> anyhow::Result<String> {
    let path = project
        .source_path(dir)
        .context("the project names no source file")?;
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > MAX_SCRIPT_BYTES {
        anyhow::bail!(
            "{} is {} bytes; a source may have at most {MAX_SCRIPT_BYTES}",
            path.display(),
            bytes.len()
        );
    }
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// Builds the chain of the one step, as the processor would: the component is
/// compiled and linked and its constructor runs with the project's config.
pub fn chain(step: Value) -> anyhow::Result<TransformChain> {
    let spec: DataFlowSpec = serde_json::from_value(json!({
        "source": {"type": "stdin"},
        "sink": {"type": "stdout"},
        "transformations": [step],
    }))
    .context("the project's step is not a valid transformation")?;
    dataflow_api::validate(&spec).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = WasmRuntime::new()?;
    // No built-in steps here, so no built-ins component is needed.
    Ok(TransformChain::build(
        &runtime,
        &spec,
        &[],
        &ScriptRuntimes::installed(),
    )?)
}
