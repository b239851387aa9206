//! Secret values never leave Secrets, against the real API server: the chart
//! installed for two namespaces only (`watchNamespaces`, no ClusterRole), its
//! operator and a processor it describes run at trace level with real Kafka
//! (SASL_SSL source, mTLS error sink) and PostgreSQL; a user bound to the
//! built-in `view` role reads every object they made and finds no credential,
//! in clear or in base64; neither do the events, the DataFlow's status or the
//! two processes' logs. The roll-on-change hash moves with a Secret and is no
//! digest of the spec. A reference into the other watched namespace waits for
//! that Secret's grant; a flow outside the watched namespaces is left alone;
//! and the spec ConfigMap an earlier operator left is removed.

use std::path::Path;

use base64::Engine as _;
use dataflow_tests::cluster::{Cluster, free_port, wait_for};
use dataflow_tests::kubelet::{PodRun, RunningContainer, run_pod};
use dataflow_tests::services::{create_topic, kafka_env, produce, unique};
use dataflow_tests::{processor_bin, workspace};
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{WAIT, helm, pod_hash};

const SCOPED_RELEASE: &str = "dataflow-scoped";
const SCOPED_SYSTEM: &str = "dataflow-scoped";
const GRANT: &str = "dataflow.dataflow.io/allowed-namespaces";

/// The values a test must never find outside Secrets: each credential and the
/// base64 of each, and every line of the TLS key.
struct Markers(Vec<String>);

impl Markers {
    fn new(values: &[&str]) -> Self {
        let engine = base64::engine::general_purpose::STANDARD;
        let mut all = Vec::new();
        for value in values {
            all.push((*value).to_owned());
            all.push(engine.encode(value));
            for line in value.lines().map(str::trim) {
                if line.len() >= 16 && !line.starts_with("-----") {
                    all.push(line.to_owned());
                }
            }
        }
        Self(all)
    }

    /// Panics naming `what` when `text` holds one of the markers.
    fn absent_from(&self, what: &str, text: &str) {
        for marker in &self.0 {
            assert!(
                !text.contains(marker.as_str()),
                "{what} holds a secret value ({} bytes of it)",
                marker.len()
            );
        }
    }
}

fn scoped_install(admin: &Cluster, watched: &[&str]) {
    let chart = workspace().join("charts/dataflow-operator");
    let namespaces = format!("watchNamespaces={{{}}}", watched.join(","));
    helm(&[
        "upgrade",
        "--install",
        SCOPED_RELEASE,
        &chart.to_string_lossy(),
        "--kubeconfig",
        &admin.kubeconfig().to_string_lossy(),
        "--namespace",
        SCOPED_SYSTEM,
        "--create-namespace",
        "--set",
        &namespaces,
        "--set",
        "processor.networkPolicy.enabled=true",
        "--set",
        "image.repository=dataflow-test",
    ]);
}

