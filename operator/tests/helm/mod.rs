//! Running the real `helm` (installed by `scripts/services.sh start` and named by
//! `DATAFLOW_TEST_HELM`) on the chart.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/dataflow-operator")
}

/// Runs helm with `args`.
pub fn helm(args: &[&str]) -> Output {
    let helm = std::env::var("DATAFLOW_TEST_HELM").unwrap_or_else(|_| {
        panic!("DATAFLOW_TEST_HELM is not set: run `make test`, or `eval \"$(scripts/services.sh start)\"` first")
    });
    Command::new(&helm)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {helm}: {e}"))
}

/// `helm template` of the chart as release `dataflow` in `dataflow-system`, with
/// `overrides` as an extra values file.
pub fn template(overrides: &Value) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.json");
    std::fs::write(&file, overrides.to_string()).unwrap();
    let chart = chart_dir();
    let output = helm(&[
        "template",
        "dataflow",
        chart.to_str().unwrap(),
        "--namespace",
        "dataflow-system",
        "--values",
        file.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(stderr)
    }
}

/// Every document the chart renders with `overrides`.
pub fn render_chart(overrides: &Value) -> Vec<Value> {
    let rendered = template(overrides).unwrap_or_else(|e| panic!("helm template failed: {e}"));
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(&rendered) {
        let value = Value::deserialize(document).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
        if !value.is_null() {
            documents.push(value);
        }
    }
    documents
}
