//! Loading a DataFlow spec file: YAML or JSON, a whole manifest or a bare spec.

use std::path::Path;

use dataflow_api::{DataFlowSpec, ValidationErrors, validate};
use serde_json::Value;

/// A spec file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not YAML/JSON, or not of the DataFlow shape.
    #[error("{0}")]
    Parse(String),
    /// The spec parses but breaks rules.
    #[error("{0}")]
    Invalid(#[from] ValidationErrors),
}

/// A loaded, validated spec and the DataFlow's identity.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// `metadata.name` of a manifest, if the file was one.
    pub name: Option<String>,
    /// `metadata.namespace` of a manifest, if set.
    pub namespace: Option<String>,
    /// The spec.
    pub spec: DataFlowSpec,
}

/// Reads, parses and validates a spec file.
pub fn load(path: &Path) -> Result<LoadedSpec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text)
}

/// Parses and validates spec text (YAML or JSON; a `kind: DataFlow` manifest or a
/// bare spec).
pub fn parse(text: &str) -> Result<LoadedSpec, SpecError> {
    let document: Value = serde_norway::from_str(text)
        .map_err(|e| SpecError::Parse(format!("not valid YAML or JSON: {e}")))?;
    let (name, namespace, body) = match &document {
        Value::Object(map) if map.contains_key("kind") || map.contains_key("apiVersion") => {
            let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
            if kind != "DataFlow" {
                return Err(SpecError::Parse(format!(
                    "kind: expected DataFlow, got {kind:?}"
                )));
            }
            let meta = |key: &str| {
                map.get("metadata")
                    .and_then(|m| m.get(key))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let spec = map
                .get("spec")
                .cloned()
                .ok_or_else(|| SpecError::Parse("spec: required".into()))?;
            (meta("name"), meta("namespace"), spec)
        }
        _ => (None, None, document),
    };
    let spec: DataFlowSpec = serde_path_to_error::deserialize(body).map_err(|e| {
        let at = e.path().to_string();
        let at = if at.is_empty() || at == "." {
            "spec".to_owned()
        } else {
            format!("spec.{at}")
        };
        SpecError::Parse(format!("{at}: {}", e.into_inner()))
    })?;
    validate(&spec)?;
    Ok(LoadedSpec {
        name,
        namespace,
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_and_bare_spec() {
        let manifest = "apiVersion: dataflow.dataflow.io/v1\nkind: DataFlow\nmetadata: {name: demo, namespace: ns}\nspec:\n  source: {type: stdin}\n  sink: {type: stdout}\n";
        let loaded = parse(manifest).unwrap();
        assert_eq!(loaded.name.as_deref(), Some("demo"));
        assert_eq!(loaded.namespace.as_deref(), Some("ns"));
        let bare = r#"{"source": {"type": "generator", "generator": {"count": 10}}, "sink": {"type": "stdout"}}"#;
        assert_eq!(
            parse(bare).unwrap().spec.source.generator.unwrap().count,
            Some(10)
        );
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse(
            "source: {type: stdin}\nsink: {type: postgresql, postgresql: {connectionString: x}}\n",
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "spec.sink.postgresql.table: required");
        let err = parse("source: {type: stdin}\nsink: {type: nosuch}\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.sink.type: unknown variant `nosuch`"),
            "{err}"
        );
        let err =
            parse("source: {type: generator, generator: {count: many}}\nsink: {type: stdout}\n")
                .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.source.generator.count: invalid type"),
            "{err}"
        );
        let err = parse("kind: Deployment\nspec: {}\n").unwrap_err();
        assert!(
            err.to_string().starts_with("kind: expected DataFlow"),
            "{err}"
        );
    }
}
