//! A stand-in for the one corner of the Kubernetes API a processor uses: the
//! status subresource of its own DataFlow. `GET .../status` returns the object;
//! `PATCH .../status` with a JSON merge patch merges into it (a nested object
//! key by key, as RFC 7386 says) and returns it.
//!
//! Why a stand-in: these tests drive the processor binary alone, as it runs
//! outside a cluster with a kubeconfig; they check what it sends, not what an API
//! server does with it. It speaks real HTTP, so the processor's kube client is
//! the one that runs in a pod.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use serde_json::Value;

/// Where the fake serves DataFlow `team/orders`.
pub const STATUS_PATH: &str =
    "/apis/dataflow.dataflow.io/v1/namespaces/team/dataflows/orders/status";

/// The served object and every patch received: `(content type, query, body)`.
#[derive(Clone, Default)]
pub struct FakeStatus {
    /// The DataFlow as the fake holds it.
    pub object: Arc<Mutex<Value>>,
    /// Patches in arrival order.
    pub patches: Arc<Mutex<Vec<(String, String, Value)>>>,
}

impl FakeStatus {
    /// Serves `object` on 127.0.0.1 in `runtime`; writes a kubeconfig pointing
    /// at it into `dir` and returns its path.
    pub fn serve(runtime: &tokio::runtime::Runtime, object: Value, dir: &Path) -> (Self, PathBuf) {
        let fake = Self::default();
        *fake.object.lock().unwrap() = object;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .route(STATUS_PATH, get(get_status).patch(patch_status))
            .with_state(fake.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\nusers: [{{name: processor, user: {{token: test-token}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: processor, namespace: team}}}}]\ncurrent-context: fake\n"
            ),
        )
        .unwrap();
        (fake, kubeconfig)
    }

    /// The object's status now.
    pub fn status(&self) -> Value {
        self.object.lock().unwrap()["status"].clone()
    }
}

async fn get_status(State(fake): State<FakeStatus>) -> axum::Json<Value> {
    axum::Json(fake.object.lock().unwrap().clone())
}

async fn patch_status(
    State(fake): State<FakeStatus>,
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
    merge(&mut object, &patch);
    fake.patches
        .lock()
        .unwrap()
        .push((content_type, query.unwrap_or_default(), patch));
    axum::Json(object.clone())
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(into) = target else {
        return;
    };
    for (key, value) in fields {
        if value.is_null() {
            into.remove(key);
        } else {
            merge(into.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}
