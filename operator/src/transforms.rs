//! Custom transforms shipped in ConfigMaps: where they are mounted in the
//! processor pod, and the rewrite of `wasm.configMapRef` into `wasm.path`.

use std::collections::{BTreeMap, BTreeSet};

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
    #[error(
        "spec.transformations[{index}].wasm.configMapRef: configmap {namespace}/{name} not found"
    )]
    ConfigMapNotFound {
        /// Transformation index.
        index: usize,
        /// Namespace.
        namespace: String,
        /// ConfigMap name.
        name: String,
    },
    /// The ConfigMap exists without the key.
    #[error(
        "spec.transformations[{index}].wasm.configMapRef: configmap {namespace}/{name} has no key {key:?} in binaryData or data"
    )]
    KeyNotFound {
        /// Transformation index.
        index: usize,
        /// Namespace.
        namespace: String,
        /// ConfigMap name.
        name: String,
        /// Missing key.
        key: String,
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
        let Some(wasm) = transformation
            .get_mut("wasm")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let Some(reference) = wasm.get("configMapRef") else {
            continue;
        };
        let name = reference["name"].as_str().unwrap_or_default().to_owned();
        let key = reference["key"].as_str().unwrap_or_default().to_owned();
        let config_map =
            config_maps
                .get(&name)
                .ok_or_else(|| TransformError::ConfigMapNotFound {
                    index,
                    namespace: namespace.to_owned(),
                    name: name.clone(),
                })?;
        let bytes =
            component_bytes(config_map, &key).ok_or_else(|| TransformError::KeyNotFound {
                index,
                namespace: namespace.to_owned(),
                name: name.clone(),
                key: key.clone(),
            })?;
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
}
