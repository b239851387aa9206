//! The operator in a real Kubernetes API server (kube-apiserver and etcd started
//! by `scripts/services.sh`): the chart installed with the real `helm`, the
//! operator run from the chart's Deployment with its ServiceAccount's token (so
//! the chart's RBAC is what allows its calls), the README's examples applied with
//! `kubectl`, a bad DataFlow refused by the server calling our webhook, a
//! processor run as the operator's Deployment describes it moving real Kafka
//! records and reporting into `kubectl get df`, a reset annotation replaying its
//! topic once, job flows ending `Succeeded` or `Failed`, Secret and `.wasm`
//! changes rolling the spec hash, deletion running the finalizer, a second
//! operator taking over the Lease, a reference into another namespace refused
//! until granted, and an install for two namespaces that keeps every secret
//! value in Secrets (`kubernetes/secrets.rs`).
//!
//! No kubelet runs: `dataflow_tests::kubelet` plays the node (see there).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use dataflow_tests::cluster::{Cluster, free_port, wait_for};
use dataflow_tests::kubelet::{PodRun, RunningContainer, report_deployment_ready, run_pod};
use dataflow_tests::services::{consume, create_topic, kafka_brokers, produce};
use dataflow_tests::{component, processor_bin, workspace};
use serde_json::Value;

const RELEASE: &str = "dataflow";
const SYSTEM: &str = "dataflow-system";
const WAIT: Duration = Duration::from_secs(60);
const SPEC_HASH: &str = "dataflow.dataflow.io/spec-hash";

#[path = "kubernetes/cron.rs"]
mod cron;
#[path = "kubernetes/job.rs"]
mod job;
#[path = "kubernetes/leader.rs"]
mod leader;
#[path = "kubernetes/reset.rs"]
mod reset;
#[path = "kubernetes/secrets.rs"]
mod secrets;
#[path = "kubernetes/tap.rs"]
mod tap;

fn helm(args: &[&str]) -> String {
    let helm = std::env::var("DATAFLOW_TEST_HELM")
        .expect("DATAFLOW_TEST_HELM is not set: run `eval \"$(scripts/services.sh start)\"`");
    let output = std::process::Command::new(&helm)
        .args(args)
        .output()
        .expect("helm runs");
    assert!(
        output.status.success(),
        "helm {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `helm upgrade --install` of the chart, its webhook reached at `webhook_port`
/// on this machine (the chart's `url` form) with a certificate the chart makes.
fn install_chart(admin: &Cluster, webhook_port: u16) {
    let chart = workspace().join("charts/dataflow-operator");
    let url = format!("webhook.url=https://127.0.0.1:{webhook_port}/validate-dataflow");
    helm(&[
        "upgrade",
        "--install",
        RELEASE,
        &chart.to_string_lossy(),
        "--kubeconfig",
        &admin.kubeconfig().to_string_lossy(),
        "--namespace",
        SYSTEM,
        "--create-namespace",
        "--set",
        "webhook.enabled=true",
        "--set",
        "webhook.certManager.enabled=false",
        "--set",
        &url,
        "--set",
        "image.repository=dataflow-test",
    ]);
    for crd in ["dataflows", "dataflowcrons"] {
        admin.ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{crd}.dataflow.dataflow.io"),
        ]);
    }
}

/// The installed release; uninstalled when dropped, so that its webhook (which
/// refuses every DataFlow once its operator is gone) never outlives the test.
struct Release<'a> {
    admin: &'a Cluster,
    installed: bool,
}

impl Release<'_> {
    fn uninstall(&mut self) -> Result<String, String> {
        self.installed = false;
        let helm = std::env::var("DATAFLOW_TEST_HELM").map_err(|e| e.to_string())?;
        let output = std::process::Command::new(helm)
            .args([
                "uninstall",
                RELEASE,
                "--namespace",
                SYSTEM,
                "--wait",
                "--kubeconfig",
            ])
            .arg(self.admin.kubeconfig())
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if !self.installed {
            return;
        }
        if let Err(error) = self.uninstall() {
            eprintln!("helm uninstall {RELEASE}: {error}");
        }
    }
}

