//! Components and sources a manifest names by ConfigMap (`wasm.configMapRef`,
//! `python.codeConfigMapRef`, `javascript.codeConfigMapRef`), found on local disk: outside a cluster no operator
//! resolves the reference, so `validate` and `run` take `--transform-dir` and read
//! the file `<dir>/<configmap>/<key>` or `<dir>/<key>`.

use std::path::{Path, PathBuf};

use dataflow_api::{ConfigMapKeyRef, DataFlowSpec, MAX_SCRIPT_BYTES, TransformationSpec};

/// A ConfigMap component or source that cannot be found locally.
#[derive(Debug, thiserror::Error)]
#[error(
    "spec.transformations[{index}].{field}: {name}/{key} is resolved by the operator in a cluster; locally, pass --transform-dir with the {what} at {tried}"
)]
pub struct MissingComponent {
    /// Index of the step.
    pub index: usize,
    /// The reference's field under the step (`wasm.configMapRef`, ...).
    pub field: &'static str,
    /// What the ConfigMap holds: `component` or `source`.
    pub what: &'static str,
    /// ConfigMap name.
    pub name: String,
    /// ConfigMap key.
    pub key: String,
    /// The paths looked at, or what to pass.
    pub tried: String,
}

/// Gives every `configMapRef` step without a `path` the path of its component
/// under `dir`, and every `codeConfigMapRef` step the source read from there.
/// Returns the steps that could not be given one.
pub fn locate(spec: &mut DataFlowSpec, dir: Option<&Path>) -> Vec<MissingComponent> {
    let mut missing = Vec::new();
    for (index, step) in spec.transformations.iter_mut().enumerate() {
        match &mut step.spec {
            TransformationSpec::Wasm(wasm) => {
                let Some(reference) = wasm.config_map_ref.as_ref().filter(|_| wasm.path.is_none())
                else {
                    continue;
                };
                match find(dir, reference) {
                    Ok(found) => wasm.path = Some(found.to_string_lossy().into_owned()),
                    Err(tried) => missing.push(MissingComponent {
                        index,
                        field: "wasm.configMapRef",
                        what: "component",
                        name: reference.name.clone(),
                        key: reference.key.clone(),
                        tried,
                    }),
                }
            }
            other => {
                let Some((language, _)) = other.script() else {
                    continue;
                };
                let field = language.code_ref_field();
                let Some(script) = other.script_mut() else {
                    continue;
                };
                let Some(reference) = script
                    .code_config_map_ref
                    .as_ref()
                    .filter(|_| script.code.is_none())
                else {
                    continue;
                };
                match find(dir, reference).and_then(|file| read_source(&file)) {
                    Ok(code) => script.code = Some(code),
                    Err(tried) => missing.push(MissingComponent {
                        index,
                        field,
                        what: "source",
                        name: reference.name.clone(),
                        key: reference.key.clone(),
                        tried,
                    }),
                }
            }
        }
    }
    missing
}

/// The file for `reference` under `dir`, or what was looked at.
fn find(dir: Option<&Path>, reference: &ConfigMapKeyRef) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match dir {
        Some(dir) => vec![
            dir.join(&reference.name).join(&reference.key),
            dir.join(&reference.key),
        ],
        None => Vec::new(),
    };
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    Err(if candidates.is_empty() {
        format!(
            "<dir>/{}/{} or <dir>/{}",
            reference.name, reference.key, reference.key
        )
    } else {
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    })
}

