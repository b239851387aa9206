//! The processor publishes its counts in its DataFlow's status.
//!
//! The processor binary talks over real HTTP (a kubeconfig pointing at
//! 127.0.0.1) to the status stand-in of `dataflow_tests::fake_status`; the test
//! checks what the processor sent.

use dataflow_tests::fake_status::FakeStatus;
use serde_json::json;

#[test]
fn counts_reach_the_dataflow_status() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (fake, kubeconfig) = FakeStatus::serve(
        &runtime,
        json!({
            "apiVersion": "dataflow.dataflow.io/v1", "kind": "DataFlow",
            "metadata": {"name": "orders", "namespace": "team"},
            "spec": {"source": {"type": "stdin"}, "sink": {"type": "stdout"}},
            // Counts from before a restart, and a field the operator owns.
            "status": {"phase": "Running", "processedCount": 100, "errorCount": 1}
        }),
        dir.path(),
    );
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
            .args([
                "run",
                "--spec",
                spec.to_str().unwrap(),
                "--name",
                "orders",
                "--namespace",
                "team",
            ])
            .args(["--report-status", "true", "--status-interval-seconds", "1"])
            .env("KUBECONFIG", &kubeconfig)
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

    let patches = fake.patches.lock().unwrap().clone();
    let (content_type, query, last) = patches.last().expect("at least one status patch").clone();
    assert_eq!(content_type, "application/merge-patch+json");
    assert!(query.contains("fieldManager=dataflow-processor"), "{query}");
    let status = last["status"].as_object().unwrap();
    assert_eq!(status["processedCount"], 104);
    assert_eq!(status["errorCount"], 2);
    let time = status["lastProcessedTime"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 20, "{time}");
    // Only the processor's fields: phase and conditions stay the operator's.
    let keys: Vec<_> = status.keys().map(String::as_str).collect();
    assert_eq!(keys, ["processedCount", "errorCount", "lastProcessedTime"]);
    assert_eq!(fake.object.lock().unwrap()["status"]["phase"], "Running");
}
