//! The validating webhook over real HTTPS (rustls server, certificate made for
//! the test) with AdmissionReview v1 JSON as the API server sends it. ConfigMaps
//! of custom transforms come from the fake API server in `support`, since no real
//! API server can run here.

mod support;

use std::sync::Arc;

use dataflow_operator::telemetry::Metrics;
use dataflow_operator::webhook::{PATH, Validator};
use serde_json::{Value, json};
use support::FakeApi;

struct Server {
    url: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start(fake: &FakeApi) -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let validator = Arc::new(Validator::new(
        fake.client(),
        Metrics::new().unwrap(),
        dataflow_operator::grants::ReferencePolicy::default(),
    ));
    tokio::spawn(async move { validator.serve(listener, &cert, &key).await });

    let ca = reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    Server {
        url: format!("https://localhost:{port}{PATH}"),
        client,
        _dir: dir,
    }
}

fn review(spec: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "dataflow.dataflow.io", "version": "v1", "kind": "DataFlow"},
            "resource": {"group": "dataflow.dataflow.io", "version": "v1", "resource": "dataflows"},
            "requestKind": {"group": "dataflow.dataflow.io", "version": "v1", "kind": "DataFlow"},
            "requestResource": {"group": "dataflow.dataflow.io", "version": "v1", "resource": "dataflows"},
            "name": "orders",
            "namespace": "team",
            "operation": "CREATE",
            "userInfo": {"username": "admin", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "dataflow.dataflow.io/v1",
                "kind": "DataFlow",
                "metadata": {"name": "orders", "namespace": "team"},
                "spec": spec
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

async fn answer(server: &Server, spec: Value) -> Value {
    answer_review(server, review(spec)).await
}

async fn answer_review(server: &Server, review: Value) -> Value {
    let response = server
        .client
        .post(&server.url)
        .json(&review)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(
        body["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    body["response"].clone()
}

fn good_spec() -> Value {
    json!({
        "source": {"type": "kafka", "kafka": {"brokers": ["k:9092"], "topic": "t", "consumerGroup": "g"}},
        "sink": {"type": "postgresql", "postgresql": {"table": "t",
                 "connectionStringSecretRef": {"name": "pg", "key": "url"}}},
        "transformations": [{"type": "timestamp"}]
    })
}

#[tokio::test]
async fn valid_dataflow_is_allowed() {
    let fake = FakeApi::default();
    let server = start(&fake).await;
    let response = answer(&server, good_spec()).await;
    assert_eq!(response["allowed"], true, "{response}");
}

#[tokio::test]
async fn every_problem_is_listed_with_its_path() {
    let fake = FakeApi::default();
    let server = start(&fake).await;
    let mut spec = good_spec();
    spec["transformations"] = json!([
        {"type": "timestamp"},
        {"type": "mask", "mask": {"fields": []}},
        {"type": "filter", "filter": {"condition": ""}}
    ]);
    spec["source"]["kafka"]["topic"] = json!("");
    let response = answer(&server, spec).await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.transformations[1].mask.fields: must not be empty"),
        "{message}"
    );
    assert!(
        message.contains("spec.transformations[2].filter"),
        "{message}"
    );
    assert!(message.contains("spec.source.kafka.topic"), "{message}");
}

#[tokio::test]
async fn unknown_fields_are_denied_with_the_path() {
    let fake = FakeApi::default();
    let server = start(&fake).await;
    let mut spec = good_spec();
    spec["source"]["kafka"]["topicz"] = json!("x");
    let response = answer(&server, spec).await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("spec.source.kafka"), "{message}");
    assert!(message.contains("topicz"), "{message}");
}

/// A component of our world: the example transform `make wasm` builds.
fn good_component() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/wasm/pii_redact.wasm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{} (run `make wasm`): {e}", path.display()))
}