/// The operator, run as the chart's Deployment describes it, as the pod
/// `pod_name` serving its webhook on `webhook_port`; returns once the webhook
/// the API server calls answers.
fn start_operator(
    admin: &Cluster,
    webhook_port: u16,
    dir: &Path,
    pod_name: &str,
) -> RunningContainer {
    let deployment = admin
        .get(SYSTEM, "deployment", RELEASE)
        .expect("the chart made the operator's Deployment");
    let binary = workspace().join("target/release/dataflow-operator");
    let operator = run_pod(
        admin,
        &deployment["spec"]["template"],
        &PodRun {
            namespace: SYSTEM,
            pod_name,
            binary: &binary,
            env_overrides: &[
                ("METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
                ("WEBHOOK_ADDR", format!("127.0.0.1:{webhook_port}")),
            ],
            arg_overrides: &[],
            dir,
        },
    );
    // The webhook answers once a server-side dry run of a DataFlow passes it.
    let probe = "apiVersion: dataflow.dataflow.io/v1\nkind: DataFlow\nmetadata: {name: probe}\nspec:\n  source: {type: generator, generator: {count: 1}}\n  sink: {type: stdout}\n";
    wait_for(
        "the operator's webhook to answer the API server",
        WAIT,
        || {
            admin
                .try_run(
                    &["apply", "--dry-run=server", "-n", SYSTEM, "-f", "-"],
                    Some(probe),
                )
                .ok()
        },
        || operator.log(),
    );
    operator
}

/// The workloads (Deployment, CronJob, Job) the operator made for `dataflow`.
fn workloads(admin: &Cluster, namespace: &str, dataflow: &str) -> String {
    admin
        .ok(&[
            "get",
            "-n",
            namespace,
            "deployment,cronjob,job,secret,configmap",
            "-l",
            &format!("dataflow.dataflow.io/name={dataflow}"),
            "-o",
            "name",
        ])
        .trim()
        .to_owned()
}

fn pod_hash(admin: &Cluster, namespace: &str, deployment: &str) -> Option<String> {
    let object = admin.get(namespace, "deployment", deployment)?;
    object["spec"]["template"]["metadata"]["annotations"][SPEC_HASH]
        .as_str()
        .map(str::to_owned)
}

/// Every example the README shows is applied as it is; the operator makes its
/// spec Secret and its workload.
fn apply_examples(admin: &Cluster, namespace: &str, operator: &RunningContainer) {
    let wasm = component("pii_redact");
    admin.ok(&[
        "create",
        "configmap",
        "pii-redact",
        "-n",
        namespace,
        &format!("--from-file=pii_redact.wasm={}", wasm.display()),
    ]);
    let mut applied = Vec::new();
    for file in example_files() {
        let text = std::fs::read_to_string(&file).expect("read an example");
        admin
            .apply(namespace, &text)
            .unwrap_or_else(|e| panic!("kubectl apply -f {}: {e}", file.display()));
        for document in text.split("\n---") {
            if document.contains("kind: DataFlow") {
                let name = document
                    .lines()
                    .skip_while(|l| !l.starts_with("metadata:"))
                    .find_map(|l| l.trim().strip_prefix("name:"))
                    .expect("a DataFlow has a name")
                    .trim()
                    .to_owned();
                applied.push(name);
            }
        }
    }
    assert!(applied.len() >= 13, "only {applied:?} applied");
    for name in &applied {
        let made = wait_for(
            &format!("the workload of example {name}"),
            WAIT,
            || {
                let made = workloads(admin, namespace, name);
                (made.contains("secret/") && made.lines().count() >= 2).then_some(made)
            },
            || {
                format!(
                    "{}\n{}",
                    admin.ok(&["get", "df", "-n", namespace, name, "-o", "yaml"]),
                    operator.log()
                )
            },
        );
        let phase = admin.ok(&[
            "get",
            "df",
            "-n",
            namespace,
            name,
            "-o",
            "jsonpath={.status.phase}",
        ]);
        assert!(!phase.is_empty(), "{name} has no phase; made {made}");
    }
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(workspace().join("examples"))
        .expect("examples/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// A DataFlow only the webhook can judge (its condition does not parse) is
/// refused by the API server, with the webhook's reason.
fn bad_dataflow_is_refused(admin: &Cluster, namespace: &str) {
    let bad = "apiVersion: dataflow.dataflow.io/v1\nkind: DataFlow\nmetadata: {name: bad-condition}\nspec:\n  source: {type: generator, generator: {count: 1}}\n  transformations:\n    - {type: filter, filter: {condition: \"$.amount >\"}}\n  sink: {type: stdout}\n";
    let error = admin
        .apply(namespace, bad)
        .expect_err("a bad DataFlow is refused");
    assert!(
        error.contains("admission webhook \"validate.dataflow.dataflow.io\" denied the request")
            && error.contains("transformations[0]"),
        "{error}"
    );
    assert!(admin.get(namespace, "df", "bad-condition").is_none());
    // The CRD's schema is the server's own first check.
    let wrong_type = bad.replace("count: 1", "count: many");
    let error = admin
        .apply(namespace, &wrong_type)
        .expect_err("schema refuses");
    assert!(error.contains("spec.source.generator.count"), "{error}");
}

/// The flow the node runs: Kafka -> the pii_redact component from a ConfigMap ->
/// Kafka, its brokers from a Secret.
fn redact_flow(input: &str, output: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: kafka}}
stringData: {{brokers: "{brokers}"}}
---
apiVersion: dataflow.dataflow.io/v1
kind: DataFlow
metadata: {{name: redact}}
spec:
  source:
    type: kafka
    kafka:
      brokersSecretRef: {{name: kafka, key: brokers}}
      topic: {input}
      consumerGroup: {input}-group
  transformations:
    - type: wasm
      wasm:
        configMapRef: {{name: pii-redact, key: pii_redact.wasm}}
        config: {{keepDomain: true}}
  sink:
    type: kafka
    kafka:
      brokersSecretRef: {{name: kafka, key: brokers}}
      topic: {output}
"#,
        brokers = kafka_brokers()
    )
}

