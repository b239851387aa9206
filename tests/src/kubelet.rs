//! The kubelet's part, played by the test harness: the test API server has no
//! node, so a pod template read from the server (the operator's Deployment in the
//! chart, or a processor Deployment the operator wrote) is run here as a local
//! process. Its ConfigMap, Secret and emptyDir volumes are written to a temporary
//! directory, and every mount path in its arguments, environment and mounted text
//! files is rewritten to point there; `fieldRef` variables get the pod's name and
//! namespace; the pod's ServiceAccount is given as a token kubeconfig, so the real
//! RBAC decides what the process may do.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use serde_json::Value;

use crate::cluster::Cluster;

/// A running container; killed when dropped.
pub struct RunningContainer {
    child: Child,
    log: PathBuf,
}

impl RunningContainer {
    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the process to end by itself; its exit code
    /// (`None` when it is still running, or was killed by a signal).
    pub fn wait_for_exit(&mut self, timeout: std::time::Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    /// Stops the process (SIGTERM, then SIGKILL after 10 s) and waits for it.
    pub fn stop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        for _ in 0..100 {
            if !self.running() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RunningContainer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the node needs to know beyond the pod template.
pub struct PodRun<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod's name (for `fieldRef: metadata.name`).
    pub pod_name: &'a str,
    /// The local binary that stands for the image's entrypoint or the container's
    /// `command`.
    pub binary: &'a Path,
    /// Environment values replaced after the template's are read (addresses the
    /// pod would own alone, such as its metrics port).
    pub env_overrides: &'a [(&'a str, String)],
    /// Arguments replaced by prefix: an argument starting with the first string is
    /// replaced by the second.
    pub arg_overrides: &'a [(&'a str, String)],
    /// Where the volumes and the log go.
    pub dir: &'a Path,
}

/// Starts the first container of `template` (a pod template as JSON) as a local
/// process, its volumes read from `cluster` (an administrator) and its
/// ServiceAccount's token written to a kubeconfig it gets as `KUBECONFIG`.
pub fn run_pod(cluster: &Cluster, template: &Value, run: &PodRun<'_>) -> RunningContainer {
    let pod = &template["spec"];
    let container = &pod["containers"][0];
    let mounts = mount_volumes(cluster, pod, container, run);

    let account = pod["serviceAccountName"].as_str().unwrap_or("default");
    let kubeconfig = run.dir.join("serviceaccount.kubeconfig");
    cluster.service_account(run.namespace, account, &kubeconfig);

    let mut command = Command::new(run.binary);
    for arg in container["args"].as_array().into_iter().flatten() {
        let arg = rewrite_paths(arg.as_str().unwrap_or_default(), &mounts);
        let arg = match run.arg_overrides.iter().find(|(p, _)| arg.starts_with(p)) {
            Some((_, replacement)) => replacement.clone(),
            None => arg,
        };
        command.arg(arg);
    }
    command.env_clear();
    for inherited in ["PATH", "HOME", "DATAFLOW_RUNTIME_DIR"] {
        if let Some(value) = std::env::var_os(inherited) {
            command.env(inherited, value);
        }
    }
    for variable in container["env"].as_array().into_iter().flatten() {
        let name = variable["name"].as_str().unwrap_or_default();
        let value = match variable["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.name") => run.pod_name.to_owned(),
            Some("metadata.namespace") => run.namespace.to_owned(),
            Some(other) => panic!("the node does not provide fieldRef {other}"),
            None => rewrite_paths(variable["value"].as_str().unwrap_or_default(), &mounts),
        };
        command.env(name, value);
    }
    for (name, value) in run.env_overrides {
        command.env(name, value);
    }
    command.env("KUBECONFIG", &kubeconfig);
    // What a kubelet tells every container about the API server.
    command.env("KUBERNETES_SERVICE_HOST", "127.0.0.1");

    let log = run.dir.join("container.log");
    let out = File::create(&log).expect("create the container log");
    let err = out.try_clone().expect("clone the log file");
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", run.binary.display()));
    RunningContainer { child, log }
}