/// The scoped release's operator, at trace level for every library.
fn start_scoped_operator(admin: &Cluster, dir: &Path) -> RunningContainer {
    let deployment = admin
        .get(SCOPED_SYSTEM, "deployment", SCOPED_RELEASE)
        .expect("the chart made the operator's Deployment");
    std::fs::create_dir_all(dir).expect("mkdir");
    let binary = workspace().join("target/release/dataflow-operator");
    run_pod(
        admin,
        &deployment["spec"]["template"],
        &PodRun {
            namespace: SCOPED_SYSTEM,
            pod_name: "dataflow-scoped-5b7c-test",
            binary: &binary,
            env_overrides: &[
                ("METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
                ("RUST_LOG", "trace".to_owned()),
            ],
            arg_overrides: &[],
            dir,
        },
    )
}

/// A DataFlow and the objects the operator before this change made for it: its
/// resolved spec, a credential in it, in the ConfigMap `dataflow-<name>-spec`,
/// and a Deployment (applied as that operator applied it) mounting it.
fn earlier_operators_objects(admin: &Cluster, namespace: &str, marker: &str) {
    let flow = "apiVersion: dataflow.dataflow.io/v1\nkind: DataFlow\nmetadata: {name: legacy}\nspec:\n  source: {type: generator, generator: {count: 1}}\n  sink: {type: stdout}\n";
    admin.apply(namespace, flow).expect("apply the legacy flow");
    let uid = admin.ok(&[
        "get",
        "df",
        "legacy",
        "-n",
        namespace,
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let owner = json!([{"apiVersion": "dataflow.dataflow.io/v1", "kind": "DataFlow", "name": "legacy",
                        "uid": uid, "controller": true, "blockOwnerDeletion": true}]);
    let labels = json!({"app.kubernetes.io/managed-by": "dataflow-operator",
                        "dataflow.dataflow.io/name": "legacy",
                        "app.kubernetes.io/name": "dataflow-processor"});
    let spec = json!({"source": {"type": "generator", "generator": {"count": 1}},
                      "sink": {"type": "postgresql", "postgresql": {"table": "t",
                               "connectionString": format!("postgres://app:{marker}@db/x")}}});
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dataflow-legacy-spec", "namespace": namespace,
                     "labels": labels, "ownerReferences": owner},
        "data": {"spec.json": spec.to_string()}});
    let selector = json!({"app.kubernetes.io/name": "dataflow-processor", "dataflow.dataflow.io/name": "legacy"});
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "dataflow-legacy", "namespace": namespace, "labels": labels, "ownerReferences": owner},
        "spec": {"selector": {"matchLabels": selector},
                 "strategy": {"type": "Recreate"},
                 "template": {"metadata": {"labels": selector},
                              "spec": {"containers": [{"name": "processor", "image": "dataflow-test:old",
                                         "volumeMounts": [{"name": "spec", "mountPath": "/etc/dataflow", "readOnly": true}]}],
                                       "volumes": [{"name": "spec", "configMap": {"name": "dataflow-legacy-spec"}}]}}}});
    for object in [config_map, deployment] {
        admin
            .try_run(
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=dataflow-operator",
                    "-f",
                    "-",
                ],
                Some(&object.to_string()),
            )
            .expect("apply an object of the earlier operator");
    }
}

/// The DataFlow `secrets`: Kafka over SASL_SSL into PostgreSQL, errors into
/// Kafka over mutual TLS, every credential from the Secret `creds`.
fn secrets_flow(input: &str, table: &str, pg_marker: &str) -> String {
    let env = kafka_env();
    let read = |path: &str| std::fs::read_to_string(path).expect("a test certificate");
    let creds = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
    "stringData": {
        "sasl-password": env.sasl_password,
        "pg-url": format!("postgres://postgres:{pg_marker}@127.0.0.1:55432/postgres"),
        "ca": read(&env.ca),
        "tls-cert": read(&env.client_cert),
        "tls-key": read(&env.client_key),
    }});
    let secret = |key: &str| json!({"name": "creds", "key": key});
    let flow = json!({"apiVersion": "dataflow.dataflow.io/v1", "kind": "DataFlow",
    "metadata": {"name": "secrets"},
    "spec": {
        "source": {"type": "kafka", "kafka": {
            "brokers": [env.sasl_brokers], "topic": input, "consumerGroup": unique("secrets"),
            "tls": {"caSecretRef": secret("ca")},
            "sasl": {"mechanism": "scram-sha-512", "username": env.sasl_user,
                     "passwordSecretRef": secret("sasl-password")}}},
        "sink": {"type": "postgresql", "postgresql": {
            "connectionStringSecretRef": secret("pg-url"), "table": table, "autoCreateTable": true,
            "batchSize": 1}},
        "errors": {"type": "kafka", "kafka": {
            "brokers": [env.mtls_brokers], "topic": format!("{input}-errors"),
            "tls": {"caSecretRef": secret("ca"), "certSecretRef": secret("tls-cert"),
                    "keySecretRef": secret("tls-key")}}}
    }});
    format!("{creds}\n---\n{flow}\n")
}

