//! Custom transforms shipped in ConfigMaps: where they are mounted in the
//! processor pod, the rewrite of `wasm.configMapRef` into `wasm.path`, and of
//! a script's `codeConfigMapRef` into the source inline (`code`).

use std::collections::{BTreeMap, BTreeSet};

use dataflow_api::ScriptLanguage;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Directory under which each transform ConfigMap is mounted, one subdirectory per
/// ConfigMap. It lies outside `/etc/dataflow`, which is itself a ConfigMap volume.
pub const TRANSFORMS_DIR: &str = "/etc/dataflow-transforms";

/// Why a custom transform cannot be mounted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The ConfigMap does not exist.
    #[error("spec.transformations[{index}].{field}: configmap {namespace}/{name} not found")]
    ConfigMapNotFound {
        /// Transformation index.
        index: usize,
        /// The reference's field under the step.
        field: &'static str,
        /// Namespace.
        namespace: String,
        /// ConfigMap name.
        name: String,
    },
    /// The ConfigMap exists without the key.
    #[error(
        "spec.transformations[{index}].{field}: configmap {namespace}/{name} has no key {key:?} in binaryData or data"
    )]
    KeyNotFound {
        /// Transformation index.
        index: usize,
        /// The reference's field under the step.
        field: &'static str,
        /// Namespace.
        namespace: String,
        /// ConfigMap name.
        name: String,
        /// Missing key.
        key: String,
    },
    /// The key holds no usable source.
    #[error("spec.transformations[{index}].{field}: key {key:?} of configmap {name}: {reason}")]
    BadSource {
        /// Transformation index.
        index: usize,
        /// The reference's field under the step.
        field: &'static str,
        /// ConfigMap name.
        name: String,
        /// Key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// One ConfigMap volume of transforms in the processor pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformVolume {
    /// Volume name in the pod.
    pub volume: String,
    /// The ConfigMap.
    pub config_map: String,
    /// Keys projected into the volume (each as a file of the same name).
    pub keys: BTreeSet<String>,
    /// Where the volume is mounted.
    pub mount_path: String,
}

/// The outcome of planning a spec's custom transforms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransformPlan {
    /// Volumes to mount.
    pub volumes: Vec<TransformVolume>,
    /// SHA-256 of each mounted component by `configmap/key`, for the pod hash.
    pub digests: BTreeMap<String, String>,
}

/// Rewrites every `wasm.configMapRef` in `spec` (JSON) into a `wasm.path` under
/// [`TRANSFORMS_DIR`] and returns the volumes that put the files there.
/// `config_maps` holds the fetched ConfigMaps by name; a missing one does not exist.
pub fn plan(
    spec: &mut Value,
    namespace: &str,
    config_maps: &BTreeMap<String, ConfigMap>,
) -> Result<TransformPlan, TransformError> {
    let mut keys_by_map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut digests = BTreeMap::new();
    let Some(transformations) = spec
        .get_mut("transformations")
        .and_then(Value::as_array_mut)
    else {
        return Ok(TransformPlan::default());
    };
    for (index, transformation) in transformations.iter_mut().enumerate() {
        for language in [ScriptLanguage::Python, ScriptLanguage::Javascript] {
            if let Some(script) = transformation
                .get_mut(language.field())
                .and_then(Value::as_object_mut)
            {
                inline_source(
                    script,
                    language,
                    index,
                    namespace,
                    config_maps,
                    &mut digests,
                )?;
            }
        }
        let Some(wasm) = transformation
            .get_mut("wasm")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let Some(reference) = wasm.get("configMapRef") else {
            continue;
        };
        let (name, key) = reference_parts(reference);
        let bytes = referenced_bytes(
            config_maps,
            index,
            "wasm.configMapRef",
            namespace,
            &name,
            &key,
        )?;
        digests.insert(format!("{name}/{key}"), hex::encode(Sha256::digest(bytes)));
        wasm.remove("configMapRef");
        wasm.insert(
            "path".into(),
            Value::String(format!("{TRANSFORMS_DIR}/{name}/{key}")),
        );
        keys_by_map.entry(name).or_default().insert(key);
    }
    let volumes = keys_by_map
        .into_iter()
        .enumerate()
        .map(|(i, (config_map, keys))| TransformVolume {
            volume: format!("transform-{i}"),
            mount_path: format!("{TRANSFORMS_DIR}/{config_map}"),
            config_map,
            keys,
        })
        .collect();
    Ok(TransformPlan { volumes, digests })
}