/// Writes each mounted volume under `run.dir`; returns (mount path, local dir),
/// longest mount path first.
fn mount_volumes(
    cluster: &Cluster,
    pod: &Value,
    container: &Value,
    run: &PodRun<'_>,
) -> Vec<(String, PathBuf)> {
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?, v)))
        .collect();
    let mut mounts = Vec::new();
    let mut text_files = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = mount["name"].as_str().unwrap_or_default();
        let path = mount["mountPath"].as_str().unwrap_or_default();
        let local = run.dir.join(format!("volume-{name}"));
        std::fs::create_dir_all(&local).expect("create a volume directory");
        let volume = volumes
            .get(name)
            .unwrap_or_else(|| panic!("mount {name} names no volume"));
        for (key, bytes) in volume_files(cluster, run.namespace, volume) {
            let file = local.join(&key);
            std::fs::write(&file, &bytes).expect("write a volume file");
            if String::from_utf8(bytes).is_ok() {
                text_files.push(file);
            }
        }
        mounts.push((path.to_owned(), local));
    }
    mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    for file in text_files {
        let text = std::fs::read_to_string(&file).expect("read a volume file");
        std::fs::write(&file, rewrite_paths(&text, &mounts)).expect("rewrite a volume file");
    }
    mounts
}

/// The files a ConfigMap, Secret or emptyDir volume holds: (path, bytes).
fn volume_files(cluster: &Cluster, namespace: &str, volume: &Value) -> Vec<(String, Vec<u8>)> {
    let engine = base64::engine::general_purpose::STANDARD;
    let (object, items) = if let Some(source) = volume.get("configMap") {
        let name = source["name"].as_str().unwrap_or_default();
        let object = cluster
            .get(namespace, "configmap", name)
            .unwrap_or_else(|| panic!("the pod mounts ConfigMap {name}, which does not exist"));
        (object, &source["items"])
    } else if let Some(source) = volume.get("secret") {
        let name = source["secretName"].as_str().unwrap_or_default();
        let object = cluster
            .get(namespace, "secret", name)
            .unwrap_or_else(|| panic!("the pod mounts Secret {name}, which does not exist"));
        (object, &source["items"])
    } else if volume.get("emptyDir").is_some() {
        return Vec::new();
    } else {
        panic!("the node cannot mount volume {volume}");
    };
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let secret = volume.get("secret").is_some();
    for (key, value) in object["data"].as_object().into_iter().flatten() {
        let text = value.as_str().unwrap_or_default();
        let bytes = if secret {
            engine.decode(text).expect("Secret data is base64")
        } else {
            text.as_bytes().to_vec()
        };
        files.insert(key.clone(), bytes);
    }
    for (key, value) in object["binaryData"].as_object().into_iter().flatten() {
        let bytes = engine
            .decode(value.as_str().unwrap_or_default())
            .expect("binaryData is base64");
        files.insert(key.clone(), bytes);
    }
    match items.as_array() {
        None => files.into_iter().collect(),
        Some(items) => items
            .iter()
            .map(|item| {
                let key = item["key"].as_str().unwrap_or_default();
                let bytes = files
                    .get(key)
                    .unwrap_or_else(|| panic!("the volume's item {key} is not in its source"))
                    .clone();
                (item["path"].as_str().unwrap_or(key).to_owned(), bytes)
            })
            .collect(),
    }
}

/// `text` with every mount path replaced by its local directory.
fn rewrite_paths(text: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut out = text.to_owned();
    for (path, local) in mounts {
        out = out.replace(path.as_str(), &local.to_string_lossy());
    }
    out
}

/// Reports a Deployment's pods ready, as the Deployment controller would once
/// the kubelet found the pod ready.
pub fn report_deployment_ready(cluster: &Cluster, namespace: &str, name: &str) {
    let deployment = cluster
        .get(namespace, "deployment", name)
        .unwrap_or_else(|| panic!("Deployment {namespace}/{name} is missing"));
    let generation = deployment["metadata"]["generation"].as_i64().unwrap_or(1);
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    let status = serde_json::json!({
        "status": {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [{
                "type": "Available",
                "status": "True",
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            }],
        }
    });
    cluster.ok(&[
        "patch",
        "-n",
        namespace,
        "deployment",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
}

/// Patches the status of Job `namespace/name` as the Job controller does when
/// its pod ended: `exit_code` 0 is one succeeded pod, anything else one failed
/// pod and the Job given up (`BackoffLimitExceeded`).
pub fn report_job_finished(cluster: &Cluster, namespace: &str, name: &str, exit_code: i32) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let status = if exit_code == 0 {
        serde_json::json!({"status": {
            "startTime": now,
            "completionTime": now,
            "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods", "lastTransitionTime": now},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods", "lastTransitionTime": now},
            ],
        }})
    } else {
        let message = format!("the pod's container exited with code {exit_code}");
        serde_json::json!({"status": {
            "startTime": now,
            "failed": 1,
            "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": message, "lastTransitionTime": now},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": message, "lastTransitionTime": now},
            ],
        }})
    };
    cluster.ok(&[
        "patch",
        "-n",
        namespace,
        "job",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
}