#[tokio::test]
async fn wasm_transforms_are_checked_in_their_config_maps() {
    use base64::Engine as _;
    let fake = FakeApi::default();
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    fake.put(
        "/api/v1/namespaces/team/configmaps/transforms",
        json!({"metadata": {"name": "transforms", "namespace": "team"}, "binaryData": {
            "good.wasm": encode(&good_component()),
            // A core module, not a component of our world.
            "core.wasm": encode(b"\0asm\x01\0\0\0"),
        }}),
    );
    let server = start(&fake).await;
    let mut spec = good_spec();
    spec["transformations"] = json!([
        {"type": "wasm", "wasm": {"configMapRef": {"name": "transforms", "key": "good.wasm"},
                                  "config": {}}}
    ]);
    let response = answer(&server, spec.clone()).await;
    assert_eq!(response["allowed"], true, "{response}");

    spec["transformations"] = json!([
        {"type": "wasm", "wasm": {"configMapRef": {"name": "transforms", "key": "core.wasm"}}},
        {"type": "wasm", "wasm": {"configMapRef": {"name": "transforms", "key": "absent.wasm"}}},
        {"type": "wasm", "wasm": {"configMapRef": {"name": "missing", "key": "x.wasm"}}},
        {"type": "wasm", "wasm": {"configMapRef": {"name": "transforms", "key": "good.wasm"},
                                  "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}}
    ]);
    let response = answer(&server, spec).await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.transformations[0].wasm.configMapRef: "),
        "{message}"
    );
    assert!(
        message.contains("spec.transformations[1].wasm.configMapRef: configmap team/transforms has no key \"absent.wasm\""),
        "{message}"
    );
    assert!(
        message.contains(
            "spec.transformations[2].wasm.configMapRef: configmap team/missing not found"
        ),
        "{message}"
    );
    assert!(
        message.contains("spec.transformations[3].wasm.sha256"),
        "{message}"
    );
}

#[tokio::test]
async fn deletes_are_always_allowed() {
    let fake = FakeApi::default();
    let server = start(&fake).await;
    let mut body = review(json!({"nonsense": true}));
    body["request"]["operation"] = json!("DELETE");
    let response: Value = server
        .client
        .post(&server.url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["response"]["allowed"], true);
}

#[tokio::test]
async fn a_reset_annotation_must_parse_and_fit_the_source() {
    let fake = FakeApi::default();
    let server = start(&fake).await;
    let annotated = |value: &str| {
        let mut review = review(good_spec());
        review["request"]["object"]["metadata"]["annotations"] =
            json!({"dataflow.dataflow.io/reset-position": value});
        review
    };
    let response = answer_review(&server, annotated("timestamp:2026-12-01T00:00:00Z#2")).await;
    assert_eq!(response["allowed"], true, "{response}");
    for (value, expected) in [
        ("beginning", "a kafka source moves to earliest"),
        ("yesterday", "use earliest, latest"),
    ] {
        let response = answer_review(&server, annotated(value)).await;
        assert_eq!(response["allowed"], false, "{value}");
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("metadata.annotations[dataflow.dataflow.io/reset-position]")
                && message.contains(expected),
            "{message}"
        );
    }
}

/// A `*SecretRef` into another namespace is denied at admission with its field,
/// whether or not that Secret exists, and allowed once the Secret grants the
/// DataFlow's namespace; only the Secret's metadata is read.
#[tokio::test]
async fn references_into_other_namespaces_need_the_secrets_grant() {
    let fake = FakeApi::default();
    let server = start(&fake).await;
    let mut spec = good_spec();
    spec["sink"]["postgresql"]["connectionStringSecretRef"]["namespace"] = json!("kube-system");
    let response = answer(&server, spec.clone()).await;
    assert_eq!(response["allowed"], false, "{response}");
    let missing = response["status"]["message"].as_str().unwrap().to_owned();
    assert!(
        missing.starts_with("spec.sink.postgresql.connectionStringSecretRef: secret kube-system/pg is in another namespace and does not grant namespace team"),
        "{missing}"
    );

    let secret = "/api/v1/namespaces/kube-system/secrets/pg";
    fake.put(
        secret,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "pg", "namespace": "kube-system"},
               "data": {"url": "c2VjcmV0"}}),
    );
    let response = answer(&server, spec.clone()).await;
    assert_eq!(response["status"]["message"], missing.as_str());

    let mut granting = fake.get(secret).unwrap();
    granting["metadata"]["annotations"] =
        json!({"dataflow.dataflow.io/allowed-namespaces": "team"});
    fake.put(secret, granting);
    let response = answer(&server, spec).await;
    assert_eq!(response["allowed"], true, "{response}");
    let reads: Vec<_> = fake
        .take_calls()
        .into_iter()
        .filter(|c| c.path == secret)
        .collect();
    assert!(!reads.is_empty());
    assert!(
        reads
            .iter()
            .all(|c| c.accept.contains("PartialObjectMetadata")),
        "{:?}",
        reads.iter().map(|c| c.accept.clone()).collect::<Vec<_>>()
    );
}
