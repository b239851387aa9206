//! Reconcile scenarios against a fake API server (see `support`): no real
//! Kubernetes API server can run on the test machine, so requests go through
//! `tower-test`'s mock service to an in-process fake that answers as the API
//! server does. Each scenario checks the calls the operator makes and the state
//! they leave behind.

mod support;

#[path = "reconcile/secrets.rs"]
mod secrets;

use std::sync::Arc;

use dataflow_api::DataFlow;
use dataflow_operator::desired::ProcessorSettings;
use dataflow_operator::grants::ReferencePolicy;
use dataflow_operator::hash_key::HashKey;
use dataflow_operator::reconcile::{Context, reconcile};
use dataflow_operator::telemetry::Metrics;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use support::FakeApi;

const DF: &str = "/apis/dataflow.dataflow.io/v1/namespaces/team/dataflows/orders";
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/team/deployments/dataflow-orders";
const SPEC_SECRET: &str = "/api/v1/namespaces/team/secrets/dataflow-orders-spec";
const SECRET: &str = "/api/v1/namespaces/team/secrets/pg";
const HASH: &str = "dataflow.dataflow.io/spec-hash";
const PASSWORD: &str = "postgres://app:s3cret-pass@db:5432/app";

fn manifest(table: &str, finalized: bool) -> Value {
    let finalizers = if finalized {
        json!(["dataflow.dataflow.io/cleanup"])
    } else {
        json!([])
    };
    json!({
        "apiVersion": "dataflow.dataflow.io/v1",
        "kind": "DataFlow",
        "metadata": {"name": "orders", "namespace": "team", "uid": "uid-1", "generation": 1,
                     "finalizers": finalizers},
        "spec": {
            "source": {"type": "kafka", "kafka": {"brokers": ["kafka:9092"], "topic": "orders", "consumerGroup": "g"}},
            "sink": {"type": "postgresql", "postgresql": {
                "table": table,
                "connectionStringSecretRef": {"name": "pg", "key": "url"}}}
        }
    })
}

fn secret(value: &str) -> Value {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg", "namespace": "team"},
           "data": {"url": encoded}})
}

fn context(fake: &FakeApi, image: &str) -> Arc<Context> {
    let client = fake.client();
    let reporter = Reporter {
        controller: "dataflow-operator".into(),
        instance: Some("test".into()),
    };
    Arc::new(Context::new(
        client.clone(),
        ProcessorSettings {
            image: image.into(),
            log_level: "info".into(),
            network_policy: None,
        },
        Recorder::new(client, reporter),
        Metrics::new().unwrap(),
        HashKey::from_bytes(vec![42u8; 32]),
        ReferencePolicy::default(),
    ))
}

/// The resolved spec in the flow's spec Secret.
fn resolved_spec(fake: &FakeApi) -> String {
    use base64::Engine as _;
    let secret = fake.get(SPEC_SECRET).expect("the spec Secret");
    let encoded = secret["data"]["spec.json"].as_str().expect("spec.json");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("Secret data is base64");
    String::from_utf8(bytes).expect("the spec is text")
}

async fn pass(fake: &FakeApi, image: &str) -> Vec<support::Call> {
    let stored: DataFlow = serde_json::from_value(fake.get(DF).unwrap()).unwrap();
    reconcile(Arc::new(stored), context(fake, image))
        .await
        .unwrap();
    fake.take_calls()
}

fn lines(calls: &[support::Call]) -> Vec<String> {
    calls.iter().map(support::Call::line).collect()
}

