//! `dataflow tap --dataflow` through the real API server: the operator made the
//! flow's tap Secret and mounted it; the node (the harness) runs the processor
//! listening on this machine's address and reports its Pod running there; the
//! CLI finds the pod and the token with a kubeconfig and reads the tap through
//! the API server's pod proxy. A user who may not read the tap Secret is
//! refused by Kubernetes; one who may is let through.

use std::path::Path;
use std::process::Command;

use dataflow_tests::cluster::{Cluster, free_port, wait_for};
use dataflow_tests::kubelet::{PodRun, run_pod};
use dataflow_tests::processor_bin;
use serde_json::{Value, json};

use super::WAIT;

const FLOW: &str = "apiVersion: dataflow.dataflow.io/v1\nkind: DataFlow\nmetadata: {name: tapped}\nspec:\n  source: {type: generator, generator: {count: 0, template: counter, ratePerSecond: 100}}\n  transformations:\n    - type: filter\n      filter: {condition: \"$.id > 4\"}\n  sink: {type: stdout}\n  observability:\n    tap: true\n";

/// This machine's first address other than loopback (the API server refuses to
/// proxy to loopback addresses, as it refuses for any pod).
fn host_address() -> String {
    let output = Command::new("hostname")
        .arg("-I")
        .output()
        .expect("hostname runs");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .find(|a| a.contains('.') && !a.starts_with("127."))
        .expect("a non-loopback IPv4 address")
        .to_owned()
}

fn dataflow_tap(kubeconfig: &Path, namespace: &str, extra: &[&str]) -> std::process::Output {
    Command::new(dataflow_tests::cli_bin())
        .args([
            "tap",
            "--dataflow",
            "tapped",
            "-n",
            namespace,
            "--count",
            "3",
        ])
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("dataflow runs")
}

pub(super) fn a_running_flow_is_tapped_through_the_pod_proxy(
    admin: &Cluster,
    namespace: &str,
    dir: &Path,
) {
    admin.apply(namespace, FLOW).expect("apply the tapped flow");
    let deployment = wait_for(
        "the tapped flow's Deployment",
        WAIT,
        || admin.get(namespace, "deployment", "dataflow-tapped"),
        || admin.ok(&["get", "df", "tapped", "-n", namespace, "-o", "yaml"]),
    );
    let secret = admin
        .get(namespace, "secret", "dataflow-tapped-tap")
        .expect("the tap Secret");
    assert!(secret["data"]["token"].is_string());

    // The node runs the pod's container, listening where the API server can reach it.
    let host = host_address();
    let port = free_port();
    let pod_dir = dir.join("tapped-node");
    std::fs::create_dir_all(&pod_dir).expect("mkdir");
    let template = &deployment["spec"]["template"];
    let mut processor = run_pod(
        admin,
        template,
        &PodRun {
            namespace,
            pod_name: "dataflow-tapped-7f9c-test",
            binary: &processor_bin(),
            env_overrides: &[("DATAFLOW_REPORT_STATUS", "false".to_owned())],
            arg_overrides: &[("--metrics-addr=", format!("--metrics-addr={host}:{port}"))],
            dir: &pod_dir,
        },
    );
    let mut spec = template["spec"].clone();
    spec["containers"][0]["ports"] =
        json!([{"name": "metrics", "containerPort": port, "protocol": "TCP"}]);
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "dataflow-tapped-7f9c-test", "labels": template["metadata"]["labels"]},
        "spec": spec});
    admin
        .try_run(
            &["apply", "-n", namespace, "-f", "-"],
            Some(&pod.to_string()),
        )
        .expect("the Pod object");
    let status = json!({"status": {"phase": "Running", "podIP": host, "podIPs": [{"ip": host}]}});
    admin.ok(&[
        "patch",
        "pod",
        "dataflow-tapped-7f9c-test",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);

    let output = wait_for(
        "dataflow tap through the pod proxy",
        WAIT,
        || {
            let output = dataflow_tap(admin.kubeconfig(), namespace, &["--at", "step:0"]);
            output.status.success().then_some(output)
        },
        || {
            let output = dataflow_tap(admin.kubeconfig(), namespace, &["--at", "step:0"]);
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&output.stderr),
                processor.log()
            )
        },
    );
    let samples: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    assert_eq!(samples.len(), 3);
    assert!(
        samples
            .iter()
            .all(|s| s["payload"]["id"].as_u64().unwrap() > 4 && s["step"] == 0)
    );

    // A user bound to `view` may not read the tap Secret: Kubernetes refuses.
    let viewer = dir.join("viewer.kubeconfig");
    admin.ok(&["create", "serviceaccount", "tap-viewer", "-n", namespace]);
    admin.ok(&[
        "create",
        "rolebinding",
        "tap-viewer",
        "-n",
        namespace,
        "--clusterrole=view",
        &format!("--serviceaccount={namespace}:tap-viewer"),
    ]);
    let as_viewer = admin.service_account(namespace, "tap-viewer", &viewer);
    // The API server's authorizer learns of a new binding a moment later:
    // until then even listing the pods is refused.
    let refused = wait_for(
        "the viewer's refusal to read the tap Secret",
        WAIT,
        || {
            let output = dataflow_tap(as_viewer.kubeconfig(), namespace, &[]);
            String::from_utf8_lossy(&output.stderr)
                .contains("dataflow-tapped-tap")
                .then_some(output)
        },
        || {
            String::from_utf8_lossy(&dataflow_tap(as_viewer.kubeconfig(), namespace, &[]).stderr)
                .into_owned()
        },
    );
    assert!(!refused.status.success());
    let reason = String::from_utf8_lossy(&refused.stderr);
    assert!(
        reason.contains("dataflow-tapped-tap") && reason.contains("forbidden"),
        "{reason}"
    );

    // Granted the Secret and the pod proxy, the same user may tap.
    let role = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: tap-tapped}}\nrules:\n  - {{apiGroups: [\"\"], resources: [secrets], resourceNames: [dataflow-tapped-tap], verbs: [get]}}\n  - {{apiGroups: [\"\"], resources: [pods/proxy], verbs: [get]}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: tap-tapped}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: tap-tapped}}\nsubjects: [{{kind: ServiceAccount, name: tap-viewer, namespace: {namespace}}}]\n"
    );
    admin.apply(namespace, &role).expect("grant the tap");
    let allowed = wait_for(
        "the granted user's tap",
        WAIT,
        || {
            let output = dataflow_tap(as_viewer.kubeconfig(), namespace, &["--at", "sink"]);
            output.status.success().then_some(output)
        },
        || {
            String::from_utf8_lossy(&dataflow_tap(as_viewer.kubeconfig(), namespace, &[]).stderr)
                .into_owned()
        },
    );
    assert_eq!(String::from_utf8_lossy(&allowed.stdout).lines().count(), 3);
    processor.stop();
    admin.ok(&["delete", "df", "tapped", "-n", namespace, "--wait=false"]);
    admin.ok(&[
        "delete",
        "pod",
        "dataflow-tapped-7f9c-test",
        "-n",
        namespace,
        "--wait=false",
    ]);
}