fn reference_parts(reference: &Value) -> (String, String) {
    let part = |field: &str| reference[field].as_str().unwrap_or_default().to_owned();
    (part("name"), part("key"))
}

/// The bytes a reference names, or which of ConfigMap and key is missing.
fn referenced_bytes<'a>(
    config_maps: &'a BTreeMap<String, ConfigMap>,
    index: usize,
    field: &'static str,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<&'a [u8], TransformError> {
    let config_map = config_maps
        .get(name)
        .ok_or_else(|| TransformError::ConfigMapNotFound {
            index,
            field,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })?;
    component_bytes(config_map, key).ok_or_else(|| TransformError::KeyNotFound {
        index,
        field,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        key: key.to_owned(),
    })
}

/// Replaces a script's `codeConfigMapRef` by the source it names (`code`),
/// so the processor's spec, and so the pod's hash, carries the source itself.
fn inline_source(
    script: &mut serde_json::Map<String, Value>,
    language: ScriptLanguage,
    index: usize,
    namespace: &str,
    config_maps: &BTreeMap<String, ConfigMap>,
    digests: &mut BTreeMap<String, String>,
) -> Result<(), TransformError> {
    let Some(reference) = script.get("codeConfigMapRef") else {
        return Ok(());
    };
    let (name, key) = reference_parts(reference);
    let field = language.code_ref_field();
    let bytes = referenced_bytes(config_maps, index, field, namespace, &name, &key)?;
    let bad = |reason: String| TransformError::BadSource {
        index,
        field,
        name: name.clone(),
        key: key.clone(),
        reason,
    };
    if bytes.len() > dataflow_api::MAX_SCRIPT_BYTES {
        return Err(bad(format!(
            "it is {} bytes; at most {} are accepted",
            bytes.len(),
            dataflow_api::MAX_SCRIPT_BYTES
        )));
    }
    let code = std::str::from_utf8(bytes).map_err(|_| bad("it is not UTF-8 text".into()))?;
    if let Some(expected) = script.get("sha256").and_then(Value::as_str) {
        let actual = hex::encode(Sha256::digest(bytes));
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(bad(format!("it has sha256 {actual}, expected {expected}")));
        }
    }
    digests.insert(format!("{name}/{key}"), hex::encode(Sha256::digest(bytes)));
    script.remove("codeConfigMapRef");
    script.insert("code".into(), Value::String(code.to_owned()));
    Ok(())
}