fn events(calls: &[support::Call]) -> Vec<(String, String)> {
    calls
        .iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("/events"))
        .map(|c| {
            (
                c.body["reason"].as_str().unwrap_or_default().to_owned(),
                c.body["note"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn hash(fake: &FakeApi) -> String {
    fake.get(DEPLOYMENT).unwrap()["spec"]["template"]["metadata"]["annotations"][HASH]
        .as_str()
        .unwrap()
        .to_owned()
}

fn created_flow() -> FakeApi {
    let fake = FakeApi::default();
    fake.put(DF, manifest("orders", true));
    fake.put(SECRET, secret(PASSWORD));
    fake
}

#[tokio::test]
async fn new_dataflow_gets_its_finalizer_first() {
    let fake = FakeApi::default();
    fake.put(DF, manifest("orders", false));
    let calls = pass(&fake, "img:1").await;
    assert_eq!(lines(&calls), [format!("PATCH {DF}")]);
    assert_eq!(
        fake.get(DF).unwrap()["metadata"]["finalizers"],
        json!(["dataflow.dataflow.io/cleanup"])
    );
}

#[tokio::test]
async fn create_applies_everything_and_reports_pending() {
    let fake = created_flow();
    let calls = pass(&fake, "img:1").await;
    let applied: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "PATCH" && c.content_type.starts_with("application/apply-patch"))
        .map(|c| c.path.clone())
        .collect();
    assert_eq!(
        applied,
        [
            SPEC_SECRET.to_owned(),
            "/api/v1/namespaces/team/serviceaccounts/dataflow-orders-processor".into(),
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles/dataflow-orders-processor".into(),
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings/dataflow-orders-processor".into(),
            DEPLOYMENT.into(),
        ]
    );
    for call in calls
        .iter()
        .filter(|c| c.content_type.starts_with("application/apply-patch"))
    {
        assert!(
            call.query.contains("fieldManager=dataflow-operator"),
            "{}",
            call.query
        );
        assert!(call.query.contains("force=true"), "{}", call.query);
    }

    // The resolved spec has the secret's value and no reference left, and sits
    // in a Secret: no ConfigMap was written.
    let spec = resolved_spec(&fake);
    let resolved: Value = serde_json::from_str(&spec).unwrap();
    assert_eq!(resolved["sink"]["postgresql"]["connectionString"], PASSWORD);
    assert!(!spec.contains("SecretRef"));
    assert!(
        !calls
            .iter()
            .any(|c| c.method != "GET" && c.path.contains("/configmaps/")),
        "{:?}",
        lines(&calls)
    );

    let deployment = fake.get(DEPLOYMENT).unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "img:1"
    );
    assert_eq!(deployment["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    assert_eq!(hash(&fake).len(), 64);

    let status = &fake.get(DF).unwrap()["status"];
    assert_eq!(status["phase"], "Pending");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["conditions"][1]["type"], "Reconciled");
    assert_eq!(status["conditions"][1]["status"], "True");

    let events = events(&calls);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "Created");
    // No secret value anywhere but the spec Secret, in clear or in base64.
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode("s3cret-pass");
    for call in &calls {
        if call.path != SPEC_SECRET {
            let body = call.body.to_string();
            assert!(
                !body.contains("s3cret-pass") && !body.contains(&encoded),
                "{}",
                call.line()
            );
        }
    }
    // The hash is keyed: not the plain digest of the resolved spec.
    use sha2::Digest as _;
    assert_ne!(
        hash(&fake),
        hex::encode(sha2::Sha256::digest(spec.as_bytes()))
    );
}

#[tokio::test]
async fn second_pass_changes_nothing() {
    let fake = created_flow();
    let first = pass(&fake, "img:1").await;
    let second = pass(&fake, "img:1").await;
    // Same applies with the same bodies, no status write, no event.
    let applies = |calls: &[support::Call]| -> Vec<(String, Value)> {
        calls
            .iter()
            .filter(|c| c.content_type.starts_with("application/apply-patch"))
            .map(|c| (c.path.clone(), c.body.clone()))
            .collect()
    };
    assert_eq!(applies(&first), applies(&second));
    assert!(
        !second.iter().any(|c| c.path.ends_with("/status")),
        "{:?}",
        lines(&second)
    );
    assert!(events(&second).is_empty(), "{:?}", events(&second));
}

#[tokio::test]
async fn spec_change_rolls_the_hash() {
    let fake = created_flow();
    pass(&fake, "img:1").await;
    let before = hash(&fake);
    let mut changed = fake.get(DF).unwrap();
    changed["spec"]["sink"]["postgresql"]["table"] = json!("orders_v2");
    changed["metadata"]["generation"] = json!(2);
    fake.put(DF, changed);
    let calls = pass(&fake, "img:1").await;
    assert_ne!(hash(&fake), before);
    assert_eq!(events(&calls)[0].0, "Updated");
    assert_eq!(fake.get(DF).unwrap()["status"]["observedGeneration"], 2);
}

#[tokio::test]
async fn secret_change_rolls_the_hash() {
    let fake = created_flow();
    pass(&fake, "img:1").await;
    let before = hash(&fake);
    fake.put(SECRET, secret("postgres://app:rotated@db:5432/app"));
    let calls = pass(&fake, "img:1").await;
    assert_ne!(hash(&fake), before);
    assert_eq!(events(&calls)[0].0, "Updated");
    assert!(!events(&calls)[0].1.contains("rotated"));
}

#[tokio::test]
async fn missing_secret_is_an_error_status_not_a_crash() {
    let fake = FakeApi::default();
    fake.put(DF, manifest("orders", true));
    let calls = pass(&fake, "img:1").await;
    assert!(fake.get(DEPLOYMENT).is_none());
    assert!(fake.get(SPEC_SECRET).is_none());
    let status = &fake.get(DF).unwrap()["status"];
    assert_eq!(status["phase"], "Error");
    assert_eq!(
        status["message"],
        "spec.sink.postgresql.connectionStringSecretRef: secret team/pg not found"
    );
    assert_eq!(status["conditions"][1]["reason"], "SecretNotFound");
    let events = events(&calls);
    assert_eq!(events[0].0, "SecretNotFound");

    // A secret without the key names secret and key.
    fake.put(
        SECRET,
        json!({"metadata": {"name": "pg"}, "data": {"other": "eA=="}}),
    );
    pass(&fake, "img:1").await;
    assert_eq!(
        fake.get(DF).unwrap()["status"]["message"],
        "spec.sink.postgresql.connectionStringSecretRef: secret team/pg has no key \"url\""
    );
}

#[tokio::test]
async fn invalid_spec_is_reported_with_field_paths() {
    let fake = created_flow();
    let mut bad = fake.get(DF).unwrap();
    bad["spec"]["transformations"] = json!([{"type": "mask", "mask": {"fields": []}}]);
    fake.put(DF, bad);
    pass(&fake, "img:1").await;
    let status = &fake.get(DF).unwrap()["status"];
    assert_eq!(status["phase"], "Error");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("spec.transformations[0].mask.fields: must not be empty"),
        "{status}"
    );
    assert!(fake.get(DEPLOYMENT).is_none());
}

#[tokio::test]
async fn custom_transform_is_mounted_and_its_bytes_roll_the_hash() {
    let fake = created_flow();
    let mut with_wasm = fake.get(DF).unwrap();
    with_wasm["spec"]["transformations"] = json!([
        {"type": "wasm", "wasm": {"configMapRef": {"name": "pii", "key": "pii.wasm"}}}
    ]);
    fake.put(DF, with_wasm);
    pass(&fake, "img:1").await;
    let status = &fake.get(DF).unwrap()["status"];
    assert_eq!(status["conditions"][1]["reason"], "TransformNotFound");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("configmap team/pii not found"),
        "{status}"
    );

    let pii = "/api/v1/namespaces/team/configmaps/pii";
    fake.put(
        pii,
        json!({"metadata": {"name": "pii"}, "binaryData": {"pii.wasm": "AGFzbQ=="}}),
    );
    pass(&fake, "img:1").await;
    let resolved: Value = serde_json::from_str(&resolved_spec(&fake)).unwrap();
    assert_eq!(
        resolved["transformations"][0]["wasm"],
        json!({"path": "/etc/dataflow-transforms/pii/pii.wasm"})
    );
    let pod = &fake.get(DEPLOYMENT).unwrap()["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["configMap"]["name"] == "pii")
        .unwrap();
    assert_eq!(volume["configMap"]["items"][0]["key"], "pii.wasm");
    let before = hash(&fake);

    fake.put(
        pii,
        json!({"metadata": {"name": "pii"}, "binaryData": {"pii.wasm": "AGFzbQE="}}),
    );
    let calls = pass(&fake, "img:1").await;
    assert_ne!(hash(&fake), before);
    assert_eq!(events(&calls)[0].0, "Updated");
}

#[tokio::test]
async fn new_operator_image_moves_processors() {
    let fake = created_flow();
    pass(&fake, "img:1").await;
    pass(&fake, "img:2").await;
    let deployment = fake.get(DEPLOYMENT).unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "img:2"
    );
}

