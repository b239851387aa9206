//! Every manifest under `examples/` is one a user can apply as it is: each DataFlow
//! (or DataFlowCron) passes `dataflow-processor validate`, and each SecretRef names a Secret and key
//! the same file defines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// The manifests the README and the seed samples promise.
const EXPECTED: [&str; 15] = [
    "nightly-backfill.yaml",
    "dataflowcron-export.yaml",
    "debezium-to-postgres.yaml",
    "local-demo.yaml",
    "live-demo.yaml",
    "kafka-to-postgres.yaml",
    "kafka-with-secrets.yaml",
    "with-error-sink.yaml",
    "with-resources.yaml",
    "router.yaml",
    "flatten.yaml",
    "kafka-to-clickhouse.yaml",
    "kafka-to-trino.yaml",
    "kafka-to-nessie.yaml",
    "custom-wasm.yaml",
];

fn manifests() -> Vec<PathBuf> {
    let dir = dataflow_tests::workspace().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Every `{"...SecretRef": {"name", "key"}}` under `value`.
fn secret_refs(value: &Value, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key.ends_with("SecretRef") {
                    found.push((
                        child["name"].as_str().unwrap_or_default().to_owned(),
                        child["key"].as_str().unwrap_or_default().to_owned(),
                    ));
                } else {
                    secret_refs(child, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| secret_refs(i, found)),
        _ => {}
    }
}

/// What the operator does to a `configMapRef` transform before the processor sees
/// it: point `path` at the component (here the one `make wasm` built).
fn resolve_config_map_refs(dataflow: &mut Value) {
    let Some(transforms) = dataflow
        .pointer_mut("/spec/transformations")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for t in transforms {
        let Some(wasm) = t.get_mut("wasm").and_then(Value::as_object_mut) else {
            continue;
        };
        if let Some(reference) = wasm.remove("configMapRef") {
            let key = reference["key"].as_str().unwrap();
            let crate_name = key.strip_suffix(".wasm").unwrap();
            let path = dataflow_tests::component(crate_name);
            wasm.insert("path".into(), Value::String(path.display().to_string()));
        }
    }
}

#[test]
fn every_example_validates() {
    let files = manifests();
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in EXPECTED {
        assert!(names.contains(expected), "examples/{expected} is missing");
    }
    let dir = tempfile::tempdir().unwrap();
    for file in &files {
        let docs = documents(file);
        let mut secrets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for doc in docs.iter().filter(|d| d["kind"] == "Secret") {
            let keys = doc["stringData"]
                .as_object()
                .into_iter()
                .flatten()
                .chain(doc["data"].as_object().into_iter().flatten())
                .map(|(k, _)| k.clone())
                .collect();
            secrets.insert(doc["metadata"]["name"].as_str().unwrap().to_owned(), keys);
        }
        let dataflows: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"] == "DataFlow" || d["kind"] == "DataFlowCron")
            .collect();
        assert!(!dataflows.is_empty(), "{}: no DataFlow", file.display());
        for dataflow in dataflows {
            let mut refs = Vec::new();
            secret_refs(dataflow, &mut refs);
            for (name, key) in refs {
                assert!(
                    secrets.get(&name).is_some_and(|keys| keys.contains(&key)),
                    "{}: secret {name} with key {key} is not defined in the file",
                    file.display()
                );
            }
            let mut resolved = dataflow.clone();
            resolve_config_map_refs(&mut resolved);
            let spec = dir.path().join("dataflow.json");
            std::fs::write(&spec, resolved.to_string()).unwrap();
            let output =
                dataflow_tests::processor(&["validate", "--spec", spec.to_str().unwrap()], "");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "{}: {stderr}", file.display());
            assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
        }
    }
}

#[test]
fn examples_with_their_secrets_validate_as_they_are() {
    // A file holding a DataFlow and the Secrets it references is read whole, the
    // Secrets filling the references, as `kubectl apply -f` then the operator would.
    let mut checked = 0;
    for file in manifests() {
        let text = std::fs::read_to_string(&file).unwrap();
        if text.contains("configMapRef") || !text.contains("kind: Secret") {
            continue;
        }
        let output = dataflow_tests::processor(&["validate", "--spec", file.to_str().unwrap()], "");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{}: {stderr}", file.display());
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} examples hold Secrets");
}
