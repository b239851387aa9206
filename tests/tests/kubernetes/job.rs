//! Flows that run to completion (`execution.mode: job`) through the real API
//! server: the operator's Job, its pod run on the node to its end, the Job's
//! status set as the Job controller sets it, and the DataFlow's phase and
//! counts in `kubectl get df`.

use std::path::Path;
use std::time::Duration;

use dataflow_tests::cluster::{Cluster, free_port, wait_for};
use dataflow_tests::kubelet::{PodRun, report_job_finished, run_pod};
use dataflow_tests::processor_bin;
use serde_json::Value;

use super::{WAIT, workloads};

/// A job flow named `name` reading `count` generated records into `sink`.
fn job_flow(name: &str, count: u32, sink: &str) -> String {
    format!(
        "apiVersion: dataflow.dataflow.io/v1\nkind: DataFlow\nmetadata: {{name: {name}}}\nspec:\n  execution: {{mode: job}}\n  source: {{type: generator, generator: {{count: {count}}}}}\n  sink: {sink}\n"
    )
}

/// Applies `manifest`, waits for the operator's Job for `name`, runs its pod to
/// its end on the node and reports that end in the Job's status as the Job
/// controller would; returns the pod's exit code and log.
fn run_job_of(
    admin: &Cluster,
    namespace: &str,
    dir: &Path,
    name: &str,
    manifest: &str,
) -> (i32, String) {
    admin
        .apply(namespace, manifest)
        .expect("apply the job flow");
    let job = wait_for(
        &format!("the operator's Job for {name}"),
        WAIT,
        || {
            let made = workloads(admin, namespace, name);
            let job = made.lines().find_map(|l| l.strip_prefix("job.batch/"))?;
            admin.get(namespace, "job", job)
        },
        || admin.ok(&["get", "df", "-n", namespace, name, "-o", "yaml"]),
    );
    let job_name = job["metadata"]["name"]
        .as_str()
        .expect("a Job name")
        .to_owned();
    let pod_dir = dir.join(&job_name);
    std::fs::create_dir_all(&pod_dir).expect("the pod's directory");
    let binary = processor_bin();
    let mut pod = run_pod(
        admin,
        &job["spec"]["template"],
        &PodRun {
            namespace,
            pod_name: &format!("{job_name}-x7k2p"),
            binary: &binary,
            env_overrides: &[],
            arg_overrides: &[(
                "--metrics-addr=",
                format!("--metrics-addr=127.0.0.1:{}", free_port()),
            )],
            dir: &pod_dir,
        },
    );
    let code = pod
        .wait_for_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the job's processor did not end: {}", pod.log()));
    report_job_finished(admin, namespace, &job_name, code);
    (code, pod.log())
}

/// The DataFlow's status once its phase is `phase`.
fn status_once(admin: &Cluster, namespace: &str, name: &str, phase: &str) -> Value {
    wait_for(
        &format!("{name} to show {phase}"),
        WAIT,
        || {
            let dataflow = admin.get(namespace, "df", name)?;
            (dataflow["status"]["phase"] == phase).then(|| dataflow["status"].clone())
        },
        || admin.ok(&["get", "df", "-n", namespace, name, "-o", "yaml"]),
    )
}

/// A job that reads its 25 records exits 0 and the DataFlow shows `Succeeded`
/// with the processor's count; one whose sink cannot be written exits non-zero
/// and shows `Failed` with the Job's reason and the processor's error.
pub(super) fn job_flows_report_how_they_ended(admin: &Cluster, namespace: &str, dir: &Path) {
    let (code, log) = run_job_of(
        admin,
        namespace,
        dir,
        "export",
        &job_flow("export", 25, "{type: stdout}"),
    );
    assert_eq!(code, 0, "{log}");
    let status = status_once(admin, namespace, "export", "Succeeded");
    assert_eq!(status["processedCount"], 25, "{status}");
    let row = admin.ok(&["get", "df", "-n", namespace, "export"]);
    assert!(row.contains("Succeeded"), "{row}");

    let unwritable = "{type: file, file: {path: /proc/no-such-dir/out.jsonl}}";
    let (code, log) = run_job_of(
        admin,
        namespace,
        dir,
        "broken",
        &job_flow("broken", 5, unwritable),
    );
    assert_ne!(code, 0, "{log}");
    let status = status_once(admin, namespace, "broken", "Failed");
    let text = status.to_string();
    assert!(
        text.contains("BackoffLimitExceeded") && text.contains("/proc/no-such-dir"),
        "the Job's reason and the processor's error: {status}"
    );
}