#[tokio::test]
async fn running_deployment_sets_running() {
    let fake = created_flow();
    pass(&fake, "img:1").await;
    let mut deployment = fake.get(DEPLOYMENT).unwrap();
    deployment["status"] = json!({"replicas": 1, "readyReplicas": 1});
    fake.put(DEPLOYMENT, deployment);
    pass(&fake, "img:1").await;
    let status = &fake.get(DF).unwrap()["status"];
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["conditions"][0]["status"], "True");
}

#[tokio::test]
async fn delete_cleans_up_and_reports_stopped() {
    let fake = created_flow();
    pass(&fake, "img:1").await;
    let mut deleting = fake.get(DF).unwrap();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-11-23T00:00:00Z");
    fake.put(DF, deleting);
    let calls = pass(&fake, "img:1").await;
    let deletes: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "DELETE")
        .map(|c| c.path.rsplit('/').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(
        deletes,
        [
            "deployments",
            "cronjobs",
            "secrets",
            "secrets",
            "networkpolicies",
            "rolebindings",
            "roles",
            "serviceaccounts"
        ]
    );
    assert!(fake.get(DEPLOYMENT).is_none());
    assert!(fake.get(SPEC_SECRET).is_none());
    let stored = fake.get(DF).unwrap();
    assert_eq!(stored["status"]["phase"], "Stopped");
    assert_eq!(stored["metadata"]["finalizers"], json!([]));
    assert_eq!(events(&calls)[0].0, "Deleted");
}