/// Runs the processor Deployment `dataflow-redact` on the node, moves records
/// through it and waits for its report in `kubectl get df`.
fn node_runs_the_processor(admin: &Cluster, namespace: &str, dir: &Path) -> RunningContainer {
    let input = format!("{namespace}-in");
    let output = format!("{namespace}-out");
    create_topic(&input);
    create_topic(&output);
    admin
        .apply(namespace, &redact_flow(&input, &output))
        .expect("apply the redact flow");
    wait_for(
        "the operator's processor Deployment",
        WAIT,
        || admin.get(namespace, "deployment", "dataflow-redact"),
        || admin.ok(&["get", "df", "-n", namespace, "redact", "-o", "yaml"]),
    );
    let mut processor = run_redact_pod(admin, namespace, dir, "dataflow-redact-5c8d-test");
    report_deployment_ready(admin, namespace, "dataflow-redact");

    let records: Vec<_> = (0..20)
        .map(|i| {
            let payload = format!(r#"{{"id":{i},"email":"user{i}@example.com"}}"#);
            (0, None, payload.into_bytes())
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(produce(&input, records));
    let written = consume(&output, 20, Duration::from_secs(60));
    assert_eq!(written.len(), 20, "{}", processor.log());
    let first: Value = serde_json::from_slice(&written[0].payload).expect("JSON out");
    assert!(
        first["email"]
            .as_str()
            .is_some_and(|e| e.ends_with("@example.com") && e.contains('*')),
        "{first}"
    );

    let row = wait_for(
        "the processor's report in `kubectl get df`",
        WAIT,
        || {
            let table = admin.ok(&["get", "df", "-n", namespace, "redact"]);
            let row = table
                .lines()
                .nth(1)?
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>();
            (row.get(1).map(String::as_str) == Some("Running")
                && row.get(2).map(String::as_str) == Some("20"))
            .then_some(row)
        },
        || {
            format!(
                "{}\n{}",
                admin.ok(&["get", "df", "-n", namespace, "redact", "-o", "yaml"]),
                processor.log()
            )
        },
    );
    assert_eq!(row[3], "0", "errors column: {row:?}");
    assert!(processor.running(), "{}", processor.log());
    processor
}

/// Runs the Deployment `dataflow-redact`'s current pod template on the node as
/// `pod_name`, its volumes and log in `dir`.
fn run_redact_pod(
    admin: &Cluster,
    namespace: &str,
    dir: &Path,
    pod_name: &str,
) -> RunningContainer {
    let deployment = admin
        .get(namespace, "deployment", "dataflow-redact")
        .expect("the processor Deployment");
    std::fs::create_dir_all(dir).expect("the pod's directory");
    let binary = processor_bin();
    let metrics = format!("--metrics-addr=127.0.0.1:{}", free_port());
    run_pod(
        admin,
        &deployment["spec"]["template"],
        &PodRun {
            namespace,
            pod_name,
            binary: &binary,
            env_overrides: &[],
            arg_overrides: &[("--metrics-addr=", metrics)],
            dir,
        },
    )
}

/// A rotated Secret and new `.wasm` bytes each roll the pod template's hash.
fn changes_roll_the_hash(admin: &Cluster, namespace: &str) {
    let deployment = "dataflow-redact";
    let before = pod_hash(admin, namespace, deployment).expect("a spec hash");
    let rotated = kafka_brokers().replace("127.0.0.1", "localhost");
    let patch = format!(r#"{{"stringData":{{"brokers":"{rotated}"}}}}"#);
    admin.ok(&[
        "patch",
        "-n",
        namespace,
        "secret",
        "kafka",
        "--type=merge",
        "-p",
        &patch,
    ]);
    let after_secret = wait_for_new_hash(admin, namespace, &before, "a rotated Secret");
    let spec = admin
        .get(namespace, "secret", "dataflow-redact-spec")
        .expect("the spec Secret");
    let encoded = spec["data"]["spec.json"].as_str().unwrap_or_default();
    let resolved = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("Secret data is base64");
    assert!(
        String::from_utf8_lossy(&resolved).contains(&rotated),
        "the new brokers reach the spec"
    );

    let other = component("dataflow_test_components");
    let replacement = admin.ok(&[
        "create",
        "configmap",
        "pii-redact",
        "-n",
        namespace,
        &format!("--from-file=pii_redact.wasm={}", other.display()),
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    // `apply` would copy the bytes into an annotation, past its 256 KiB limit.
    admin
        .try_run(&["replace", "-n", namespace, "-f", "-"], Some(&replacement))
        .expect("replace the .wasm bytes");
    wait_for_new_hash(admin, namespace, &after_secret, "new .wasm bytes");
}

/// Waits until the pod template of `dataflow-redact` carries a spec hash other
/// than `old`; returns it.
fn wait_for_new_hash(admin: &Cluster, namespace: &str, old: &str, cause: &str) -> String {
    let deployment = "dataflow-redact";
    wait_for(
        &format!("{cause} to roll the spec hash"),
        WAIT,
        || pod_hash(admin, namespace, deployment).filter(|h| h != old),
        || {
            let args = [
                "get",
                "-n",
                namespace,
                "deployment",
                deployment,
                "-o",
                "yaml",
            ];
            admin.ok(&args)
        },
    )
}

/// Deleting a DataFlow runs the finalizer: everything the operator made for it
/// is gone (no garbage collector runs here), then the DataFlow itself.
fn delete_runs_the_finalizer(admin: &Cluster, namespace: &str) {
    let dataflow = admin.get(namespace, "df", "redact").expect("redact exists");
    assert!(
        dataflow["metadata"]["finalizers"]
            .to_string()
            .contains("dataflow"),
        "{dataflow}"
    );
    admin.ok(&["delete", "df", "redact", "-n", namespace, "--wait=false"]);
    wait_for(
        "the finalizer to remove the DataFlow and what was made for it",
        WAIT,
        || {
            let left = workloads(admin, namespace, "redact");
            let gone = admin.get(namespace, "df", "redact").is_none()
                && admin
                    .get(namespace, "serviceaccount", "dataflow-redact-processor")
                    .is_none()
                && admin
                    .get(namespace, "role", "dataflow-redact-processor")
                    .is_none();
            (gone && left.is_empty()).then_some(())
        },
        || workloads(admin, namespace, "redact"),
    );
}

#[test]
fn the_operator_in_a_real_api_server() {
    let admin = Cluster::admin();
    admin.aggregate_builtin_roles();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let webhook_port = free_port();
    install_chart(&admin, webhook_port);
    let mut release = Release {
        admin: &admin,
        installed: true,
    };
    let operator_dir = dir.path().join("operator");
    std::fs::create_dir_all(&operator_dir).expect("mkdir");
    let operator = start_operator(&admin, webhook_port, &operator_dir, "dataflow-7d9f-test");

    let namespace = format!("flows-{}", std::process::id());
    admin.ok(&["create", "namespace", &namespace]);
    bad_dataflow_is_refused(&admin, &namespace);
    secrets::a_reference_into_another_namespace_needs_its_grant(&admin, &namespace);
    apply_examples(&admin, &namespace, &operator);
    cron::a_go_dataflowcron_becomes_a_cron_job(&admin, &namespace);
    job::job_flows_report_how_they_ended(&admin, &namespace, dir.path());

    let node_dir = dir.path().join("node");
    std::fs::create_dir_all(&node_dir).expect("mkdir");
    tap::a_running_flow_is_tapped_through_the_pod_proxy(&admin, &namespace, &node_dir);
    let processor = node_runs_the_processor(&admin, &namespace, &node_dir);
    let mut processor =
        reset::a_reset_annotation_replays_the_topic_once(&admin, &namespace, &node_dir, processor);
    changes_roll_the_hash(&admin, &namespace);
    processor.stop();
    delete_runs_the_finalizer(&admin, &namespace);
    let mut operator =
        leader::a_second_operator_takes_over_the_lease(&admin, &namespace, dir.path(), operator);

    operator.stop();
    let log = operator.log();
    assert!(
        !log.contains("forbidden"),
        "the chart's RBAC refused a call:\n{log}"
    );

    // Uninstalling keeps the CRD (and so every DataFlow), as Helm does with crds/.
    release.uninstall().expect("helm uninstall");
    let webhooks = admin.ok(&["get", "validatingwebhookconfigurations", "-o", "name"]);
    assert!(!webhooks.contains(RELEASE), "{webhooks}");
    admin.ok(&["get", "crd", "dataflows.dataflow.dataflow.io"]);

    secrets::a_namespaced_install_keeps_secret_values_in_secrets(&admin, dir.path());
}