/// Runs the processor of Deployment `dataflow-secrets` at trace level, its
/// librdkafka debug contexts on, until it reported `count` messages processed.
fn run_the_processor(admin: &Cluster, namespace: &str, dir: &Path, count: u64) -> String {
    let deployment = admin
        .get(namespace, "deployment", "dataflow-secrets")
        .expect("the processor Deployment");
    std::fs::create_dir_all(dir).expect("mkdir");
    let binary = processor_bin();
    let mut processor = run_pod(
        admin,
        &deployment["spec"]["template"],
        &PodRun {
            namespace,
            pod_name: "dataflow-secrets-6d4f-test",
            binary: &binary,
            env_overrides: &[
                ("RUST_LOG", "trace".to_owned()),
                (
                    "DATAFLOW_LIBRDKAFKA_DEBUG",
                    "broker,security,conf,protocol".to_owned(),
                ),
            ],
            arg_overrides: &[(
                "--metrics-addr=",
                format!("--metrics-addr=127.0.0.1:{}", free_port()),
            )],
            dir,
        },
    );
    wait_for(
        "the processor's report of the messages it wrote",
        WAIT * 2,
        || {
            let processed = admin.ok(&[
                "get",
                "df",
                "secrets",
                "-n",
                namespace,
                "-o",
                "jsonpath={.status.processedCount}",
            ]);
            (processed.trim() == count.to_string()).then_some(())
        },
        || processor.log(),
    );
    processor.stop();
    processor.log()
}

/// Everything the operator made in `namespace`, as a user bound to the
/// built-in `view` ClusterRole reads it (and the RBAC objects, which `view` may
/// not read, as the administrator does); the Secrets are refused to that user.
fn what_a_viewer_reads(admin: &Cluster, namespace: &str) -> String {
    let viewer = "dataflow-viewer";
    if admin.get(namespace, "rolebinding", viewer).is_none() {
        admin.ok(&[
            "create",
            "rolebinding",
            viewer,
            "-n",
            namespace,
            "--clusterrole=view",
            &format!("--user={viewer}"),
        ]);
    }
    let refused = admin
        .try_run(
            &[&format!("--as={viewer}"), "get", "secrets", "-n", namespace],
            None,
        )
        .expect_err("view may not read Secrets");
    assert!(refused.contains("forbidden"), "{refused}");
    let mut seen = String::new();
    for kinds in [
        "deployments,replicasets,pods,configmaps,serviceaccounts,jobs,cronjobs,networkpolicies",
        "events",
        "events.events.k8s.io",
    ] {
        seen.push_str(&admin.ok(&[
            &format!("--as={viewer}"),
            "get",
            kinds,
            "-n",
            namespace,
            "-o",
            "json",
        ]));
    }
    seen.push_str(&admin.ok(&[
        "get",
        "roles,rolebindings,dataflows",
        "-n",
        namespace,
        "-o",
        "json",
    ]));
    seen
}

