//! `dataflow transform package`: the ConfigMap that ships the transform and the
//! DataFlow step that uses it, its sha256 pinned.

use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::project::{Language, Project};
use crate::step;

/// Most bytes a ConfigMap may hold (the API server refuses more).
pub const CONFIG_MAP_LIMIT: usize = 1024 * 1024;

/// What is shipped: a file's name (the ConfigMap key) and its bytes.
pub struct Payload {
    /// The ConfigMap key.
    pub key: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Payload {
    /// The project's source (Python, TypeScript).
    pub fn source(dir: &Path, project: &Project) -> anyhow::Result<Self> {
        let code = step::read_source(dir, project)?;
        let key = project
            .source
            .as_deref()
            .and_then(|s| Path::new(s).file_name())
            .and_then(|n| n.to_str())
            .context("the project's source has no file name")?
            .to_owned();
        Ok(Self {
            key,
            bytes: code.into_bytes(),
        })
    }

    /// A built component (Rust).
    pub fn component(path: &Path) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let key = path
            .file_name()
            .and_then(|n| n.to_str())
            .context("the component has no file name")?
            .to_owned();
        Ok(Self { key, bytes })
    }

    /// Hex SHA-256 of the bytes.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.bytes))
    }
}

/// The ConfigMap and the commented step, as one YAML text for `kubectl apply -f`.
pub fn manifests(
    project: &Project,
    payload: &Payload,
    namespace: Option<&str>,
) -> anyhow::Result<String> {
    if payload.bytes.len() > CONFIG_MAP_LIMIT {
        bail!(
            "{} is {} bytes; a ConfigMap holds at most {CONFIG_MAP_LIMIT} (for a Rust component: opt-level = \"s\" and fewer dependencies make it smaller)",
            payload.key,
            payload.bytes.len()
        );
    }
    let mut metadata = json!({
        "name": project.name,
        "labels": {"app.kubernetes.io/part-of": "dataflow", "dataflow.dataflow.io/transform": project.name},
    });
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    let mut config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata});
    let reference = json!({"name": project.name, "key": payload.key});
    let sha256 = payload.sha256();
    let config = project.config.clone().unwrap_or(Value::Null);
    let kind = match step::script_kind(project.language) {
        Some(kind) => {
            let text = std::str::from_utf8(&payload.bytes).context("the source is not UTF-8")?;
            config_map["data"] = json!({ &payload.key: text });
            kind
        }
        None => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&payload.bytes);
            config_map["binaryData"] = json!({ &payload.key: encoded });
            "wasm"
        }
    };
    let reference_field = match kind {
        "wasm" => "configMapRef",
        _ => "codeConfigMapRef",
    };
    let config_map = serde_norway::to_string(&config_map).context("cannot write the ConfigMap")?;
    // JSON values are YAML too, and keep the config's numbers as written.
    let commented = format!(
        "#   - type: {kind}\n#     {kind}:\n#       {reference_field}: {reference}\n#       sha256: \"{sha256}\"\n#       config: {config}\n"
    );
    let language = match project.language {
        Language::Rust => "component",
        Language::Python | Language::Typescript => "source",
    };
    Ok(format!(
        "# The {language} of transform {name} (sha256 {sha256}).\n{config_map}---\n# Its step, for the DataFlow's spec.transformations (same namespace as the ConfigMap):\n{commented}",
        name = project.name,
    ))
}