#[tokio::test]
async fn api_failure_is_an_error_to_retry() {
    let fake = created_flow();
    fake.fail(&format!("PATCH {DEPLOYMENT}"), 500, "InternalError");
    let stored: DataFlow = serde_json::from_value(fake.get(DF).unwrap()).unwrap();
    let stored = Arc::new(stored);
    fake.take_calls();
    let ctx = context(&fake, "img:1");
    let error = reconcile(stored.clone(), ctx.clone())
        .await
        .expect_err("a refused write fails the pass");
    // The controller asks for the pass again after the retry delay.
    assert_eq!(
        dataflow_operator::reconcile::error_policy(stored, &error, ctx),
        kube::runtime::controller::Action::requeue(dataflow_operator::reconcile::RETRY)
    );
    // Nothing claims the flow is fine or broken: no status was written.
    let calls = fake.take_calls();
    assert!(
        calls.iter().all(|c| !c.path.ends_with("/status")),
        "{:?}",
        calls.iter().map(|c| c.line()).collect::<Vec<_>>()
    );
    assert!(
        calls
            .iter()
            .any(|c| c.line() == format!("PATCH {DEPLOYMENT}")),
        "the failing write was attempted"
    );
}

const JOBS: &str = "/apis/batch/v1/namespaces/team/jobs";
const CRON_JOB: &str = "/apis/batch/v1/namespaces/team/cronjobs/dataflow-orders";

/// The names of the flow's Jobs in the fake.
fn job_names(fake: &FakeApi) -> Vec<String> {
    fake.names_in(JOBS)
}

