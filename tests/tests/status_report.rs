//! The processor publishes its counts in its DataFlow's status, through the real
//! API server of `make services`: the processor binary runs with a kubeconfig, as
//! it runs in a pod, and the test reads back what the server stored.

use dataflow_tests::cluster::{Cluster, test_namespace};
use serde_json::json;

#[test]
fn counts_reach_the_dataflow_status() {
    let admin = Cluster::admin();
    admin.install_crd();
    let namespace = test_namespace(&admin, "status");
    // Counts from before a restart, and a field the operator owns.
    admin.create_dataflow(
        &namespace,
        "orders",
        &json!({"source": {"type": "stdin"}, "sink": {"type": "stdout"}}),
        &json!({"phase": "Running", "processedCount": 100, "errorCount": 1}),
    );
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    std::fs::write(
        &spec,
        "source: {type: stdin}\nsink: {type: stdout}\nerrors: {type: stdout}\n",
    )
    .unwrap();
    let input = "{\"a\":1}\n{\"a\":2}\nnot json\n{\"a\":3}\n";

    let output = {
        use std::io::Write;
        let mut child = std::process::Command::new(dataflow_tests::processor_bin())
            .args(["run", "--spec", spec.to_str().unwrap(), "--name", "orders"])
            .args(["--namespace", &namespace])
            .args(["--report-status", "true", "--status-interval-seconds", "1"])
            .env("KUBECONFIG", admin.kubeconfig())
            .env("LOG_LEVEL", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("processed=4"), "{stderr}");

    let dataflow: serde_json::Value = serde_json::from_str(&admin.ok(&[
        "get",
        "-n",
        &namespace,
        "dataflow",
        "orders",
        "-o",
        "json",
        "--show-managed-fields",
    ]))
    .unwrap();
    let status = &dataflow["status"];
    assert_eq!(status["processedCount"], 104, "{status}\n{stderr}");
    assert_eq!(status["errorCount"], 2, "{status}");
    let time = status["lastProcessedTime"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 20, "{time}");
    // The operator's fields stay as they were.
    assert_eq!(status["phase"], "Running");
    // The processor's patches own exactly its three fields, under its own name.
    let managed = dataflow["metadata"]["managedFields"].as_array().unwrap();
    let processor = managed
        .iter()
        .find(|m| m["manager"] == "dataflow-processor")
        .unwrap_or_else(|| panic!("no dataflow-processor entry: {managed:?}"));
    assert_eq!(processor["subresource"], "status");
    let fields: Vec<_> = processor["fieldsV1"]["f:status"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        ["f:errorCount", "f:lastProcessedTime", "f:processedCount"]
    );
}
