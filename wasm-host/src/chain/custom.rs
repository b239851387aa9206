//! The chain's user steps: a `type: wasm` component, or a `type: python` or
//! `type: javascript` function run by its runtime component.

use std::path::Path;

use dataflow_api::{ScriptLanguage, ScriptTransformSpec, WasmTransformSpec};

use crate::engine::ComponentPre;
use crate::{ChainError, Limits, ScriptRuntimes, WasmError, WasmRuntime};

/// A user step of the spec, by kind.
pub(super) enum UserStep<'a> {
    /// `type: wasm`.
    Wasm(&'a WasmTransformSpec),
    /// `type: python` or `type: javascript`.
    Script(ScriptLanguage, &'a ScriptTransformSpec),
}

/// What it takes to create a user step's instance.
pub(super) struct CustomStep {
    /// The instance's name in errors and logs.
    pub name: String,
    /// Spec path that errors creating the instance point at.
    pub path: String,
    /// The component (the user's, or the language's runtime), prepared.
    pub pre: ComponentPre,
    /// The configuration text handed to its constructor.
    pub config: String,
    /// Its memory and time limits.
    pub limits: Limits,
}

fn limits(memory_mib: u32, timeout_ms: u32) -> Limits {
    Limits {
        memory_bytes: usize::try_from(memory_mib).unwrap_or(usize::MAX) * 1024 * 1024,
        timeout_ms: u64::from(timeout_ms),
    }
}

/// A `type: wasm` step: its component file, checked against `sha256`.
pub(super) fn wasm_step(
    runtime: &WasmRuntime,
    path: &str,
    wasm: &WasmTransformSpec,
    config: &serde_json::Value,
) -> Result<CustomStep, ChainError> {
    let file = wasm.path.as_deref().ok_or_else(|| ChainError {
        path: format!("{path}.wasm.path"),
        error: WasmError::Config(
            "required to run locally (configMapRef is resolved by the operator)".into(),
        ),
    })?;
    let pre = runtime
        .prepare_file(Path::new(file), wasm.sha256.as_deref())
        .map_err(|error| ChainError {
            path: format!("{path}.wasm"),
            error,
        })?;
    let given = wasm.limits.clone().unwrap_or_default();
    Ok(CustomStep {
        name: file.to_owned(),
        path: format!("{path}.wasm"),
        pre,
        config: match config {
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        },
        limits: limits(given.memory_mib(), given.timeout_ms()),
    })
}

/// The script runtimes of a chain, each prepared once however many steps use it.
pub(super) struct PreparedScripts<'a> {
    runtimes: &'a ScriptRuntimes,
    python: Option<ComponentPre>,
    javascript: Option<ComponentPre>,
}

impl<'a> PreparedScripts<'a> {
    pub(super) fn new(runtimes: &'a ScriptRuntimes) -> Self {
        Self {
            runtimes,
            python: None,
            javascript: None,
        }
    }

    /// A script step: the language's runtime with the step's source.
    pub(super) fn script_step(
        &mut self,
        runtime: &WasmRuntime,
        path: &str,
        index: usize,
        language: ScriptLanguage,
        script: &ScriptTransformSpec,
    ) -> Result<CustomStep, ChainError> {
        let field = language.field();
        let at = format!("{path}.{field}");
        let fail = |error| ChainError {
            path: at.clone(),
            error,
        };
        let config = script.runtime_config(index).ok_or_else(|| {
            fail(WasmError::Config(
                "codeConfigMapRef is resolved by the operator in a cluster; locally, pass --transform-dir with the source".into(),
            ))
        })?;
        if let Some(code) = &script.code {
            script
                .check_sha256(code.as_bytes())
                .map_err(|reason| ChainError {
                    path: format!("{at}.sha256"),
                    error: WasmError::Config(reason),
                })?;
        }
        let prepared = match language {
            ScriptLanguage::Python => &mut self.python,
            ScriptLanguage::Javascript => &mut self.javascript,
        };
        let pre = match prepared {
            Some(pre) => pre.clone(),
            None => {
                let file = self.runtimes.runtime(language).map_err(&fail)?;
                let pre = runtime.prepare_file(&file, None).map_err(&fail)?;
                *prepared = Some(pre.clone());
                pre
            }
        };
        Ok(CustomStep {
            name: format!("{path} ({field})"),
            path: at.clone(),
            pre,
            config: config.to_string(),
            limits: limits(script.memory_mib(), script.timeout_ms()),
        })
    }
}
