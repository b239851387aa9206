//! Components a manifest names by ConfigMap (`wasm.configMapRef`), found on
//! local disk: outside a cluster no operator resolves the reference, so
//! `validate` and `run` take `--transform-dir` and read the component from
//! `<dir>/<configmap>/<key>` or `<dir>/<key>`.

use std::path::{Path, PathBuf};

use dataflow_api::{DataFlowSpec, TransformationSpec};

/// A ConfigMap component that cannot be found locally.
#[derive(Debug, thiserror::Error)]
#[error(
    "spec.transformations[{index}].wasm.configMapRef: {name}/{key} is resolved by the operator in a cluster; locally, pass --transform-dir with the component at {tried}"
)]
pub struct MissingComponent {
    /// Index of the step.
    pub index: usize,
    /// ConfigMap name.
    pub name: String,
    /// ConfigMap key.
    pub key: String,
    /// The paths looked at, or what to pass.
    pub tried: String,
}

/// Gives every `configMapRef` step without a `path` the path of its component
/// under `dir`. Returns the steps that could not be given one.
pub fn locate(spec: &mut DataFlowSpec, dir: Option<&Path>) -> Vec<MissingComponent> {
    let mut missing = Vec::new();
    for (index, step) in spec.transformations.iter_mut().enumerate() {
        let TransformationSpec::Wasm(wasm) = &mut step.spec else {
            continue;
        };
        let Some(reference) = wasm.config_map_ref.as_ref().filter(|_| wasm.path.is_none()) else {
            continue;
        };
        let candidates: Vec<PathBuf> = match dir {
            Some(dir) => vec![
                dir.join(&reference.name).join(&reference.key),
                dir.join(&reference.key),
            ],
            None => Vec::new(),
        };
        match candidates.iter().find(|p| p.is_file()) {
            Some(found) => wasm.path = Some(found.to_string_lossy().into_owned()),
            None => missing.push(MissingComponent {
                index,
                name: reference.name.clone(),
                key: reference.key.clone(),
                tried: if candidates.is_empty() {
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
                },
            }),
        }
    }
    missing
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
}