/// A source file: UTF-8, at most [`MAX_SCRIPT_BYTES`].
fn read_source(file: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let shown = file.display();
    let opened = std::fs::File::open(file).map_err(|e| format!("{shown} ({e})"))?;
    let mut bytes = Vec::new();
    opened
        .take(MAX_SCRIPT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{shown} ({e})"))?;
    if bytes.len() > MAX_SCRIPT_BYTES {
        return Err(format!("{shown} (larger than {MAX_SCRIPT_BYTES} bytes)"));
    }
    String::from_utf8(bytes).map_err(|_| format!("{shown} (not UTF-8 text)"))
}

/// Takes the steps in `missing` out of `spec`, so that the rest can be checked.
pub fn without(spec: &DataFlowSpec, missing: &[MissingComponent]) -> DataFlowSpec {
    let mut rest = spec.clone();
    let mut index = 0;
    rest.transformations.retain(|_| {
        let keep = !missing.iter().any(|m| m.index == index);
        index += 1;
        keep
    });
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DataFlowSpec {
        serde_norway::from_str(
            r#"
source: {type: stdin}
sink: {type: stdout}
transformations:
  - {type: timestamp}
  - {type: wasm, wasm: {configMapRef: {name: pii, key: pii.wasm}}}
  - {type: wasm, wasm: {path: /elsewhere/x.wasm, configMapRef: {name: x, key: x.wasm}}}
"#,
        )
        .unwrap()
    }

    fn path(spec: &DataFlowSpec, index: usize) -> Option<String> {
        match &spec.transformations[index].spec {
            TransformationSpec::Wasm(wasm) => wasm.path.clone(),
            _ => None,
        }
    }

    #[test]
    fn a_component_is_found_under_its_configmap_or_its_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pii")).unwrap();
        std::fs::write(dir.path().join("pii/pii.wasm"), b"\0asm").unwrap();
        let mut found = spec();
        assert!(locate(&mut found, Some(dir.path())).is_empty());
        assert_eq!(
            path(&found, 1).unwrap(),
            dir.path().join("pii/pii.wasm").display().to_string()
        );
        assert_eq!(path(&found, 2).unwrap(), "/elsewhere/x.wasm", "a path wins");

        std::fs::remove_dir_all(dir.path().join("pii")).unwrap();
        std::fs::write(dir.path().join("pii.wasm"), b"\0asm").unwrap();
        let mut flat = spec();
        assert!(locate(&mut flat, Some(dir.path())).is_empty());
        assert_eq!(
            path(&flat, 1).unwrap(),
            dir.path().join("pii.wasm").display().to_string()
        );
    }

    #[test]
    fn a_missing_component_is_named_and_can_be_left_out() {
        let mut spec = spec();
        let missing = locate(&mut spec, None);
        assert_eq!(missing.len(), 1);
        let text = missing[0].to_string();
        assert!(
            text.contains("spec.transformations[1].wasm.configMapRef: pii/pii.wasm"),
            "{text}"
        );
        assert!(text.contains("--transform-dir"), "{text}");
        let rest = without(&spec, &missing);
        assert_eq!(rest.transformations.len(), 2);
        assert_eq!(path(&rest, 1).unwrap(), "/elsewhere/x.wasm");
    }

    #[test]
    fn a_python_source_is_read_from_the_directory_and_bounded() {
        let yaml = "source: {type: stdin}\nsink: {type: stdout}\ntransformations:\n  - {type: python, python: {codeConfigMapRef: {name: team, key: t.py}}}\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("team")).unwrap();
        let source = "def transform(doc, ctx):\n    return doc\n";
        std::fs::write(dir.path().join("team/t.py"), source).unwrap();
        let mut spec: DataFlowSpec = serde_norway::from_str(yaml).unwrap();
        assert!(locate(&mut spec, Some(dir.path())).is_empty());
        let TransformationSpec::Python(script) = &spec.transformations[0].spec else {
            panic!("not a python step");
        };
        assert_eq!(script.code.as_deref(), Some(source));

        std::fs::write(
            dir.path().join("team/t.py"),
            vec![b'#'; MAX_SCRIPT_BYTES + 1],
        )
        .unwrap();
        let mut spec: DataFlowSpec = serde_norway::from_str(yaml).unwrap();
        let missing = locate(&mut spec, Some(dir.path()));
        let text = missing[0].to_string();
        assert!(
            text.starts_with("spec.transformations[0].python.codeConfigMapRef: team/t.py")
                && text.contains("larger than"),
            "{text}"
        );
    }
}
