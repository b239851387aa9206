//! Transformations written as a function in Python (`type: python`) or
//! JavaScript/TypeScript (`type: javascript`), run by the runtime components the
//! processor ships.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::transform::{ConfigMapKeyRef, WasmLimits};

/// Largest source accepted, in bytes: a ConfigMap holds at most 1 MiB, and the
/// source travels in the processor's spec.
pub const MAX_SCRIPT_BYTES: usize = 512 * 1024;

/// The memory limit of a script step when none is set, MiB: the interpreter's
/// own heap needs more than a Rust component.
pub const DEFAULT_SCRIPT_MEMORY_MIB: u32 = 256;

/// The language of a script step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptLanguage {
    /// `type: python`.
    Python,
    /// `type: javascript` (TypeScript too: types are stripped).
    Javascript,
}

impl ScriptLanguage {
    /// The step's settings block (and `type`): `python` or `javascript`.
    pub fn field(self) -> &'static str {
        match self {
            ScriptLanguage::Python => "python",
            ScriptLanguage::Javascript => "javascript",
        }
    }

    /// The path of the step's source reference under the step, for errors:
    /// `python.codeConfigMapRef` or `javascript.codeConfigMapRef`.
    pub fn code_ref_field(self) -> &'static str {
        match self {
            ScriptLanguage::Python => "python.codeConfigMapRef",
            ScriptLanguage::Javascript => "javascript.codeConfigMapRef",
        }
    }
}

/// A function `transform(doc, ctx)` and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScriptTransformSpec {
    /// The source, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A ConfigMap key holding the source (resolved by the operator, or locally
    /// from `--transform-dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_config_map_ref: Option<ConfigMapKeyRef>,
    /// Expected SHA-256 of the source's UTF-8 bytes (hex), as `dataflow transform
    /// package` prints it; the step fails to load when the source differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Any JSON, handed to the function as `ctx.config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub config: Option<serde_json::Value>,
    /// Resource limits (memory defaults to 256 MiB here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<WasmLimits>,
}

impl ScriptTransformSpec {
    /// Checks `source` against the pinned `sha256`, if any: the reason when they differ.
    pub fn check_sha256(&self, source: &[u8]) -> Result<(), String> {
        let Some(expected) = &self.sha256 else {
            return Ok(());
        };
        let actual = hex::encode(Sha256::digest(source));
        if actual.eq_ignore_ascii_case(expected) {
            Ok(())
        } else {
            Err(format!(
                "the source has sha256 {actual}, expected {expected}"
            ))
        }
    }

    /// The runtime's configuration for step `index`: the source, the user's
    /// config and the step index. `None` while the source is still a reference.
    pub fn runtime_config(&self, index: usize) -> Option<serde_json::Value> {
        let code = self.code.as_ref()?;
        Some(serde_json::json!({
            "code": code,
            "config": self.config.clone().unwrap_or(serde_json::Value::Null),
            "step": index,
        }))
    }

    /// Memory limit in MiB, with this kind's default.
    pub fn memory_mib(&self) -> u32 {
        self.limits
            .as_ref()
            .and_then(|l| l.memory_mib)
            .unwrap_or(DEFAULT_SCRIPT_MEMORY_MIB)
    }

    /// Time limit per call in ms, with the default of every component.
    pub fn timeout_ms(&self) -> u32 {
        self.limits.clone().unwrap_or_default().timeout_ms()
    }
}