#[tokio::test]
async fn a_job_flow_runs_once_per_spec_and_reports_how_it_ended() {
    let fake = created_flow();
    let mut df = manifest("orders", true);
    df["spec"]["execution"] = json!({"mode": "job"});
    fake.put(DF, df.clone());
    // A Deployment left from when the flow streamed.
    fake.put(
        DEPLOYMENT,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "dataflow-orders", "namespace": "team"}}),
    );

    let calls = pass(&fake, "img:1").await;
    assert!(
        fake.get(DEPLOYMENT).is_none(),
        "the streaming Deployment is gone"
    );
    let jobs = job_names(&fake);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job_path = format!("{JOBS}/{}", jobs[0]);
    let job = fake.get(&job_path).unwrap();
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(events(&calls)[0].0, "Started");
    assert_eq!(fake.get(DF).unwrap()["status"]["phase"], "Pending");

    // The kubelet's part: the run ends well.
    let mut finished = job.clone();
    finished["status"] = json!({"succeeded": 1});
    fake.put(&job_path, finished);
    let calls = pass(&fake, "img:1").await;
    assert!(events(&calls).is_empty(), "the same spec is the same run");
    let status = &fake.get(DF).unwrap()["status"];
    assert_eq!(status["phase"], "Succeeded", "{status}");

    // A new spec is a new run; the old run's Job goes.
    df["spec"]["sink"]["postgresql"]["table"] = json!("orders_v2");
    df["metadata"]["generation"] = json!(2);
    fake.put(DF, df.clone());
    pass(&fake, "img:1").await;
    let after = job_names(&fake);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0], jobs[0]);
    let mut failed = fake.get(&format!("{JOBS}/{}", after[0])).unwrap();
    failed["status"] = json!({"failed": 3, "conditions": [{"type": "Failed", "status": "True",
        "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
    fake.put(&format!("{JOBS}/{}", after[0]), failed);
    pass(&fake, "img:1").await;
    let status = &fake.get(DF).unwrap()["status"];
    assert_eq!(status["phase"], "Failed");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("BackoffLimitExceeded")
    );

    // On a schedule: a CronJob, and the one-off Job is removed.
    df["spec"]["execution"] = json!({"schedule": "0 3 * * *"});
    fake.put(DF, df);
    pass(&fake, "img:1").await;
    assert!(job_names(&fake).is_empty());
    let cron = fake.get(CRON_JOB).unwrap();
    assert_eq!(cron["spec"]["schedule"], "0 3 * * *");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(fake.get(DF).unwrap()["status"]["phase"], "Pending");
}

#[tokio::test]
async fn a_reset_annotation_restarts_the_processor_with_it_once() {
    let fake = created_flow();
    pass(&fake, "img:1").await;
    let before = hash(&fake);
    let annotate = |value: &str| {
        let mut annotated = fake.get(DF).unwrap();
        annotated["metadata"]["annotations"] =
            json!({"dataflow.dataflow.io/reset-position": value});
        fake.put(DF, annotated);
    };
    let args = |fake: &FakeApi| {
        fake.get(DEPLOYMENT).unwrap()["spec"]["template"]["spec"]["containers"][0]["args"].clone()
    };

    annotate("earliest#2");
    let calls = pass(&fake, "img:1").await;
    assert_ne!(hash(&fake), before, "a new reset rolls the processor");
    let reset_arg = |fake: &FakeApi| {
        args(fake)
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|a| a.starts_with("--reset-position="))
            .map(str::to_owned)
    };
    assert_eq!(
        reset_arg(&fake).as_deref(),
        Some("--reset-position=earliest#2")
    );
    let reasons: Vec<String> = events(&calls).into_iter().map(|(r, _)| r).collect();
    assert!(reasons.contains(&"PositionReset".to_owned()), "{reasons:?}");
    let status = &fake.get(DF).unwrap()["status"];
    assert_eq!(status["positionReset"]["requested"], "earliest#2");
    assert_eq!(
        fake.get(DEPLOYMENT).unwrap()["spec"]["strategy"]["type"],
        "Recreate"
    );

    // The same value again: no event, no new hash.
    let rolled = hash(&fake);
    let calls = pass(&fake, "img:1").await;
    assert_eq!(hash(&fake), rolled);
    assert!(events(&calls).is_empty(), "{:?}", events(&calls));

    // A value that does not fit a Kafka source changes nothing and says why.
    annotate("beginning");
    let calls = pass(&fake, "img:1").await;
    assert_eq!(hash(&fake), rolled, "the running processor is left alone");
    assert_eq!(events(&calls)[0].0, "InvalidReset");
    let status = &fake.get(DF).unwrap()["status"];
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("a kafka source moves to earliest"),
        "{status}"
    );
}
