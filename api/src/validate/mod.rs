//! Spec validation beyond what the types enforce: every problem is reported with
//! its field path.

mod connectors;
mod execution;
mod resources;

use std::fmt;

use crate::{
    DataFlowSpec, MAX_SCRIPT_BYTES, ScriptTransformSpec, TransformType, TransformationSpec,
    WasmLimits, WasmTransformSpec,
};

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where, e.g. `spec.transformations[2].mask.fields`.
    pub path: String,
    /// What is wrong, e.g. `must not be empty`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a spec (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Validates a spec. Paths start at `spec.`.
pub fn validate(spec: &DataFlowSpec) -> Result<(), ValidationErrors> {
    let mut v = Validator::default();
    v.source("spec.source", &spec.source);
    v.sink("spec.sink", &spec.sink);
    if let Some(errors) = &spec.errors {
        v.sink("spec.errors", errors);
    }
    let mut routers = 0;
    for (i, t) in spec.transformations.iter().enumerate() {
        let path = format!("spec.transformations[{i}]");
        if t.spec.kind() == TransformType::Router {
            routers += 1;
            if routers > 1 {
                v.fail(&path, "only one router is allowed per DataFlow");
            }
        }
        v.transformation(&path, &t.spec);
        if let Some(when) = &t.when
            && let Err(e) = dataflow_core::condition::Condition::parse(when)
        {
            v.fail(&format!("{path}.when"), e.to_string());
        }
    }
    if let Some(resources) = &spec.resources {
        v.resources("spec.resources", resources);
    }
    if let Some(size) = spec.channel_buffer_size
        && !(1..=crate::MAX_CHANNEL_BUFFER_SIZE).contains(&size)
    {
        v.fail(
            "spec.channelBufferSize",
            format!("must be 1 to {}", crate::MAX_CHANNEL_BUFFER_SIZE),
        );
    }
    if let Some(seconds) = spec.progress_deadline_seconds
        && !(crate::resource::MIN_PROGRESS_DEADLINE_SECONDS
            ..=crate::resource::MAX_PROGRESS_DEADLINE_SECONDS)
            .contains(&seconds)
    {
        v.fail(
            "spec.progressDeadlineSeconds",
            format!(
                "must be {} to {}",
                crate::resource::MIN_PROGRESS_DEADLINE_SECONDS,
                crate::resource::MAX_PROGRESS_DEADLINE_SECONDS
            ),
        );
    }
    if let Some(replicas) = spec.replicas
        && replicas < 1
    {
        v.fail("spec.replicas", "must be at least 1");
    }
    if let Some(execution) = &spec.execution {
        v.execution("spec.execution", execution, spec);
    }
    if let Some(observability) = &spec.observability {
        v.observability(observability);
    }
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(v.errors))
    }
}

/// Collects problems as it walks a spec.
#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn observability(&mut self, observability: &crate::ObservabilitySpec) {
        let fields = &observability.mask_fields;
        if fields.len() > crate::MAX_MASK_FIELDS {
            self.fail(
                "spec.observability.maskFields",
                format!("at most {} fields", crate::MAX_MASK_FIELDS),
            );
        }
        for (i, field) in fields.iter().enumerate() {
            if let Err(e) = dataflow_core::path::FieldPath::parse(field) {
                self.fail(
                    &format!("spec.observability.maskFields[{i}]"),
                    e.to_string(),
                );
            }
        }
    }

    fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn path(&mut self, path: &str, text: &str) {
        if let Err(e) = dataflow_core::path::FieldPath::parse(text) {
            self.fail(path, e.to_string());
        }
    }

    fn transformation(&mut self, path: &str, t: &TransformationSpec) {
        let kind = t.kind().as_str();
        if let Some(router) = t.router() {
            for (j, route) in router.routes.iter().enumerate() {
                self.sink(&format!("{path}.router.routes[{j}].sink"), &route.sink);
            }
        }
        if let TransformationSpec::Wasm(wasm) = t {
            self.wasm(&format!("{path}.wasm"), wasm);
        }
        if let Some((language, script)) = t.script() {
            self.script(&format!("{path}.{}", language.field()), script);
        }
        // Built-ins: the same checks the transform runs when it is created.
        if let Some(config) = t.builtin_config()
            && let Err(e) = config.validate()
        {
            let at = match e.key() {
                Some(key) => format!("{path}.{kind}.{key}"),
                None => format!("{path}.{kind}"),
            };
            self.fail(&at, e.reason());
        }
    }

    fn wasm(&mut self, path: &str, w: &WasmTransformSpec) {
        match (&w.path, &w.config_map_ref, &w.image) {
            (None, None, None) => self.fail(
                path,
                "set path (local runs), configMapRef or image (in cluster)",
            ),
            (Some(p), _, _) if p.trim().is_empty() => {
                self.fail(&format!("{path}.path"), "must not be empty")
            }
            (_, Some(_), Some(_)) => self.fail(path, "set configMapRef or image, not both"),
            _ => {}
        }
        self.sha256(path, w.sha256.as_deref());
        if let Some(image) = &w.image {
            if let Some(problem) = image.reference_problem() {
                self.fail(&format!("{path}.image.reference"), problem);
            }
            if image.has_password_credentials() && image.has_docker_config() {
                self.fail(
                    &format!("{path}.image"),
                    "set username/password or dockerConfigSecretRef, not both",
                );
            }
            if w.sha256.is_none() {
                self.fail(
                    &format!("{path}.sha256"),
                    "is required with image: the digest of the component layer pins what runs, whatever the tag points at later",
                );
            }
        }
        self.limits(path, w.limits.as_ref());
    }

    /// Checks a pinned digest's form; whether it is there and well formed.
    fn sha256(&mut self, path: &str, sha: Option<&str>) -> bool {
        match sha {
            Some(sha) if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) => {
                self.fail(
                    &format!("{path}.sha256"),
                    "must be 64 hexadecimal characters",
                );
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    fn script(&mut self, path: &str, s: &ScriptTransformSpec) {
        match (&s.code, &s.code_config_map_ref) {
            (None, None) => self.fail(path, "set code (the source inline) or codeConfigMapRef"),
            (Some(_), Some(_)) => self.fail(path, "set code or codeConfigMapRef, not both"),
            (Some(code), None) if code.len() > MAX_SCRIPT_BYTES => self.fail(
                &format!("{path}.code"),
                format!(
                    "is {} bytes; at most {MAX_SCRIPT_BYTES} are accepted",
                    code.len()
                ),
            ),
            (Some(code), None) if !code.contains("transform") => self.fail(
                &format!("{path}.code"),
                "defines no function transform(doc, ctx)",
            ),
            _ => {}
        }
        if self.sha256(path, s.sha256.as_deref())
            && let Some(code) = &s.code
            && let Err(reason) = s.check_sha256(code.as_bytes())
        {
            self.fail(&format!("{path}.sha256"), reason);
        }
        self.limits(path, s.limits.as_ref());
    }

    fn limits(&mut self, path: &str, limits: Option<&WasmLimits>) {
        if let Some(limits) = limits {
            if limits.memory_mib == Some(0) {
                self.fail(&format!("{path}.limits.memoryMiB"), "must be at least 1");
            }
            if limits.timeout_ms == Some(0) {
                self.fail(&format!("{path}.limits.timeoutMs"), "must be at least 1");
            }
        }
    }
}

#[cfg(test)]
mod tests;