/// The bytes stored under `key`: `binaryData` first (where `kubectl create
/// configmap --from-file` puts non-UTF-8 files), then `data`.
pub fn component_bytes<'a>(config_map: &'a ConfigMap, key: &str) -> Option<&'a [u8]> {
    if let Some(bytes) = config_map.binary_data.as_ref().and_then(|d| d.get(key)) {
        return Some(&bytes.0);
    }
    config_map
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(String::as_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn config_map(key: &str, bytes: &[u8]) -> ConfigMap {
        ConfigMap {
            binary_data: Some([(key.to_owned(), ByteString(bytes.to_vec()))].into()),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn rewrites_refs_into_paths_and_shares_volumes() {
        let mut spec = json!({"transformations": [
            {"type": "mask", "mask": {"fields": ["a"]}},
            {"type": "wasm", "wasm": {"configMapRef": {"name": "pii", "key": "pii.wasm"}, "limits": {"timeoutMs": 5}}},
            {"type": "wasm", "wasm": {"configMapRef": {"name": "pii", "key": "other.wasm"}}},
            {"type": "wasm", "wasm": {"path": "/opt/local.wasm"}}
        ]});
        let mut maps = BTreeMap::new();
        let mut cm = config_map("pii.wasm", b"\0asm-one");
        cm.data = Some([("other.wasm".to_owned(), "two".to_owned())].into());
        maps.insert("pii".to_owned(), cm);
        let plan = plan(&mut spec, "team", &maps).unwrap();
        assert_eq!(
            spec["transformations"][1]["wasm"],
            json!({"limits": {"timeoutMs": 5}, "path": "/etc/dataflow-transforms/pii/pii.wasm"})
        );
        assert_eq!(
            spec["transformations"][2]["wasm"]["path"],
            "/etc/dataflow-transforms/pii/other.wasm"
        );
        assert_eq!(
            spec["transformations"][3]["wasm"]["path"],
            "/opt/local.wasm"
        );
        assert_eq!(plan.volumes.len(), 1);
        let volume = &plan.volumes[0];
        assert_eq!(volume.volume, "transform-0");
        assert_eq!(volume.mount_path, "/etc/dataflow-transforms/pii");
        assert_eq!(
            volume.keys.iter().collect::<Vec<_>>(),
            ["other.wasm", "pii.wasm"]
        );
        assert_eq!(
            plan.digests["pii/pii.wasm"],
            hex::encode(Sha256::digest(b"\0asm-one"))
        );
    }

    #[test]
    fn missing_map_or_key_is_named() {
        let mut spec = json!({"transformations": [
            {"type": "wasm", "wasm": {"configMapRef": {"name": "pii", "key": "pii.wasm"}}}
        ]});
        let err = plan(&mut spec.clone(), "team", &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.transformations[0].wasm.configMapRef: configmap team/pii not found"
        );
        let maps = [("pii".to_owned(), config_map("x.wasm", b"x"))].into();
        let err = plan(&mut spec, "team", &maps).unwrap_err();
        assert!(err.to_string().contains("has no key \"pii.wasm\""), "{err}");
    }

    #[test]
    fn a_python_source_is_inlined_and_checked() {
        let source = "def transform(doc, ctx):\n    return doc\n";
        let mut spec = json!({"transformations": [
            {"type": "python", "python": {"codeConfigMapRef": {"name": "team-code", "key": "t.py"}, "config": {"a": 1}}}
        ]});
        let cm = ConfigMap {
            data: Some([("t.py".to_owned(), source.to_owned())].into()),
            ..ConfigMap::default()
        };
        let maps = [("team-code".to_owned(), cm)].into();
        let planned = plan(&mut spec, "team", &maps).unwrap();
        assert_eq!(
            spec["transformations"][0]["python"],
            json!({"code": source, "config": {"a": 1}})
        );
        assert!(planned.volumes.is_empty(), "a source needs no volume");
        assert_eq!(
            planned.digests["team-code/t.py"],
            hex::encode(Sha256::digest(source.as_bytes()))
        );

        let mut spec = json!({"transformations": [
            {"type": "python", "python": {"codeConfigMapRef": {"name": "team-code", "key": "t.py"}}}
        ]});
        let maps = [("team-code".to_owned(), config_map("t.py", &[0xff, 0xfe]))].into();
        let err = plan(&mut spec, "team", &maps).unwrap_err().to_string();
        assert_eq!(
            err,
            "spec.transformations[0].python.codeConfigMapRef: key \"t.py\" of configmap team-code: it is not UTF-8 text"
        );
        let err = plan(&mut spec, "team", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("spec.transformations[0].python.codeConfigMapRef: configmap"),
            "{err}"
        );
    }

    #[test]
    fn a_pinned_source_must_have_its_digest() {
        let source = "export function transform(doc) { return doc; }\n";
        let digest = hex::encode(Sha256::digest(source.as_bytes()));
        let cm = ConfigMap {
            data: Some([("t.ts".to_owned(), source.to_owned())].into()),
            ..ConfigMap::default()
        };
        let maps = [("code".to_owned(), cm)].into();
        let step = |sha: &str| {
            json!({"transformations": [
                {"type": "javascript", "javascript": {"codeConfigMapRef": {"name": "code", "key": "t.ts"}, "sha256": sha}}
            ]})
        };
        let mut spec = step(&digest);
        plan(&mut spec, "team", &maps).unwrap();
        assert_eq!(spec["transformations"][0]["javascript"]["code"], source);

        let pinned = "0".repeat(64);
        let err = plan(&mut step(&pinned), "team", &maps)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "spec.transformations[0].javascript.codeConfigMapRef: key \"t.ts\" of configmap code: it has sha256 {digest}, expected {pinned}"
            )
        );
    }
}
