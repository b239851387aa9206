//! The processor publishes its counts in its DataFlow's status.
//!
//! No Kubernetes API server can run here, so the processor binary talks over real
//! HTTP (kubeconfig pointing at 127.0.0.1) to a small fake that serves the
//! DataFlow status subresource as the API server does: `GET .../status` returns
//! the object, `PATCH .../status` with `application/merge-patch+json` merges into
//! it and returns it. The test checks what the processor sent.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use serde_json::{Value, json};

const STATUS: &str = "/apis/dataflow.dataflow.io/v1/namespaces/team/dataflows/orders/status";

#[derive(Clone, Default)]
struct Fake {
    object: Arc<Mutex<Value>>,
    patches: Arc<Mutex<Vec<(String, String, Value)>>>,
}

async fn get_status(State(fake): State<Fake>) -> axum::Json<Value> {
    axum::Json(fake.object.lock().unwrap().clone())
}

async fn patch_status(
    State(fake): State<Fake>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<Value> {
    let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut object = fake.object.lock().unwrap();
    if let (Some(status), Some(fields)) = (
        object["status"].as_object_mut(),
        patch["status"].as_object(),
    ) {
        for (k, v) in fields {
            status.insert(k.clone(), v.clone());
        }
    }
    fake.patches
        .lock()
        .unwrap()
        .push((content_type, query.unwrap_or_default(), patch));
    axum::Json(object.clone())
}

#[test]
fn counts_reach_the_dataflow_status() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = Fake::default();
    *fake.object.lock().unwrap() = json!({
        "apiVersion": "dataflow.dataflow.io/v1", "kind": "DataFlow",
        "metadata": {"name": "orders", "namespace": "team"},
        "spec": {"source": {"type": "stdin"}, "sink": {"type": "stdout"}},
        // Counts from before a restart, and a field the operator owns.
        "status": {"phase": "Running", "processedCount": 100, "errorCount": 1}
    });
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new()
        .route(STATUS, get(get_status).patch(patch_status))
        .with_state(fake.clone());
    runtime.spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\nusers: [{{name: processor, user: {{token: test-token}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: processor, namespace: team}}}}]\ncurrent-context: fake\n"
        ),
    )
    .unwrap();
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