/// The resolved spec in the spec Secret of DataFlow `name`.
fn resolved_spec(admin: &Cluster, namespace: &str, name: &str) -> Option<String> {
    let secret = admin.get(namespace, "secret", &format!("dataflow-{name}-spec"))?;
    let encoded = secret["data"]["spec.json"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

pub(super) fn a_namespaced_install_keeps_secret_values_in_secrets(admin: &Cluster, dir: &Path) {
    let pid = std::process::id();
    let watched = format!("team-a-{pid}");
    let lender = format!("team-b-{pid}");
    let outside = format!("team-c-{pid}");
    for namespace in [&watched, &lender, &outside] {
        admin.ok(&["create", "namespace", namespace]);
    }
    let legacy_marker = format!("legacy-marker-{pid}");
    earlier_operators_objects(admin, &watched, &legacy_marker);
    let ignored = "apiVersion: dataflow.dataflow.io/v1\nkind: DataFlow\nmetadata: {name: outside}\nspec:\n  source: {type: generator, generator: {count: 1}}\n  sink: {type: stdout}\n";
    admin
        .apply(&outside, ignored)
        .expect("apply the flow outside");

    scoped_install(admin, &[&watched, &lender]);
    let operator_dir = dir.join("scoped-operator");
    let mut operator = start_scoped_operator(admin, &operator_dir);

    // The earlier operator's ConfigMap goes once the Secret and the new pod
    // template are in place.
    wait_for(
        "the spec ConfigMap of the earlier operator to be replaced by a Secret",
        WAIT,
        || {
            let gone = admin
                .get(&watched, "configmap", "dataflow-legacy-spec")
                .is_none();
            let spec = resolved_spec(admin, &watched, "legacy")?;
            (gone && !spec.contains(&legacy_marker)).then_some(())
        },
        || operator.log(),
    );
    let legacy = admin
        .get(&watched, "deployment", "dataflow-legacy")
        .expect("the legacy Deployment");
    let volume = &legacy["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(volume["name"], "spec");
    assert_eq!(
        volume["secret"]["secretName"], "dataflow-legacy-spec",
        "{volume}"
    );
    assert_eq!(volume["secret"]["defaultMode"], 0o440, "{volume}");
    assert!(volume.get("configMap").is_none(), "{volume}");

    // The flow with a credential of every kind.
    let input = unique("secrets-in").replace('_', "-");
    create_topic(&input);
    create_topic(&format!("{input}-errors"));
    let pg_marker = format!("pg-marker-{pid}-{}", uuid::Uuid::new_v4().simple());
    let table = unique("secrets");
    admin
        .apply(&watched, &secrets_flow(&input, &table, &pg_marker))
        .expect("apply the secrets flow");
    wait_for(
        "the secrets flow's processor Deployment",
        WAIT,
        || admin.get(&watched, "deployment", "dataflow-secrets"),
        || operator.log(),
    );
    let env = kafka_env();
    let key = std::fs::read_to_string(&env.client_key).expect("the client key");
    let markers = Markers::new(&[&env.sasl_password, &pg_marker, &key, &legacy_marker]);
    let records: Vec<_> = (0..5)
        .map(|i| (0, None::<String>, format!(r#"{{"id":{i}}}"#).into_bytes()))
        .collect();
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(produce(&input, records));
    let processor_log = run_the_processor(admin, &watched, &dir.join("secrets-node"), 5);
    assert!(processor_log.contains("TRACE"), "not at trace level");
    markers.absent_from("the processor's trace log", &processor_log);

    let policy = admin
        .get(&watched, "networkpolicy", "dataflow-secrets")
        .expect("the processor's NetworkPolicy");
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"],
        json!([SCOPED_SYSTEM, "monitoring"])
    );
    markers.absent_from("what a viewer reads", &what_a_viewer_reads(admin, &watched));

    // A rotated credential rolls the pod; the hash is keyed, not a digest.
    let before = pod_hash(admin, &watched, "dataflow-secrets").expect("a spec hash");
    let spec_before = resolved_spec(admin, &watched, "secrets").expect("the spec Secret");
    let digest = |text: &str| hex::encode(sha2::Sha256::digest(text.as_bytes()));
    assert_ne!(before, digest(&spec_before));
    let rotated_marker = format!("pg-rotated-{pid}-{}", uuid::Uuid::new_v4().simple());
    let rotated = format!(
        r#"{{"stringData":{{"pg-url":"postgres://postgres:{rotated_marker}@127.0.0.1:55432/postgres"}}}}"#
    );
    admin.ok(&[
        "patch",
        "-n",
        &watched,
        "secret",
        "creds",
        "--type=merge",
        "-p",
        &rotated,
    ]);
    let after = wait_for(
        "a rotated Secret to roll the spec hash",
        WAIT,
        || pod_hash(admin, &watched, "dataflow-secrets").filter(|h| *h != before),
        || operator.log(),
    );
    let spec_after = resolved_spec(admin, &watched, "secrets").expect("the spec Secret");
    assert!(spec_after.contains(&rotated_marker));
    assert_ne!(after, digest(&spec_after));
    assert_ne!(
        after,
        digest(&spec_after.replace(&rotated_marker, &pg_marker))
    );

    // A reference into the other watched namespace waits for that Secret's grant.
    let lent_marker = format!("lent-marker-{pid}");
    let lent = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: shared}}\nstringData: {{url: \"postgres://app:{lent_marker}@db/x\"}}\n"
    );
    admin.apply(&lender, &lent).expect("the Secret to lend");
    let borrower = format!(
        "apiVersion: dataflow.dataflow.io/v1\nkind: DataFlow\nmetadata: {{name: borrower}}\nspec:\n  source: {{type: generator, generator: {{count: 1}}}}\n  sink: {{type: postgresql, postgresql: {{table: t, connectionStringSecretRef: {{name: shared, key: url, namespace: {lender}}}}}}}\n"
    );
    admin
        .apply(&watched, &borrower)
        .expect("apply the borrower");
    let refused = wait_for(
        "the borrower to be refused",
        WAIT,
        || {
            let status = admin.get(&watched, "df", "borrower")?["status"].clone();
            (status["phase"] == "Error").then_some(status)
        },
        || operator.log(),
    );
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "spec.sink.postgresql.connectionStringSecretRef: secret {lender}/shared is in another namespace and does not grant namespace {watched}"
        )),
        "{refused}"
    );
    assert!(resolved_spec(admin, &watched, "borrower").is_none());
    Markers::new(&[&lent_marker]).absent_from(
        "the borrower's namespace",
        &what_a_viewer_reads(admin, &watched),
    );
    admin.ok(&[
        "annotate",
        "secret",
        "shared",
        "-n",
        &lender,
        &format!("{GRANT}={watched}"),
    ]);
    wait_for(
        "the grant to let the borrower through",
        WAIT,
        || resolved_spec(admin, &watched, "borrower").filter(|s| s.contains(&lent_marker)),
        || operator.log(),
    );

    // Nothing was made for, or said about, the flow outside.
    let outside_flow: Value = admin
        .get(&outside, "df", "outside")
        .expect("the flow outside");
    assert!(outside_flow.get("status").is_none(), "{outside_flow}");
    assert!(
        outside_flow["metadata"].get("finalizers").is_none(),
        "{outside_flow}"
    );
    assert!(
        admin
            .get(&outside, "deployment", "dataflow-outside")
            .is_none()
    );

    operator.stop();
    let operator_log = operator.log();
    assert!(operator_log.contains("TRACE") || operator_log.contains("\"level\":\"TRACE\""));
    markers.absent_from("the operator's trace log", &operator_log);
    Markers::new(&[&rotated_marker, &lent_marker])
        .absent_from("the operator's trace log", &operator_log);
    assert!(!operator_log.contains("forbidden"), "{operator_log}");
    helm(&[
        "uninstall",
        SCOPED_RELEASE,
        "--namespace",
        SCOPED_SYSTEM,
        "--kubeconfig",
        &admin.kubeconfig().to_string_lossy(),
    ]);
}

/// The webhook the API server calls refuses a `*SecretRef` into another
/// namespace, naming the field, until that Secret grants this namespace.
pub(super) fn a_reference_into_another_namespace_needs_its_grant(admin: &Cluster, namespace: &str) {
    let lender = format!("lender-{}", std::process::id());
    admin.ok(&["create", "namespace", &lender]);
    let flow = format!(
        "apiVersion: dataflow.dataflow.io/v1\nkind: DataFlow\nmetadata: {{name: borrows}}\nspec:\n  source: {{type: generator, generator: {{count: 1}}}}\n  sink: {{type: postgresql, postgresql: {{table: t, connectionStringSecretRef: {{name: lent, key: url, namespace: {lender}}}}}}}\n"
    );
    let missing = admin.apply(namespace, &flow).expect_err("no such Secret");
    let field = format!(
        "spec.sink.postgresql.connectionStringSecretRef: secret {lender}/lent is in another namespace and does not grant namespace {namespace}"
    );
    assert!(missing.contains(&field), "{missing}");
    admin
        .apply(
            &lender,
            "apiVersion: v1\nkind: Secret\nmetadata: {name: lent}\nstringData: {url: \"postgres://a:lent-value@db/x\"}\n",
        )
        .expect("the Secret to lend");
    let refused = admin.apply(namespace, &flow).expect_err("not granted");
    assert!(refused.contains(&field), "{refused}");
    assert!(!refused.contains("lent-value"), "{refused}");
    admin.ok(&[
        "annotate",
        "secret",
        "lent",
        "-n",
        &lender,
        &format!("dataflow.dataflow.io/allowed-namespaces={namespace}"),
    ]);
    admin.apply(namespace, &flow).expect("granted");
    admin.ok(&["delete", "df", "borrows", "-n", namespace, "--wait=false"]);
}
