//! The controller's wiring end to end: `controller::run` with its watches, against
//! the fake API server of `support` (no real API server can run here). The fake
//! serves LIST and WATCH as the API server does: resource versions, watch events
//! as newline-delimited JSON, streams that end and are resumed, and no event for a
//! patch that changes nothing.

mod support;

use std::sync::Arc;
use std::time::Duration;

use dataflow_api::references::ObjectKey;
use dataflow_operator::controller;
use dataflow_operator::desired::ProcessorSettings;
use dataflow_operator::grants::ReferencePolicy;
use dataflow_operator::hash_key::HashKey;
use dataflow_operator::reconcile::Context;
use dataflow_operator::scope::Scope;
use dataflow_operator::telemetry::Metrics;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use support::{FakeApi, until};
use tokio_util::sync::CancellationToken;

fn dataflow(name: &str, secret: &str) -> Value {
    json!({
        "apiVersion": "dataflow.dataflow.io/v1",
        "kind": "DataFlow",
        "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}"), "generation": 1,
                     "finalizers": ["dataflow.dataflow.io/cleanup"]},
        "spec": {
            "source": {"type": "kafka", "kafka": {"brokers": ["k:9092"], "topic": name, "consumerGroup": "g"}},
            "sink": {"type": "postgresql", "postgresql": {"table": name,
                     "connectionStringSecretRef": {"name": secret, "key": "url"}}}
        }
    })
}

fn secret(name: &str, value: &str) -> Value {
    // "url" -> base64 of `value` (ASCII letters only, padded by hand).
    let encoded = base64_of(value);
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "team"},
           "data": {"url": encoded}})
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn operator_deployment(image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "operator", "namespace": "ops"},
           "spec": {"selector": {"matchLabels": {"app": "op"}},
                    "template": {"metadata": {"labels": {"app": "op"}},
                                 "spec": {"containers": [{"name": "operator", "image": image}]}}}})
}

fn applies_to(calls: &[support::Call], name: &str) -> usize {
    let path = format!("/apis/apps/v1/namespaces/team/deployments/dataflow-{name}");
    calls
        .iter()
        .filter(|c| c.method == "PATCH" && c.path == path)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_wake_exactly_the_dataflows_that_use_them() {
    let fake = FakeApi::default();
    fake.put(
        "/api/v1/namespaces/team/secrets/s1",
        secret("s1", "postgres://one"),
    );
    fake.put(
        "/api/v1/namespaces/team/secrets/s2",
        secret("s2", "postgres://two"),
    );
    fake.put(
        "/apis/dataflow.dataflow.io/v1/namespaces/team/dataflows/a",
        dataflow("a", "s1"),
    );
    fake.put(
        "/apis/dataflow.dataflow.io/v1/namespaces/team/dataflows/b",
        dataflow("b", "s2"),
    );
    fake.put(
        "/apis/apps/v1/namespaces/ops/deployments/operator",
        operator_deployment("op:1"),
    );

    let client = fake.client();
    let reporter = Reporter {
        controller: "dataflow-operator".into(),
        instance: None,
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        ProcessorSettings {
            image: "proc:1".into(),
            log_level: "info".into(),
            network_policy: None,
        },
        Recorder::new(client.clone(), reporter),
        Metrics::new().unwrap(),
        HashKey::from_bytes(vec![1u8; 32]),
        ReferencePolicy::default(),
    ));
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let running = tokio::spawn(controller::run(
        client,
        ctx,
        Scope::All,
        Some(ObjectKey::new("ops", "operator")),
        async move { stopped.cancelled().await },
    ));

    // Both DataFlows get their processor, then the controller goes quiet.
    let deployment = |name: &str| {
        fake.get(&format!(
            "/apis/apps/v1/namespaces/team/deployments/dataflow-{name}"
        ))
    };
    assert!(
        until(Duration::from_secs(15), || deployment("a").is_some()
            && deployment("b").is_some())
        .await,
        "the controller did not create both processors"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fake.take_calls();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let idle = fake.take_calls();
    assert_eq!(
        applies_to(&idle, "a") + applies_to(&idle, "b"),
        0,
        "not quiet: {:?}",
        idle.iter().map(support::Call::line).collect::<Vec<_>>()
    );

    // Rotating s1 wakes `a` only, and rolls its hash.
    let hash = |name: &str| {
        deployment(name).unwrap()["spec"]["template"]["metadata"]["annotations"]
        ["dataflow.dataflow.io/spec-hash"].clone()
    };
    let (hash_a, hash_b) = (hash("a"), hash("b"));
    fake.put(
        "/api/v1/namespaces/team/secrets/s1",
        secret("s1", "postgres://rotated"),
    );
    assert!(
        until(Duration::from_secs(10), || hash("a") != hash_a).await,
        "a did not roll"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let calls = fake.take_calls();
    assert!(applies_to(&calls, "a") >= 1);
    assert_eq!(
        applies_to(&calls, "b"),
        0,
        "b was reconciled for a secret it does not use"
    );
    assert_eq!(hash("b"), hash_b);

    // A new operator image reconciles every DataFlow.
    fake.put(
        "/apis/apps/v1/namespaces/ops/deployments/operator",
        operator_deployment("op:2"),
    );
    let mut seen = Vec::new();
    let woke = until(Duration::from_secs(10), || {
        seen.extend(fake.take_calls());
        applies_to(&seen, "a") >= 1 && applies_to(&seen, "b") >= 1
    })
    .await;
    assert!(
        woke,
        "an operator image change did not reconcile every DataFlow"
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the controller stops on shutdown")
        .unwrap();
}
