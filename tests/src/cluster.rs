//! The real Kubernetes API server `make services` starts (kube-apiserver on etcd,
//! built from the Go module proxy), reached through its own `kubectl` as a user
//! would, with the admin credentials the script made or a ServiceAccount's token.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::services::service_env;

/// `kubectl` against the test cluster with one set of credentials.
#[derive(Debug, Clone)]
pub struct Cluster {
    kubectl: PathBuf,
    kubeconfig: PathBuf,
}

impl Cluster {
    /// The cluster as its administrator (group `system:masters`).
    pub fn admin() -> Self {
        Cluster {
            kubectl: PathBuf::from(service_env("DATAFLOW_TEST_KUBECTL")),
            kubeconfig: PathBuf::from(service_env("DATAFLOW_TEST_KUBECONFIG")),
        }
    }
    /// Fills the built-in aggregated roles (`view`, `edit`, `admin`) with the
    /// rules of the roles labelled to aggregate into them, as the controller
    /// manager's clusterrole-aggregation controller does in a real cluster.
    /// Only a kube-apiserver runs here, so without this `view` has no rules.
    pub fn aggregate_builtin_roles(&self) {
        for role in ["view", "edit", "admin"] {
            let selector = format!("rbac.authorization.k8s.io/aggregate-to-{role}=true");
            let listed: Value = serde_json::from_str(&self.ok(&[
                "get",
                "clusterroles",
                "-l",
                &selector,
                "-o",
                "json",
            ]))
            .expect("a list of ClusterRoles");
            let rules: Vec<Value> = listed["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["metadata"]["name"] != role)
                .flat_map(|r| r["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            let patch = serde_json::json!({ "rules": rules }).to_string();
            self.ok(&["patch", "clusterrole", role, "--type=merge", "-p", &patch]);
        }
    }

    /// The kubeconfig these credentials are in.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Runs kubectl with `args`, feeding `stdin` when given.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.kubectl.display()));
        if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
            input
                .write_all(text.as_bytes())
                .expect("write kubectl's stdin");
        }
        child.wait_with_output().expect("kubectl finishes")
    }

    /// Runs kubectl; its stdout on success, its stderr as the error.
    pub fn try_run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let output = self.run(args, stdin);
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Runs kubectl and requires success.
    pub fn ok(&self, args: &[&str]) -> String {
        self.try_run(args, None)
            .unwrap_or_else(|e| panic!("kubectl {} failed: {e}", args.join(" ")))
    }

    /// `kubectl apply -f -` of `yaml` in `namespace`.
    pub fn apply(&self, namespace: &str, yaml: &str) -> Result<String, String> {
        self.try_run(&["apply", "-n", namespace, "-f", "-"], Some(yaml))
    }

    /// One object as JSON, or None when it does not exist (`namespace` empty for
    /// a cluster-scoped object).
    pub fn get(&self, namespace: &str, resource: &str, name: &str) -> Option<Value> {
        let mut args = vec!["get", resource, name, "-o", "json"];
        if !namespace.is_empty() {
            args.extend(["-n", namespace]);
        }
        let output = self.run(&args, None);
        if output.status.success() {
            serde_json::from_slice(&output.stdout).ok()
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains("NotFound") || stderr.contains("not found"),
                "kubectl get {resource} {name}: {stderr}"
            );
            None
        }
    }

    /// Credentials of ServiceAccount `namespace/account`: a token from the
    /// TokenRequest API in a kubeconfig written to `path`, so that RBAC decides
    /// what its holder may do.
    pub fn service_account(&self, namespace: &str, account: &str, path: &Path) -> Cluster {
        let token = self.ok(&[
            "create",
            "token",
            account,
            "-n",
            namespace,
            "--duration",
            "2h",
        ]);
        let server = self.ok(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ]);
        let ca = self.ok(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority}",
        ]);
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n  - name: test\n    cluster: {{server: \"{server}\", certificate-authority: \"{ca}\"}}\nusers:\n  - name: {account}\n    user: {{token: \"{}\"}}\ncontexts:\n  - name: test\n    context: {{cluster: test, user: {account}, namespace: {namespace}}}\ncurrent-context: test\n",
            token.trim()
        );
        std::fs::write(path, config).expect("write the ServiceAccount's kubeconfig");
        Cluster {
            kubectl: self.kubectl.clone(),
            kubeconfig: path.to_owned(),
        }
    }
}

/// A namespace for one test's DataFlows: `prefix-<pid>`, created when missing.
pub fn test_namespace(cluster: &Cluster, prefix: &str) -> String {
    let name = format!("{prefix}-{}", std::process::id());
    if cluster.get("", "namespace", &name).is_none() {
        cluster.ok(&["create", "namespace", &name]);
    }
    name
}

impl Cluster {
    /// Installs the chart's CRDs, DataFlow and DataFlowCron (server-side apply:
    /// they are too large for the annotation a client-side apply keeps), and
    /// waits until they are served.
    pub fn install_crd(&self) {
        for crd in ["dataflows", "dataflowcrons"] {
            let file = crate::workspace().join(format!(
                "charts/dataflow-operator/crds/{crd}.dataflow.dataflow.io.yaml"
            ));
            self.ok(&[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=dataflow-tests",
                "-f",
                &file.to_string_lossy(),
            ]);
            self.ok(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                &format!("crd/{crd}.dataflow.dataflow.io"),
            ]);
        }
    }

    /// Creates DataFlow `namespace/name` with `spec`, then gives it `status`
    /// through the status subresource, as the operator would.
    pub fn create_dataflow(&self, namespace: &str, name: &str, spec: &Value, status: &Value) {
        let object = serde_json::json!({
            "apiVersion": "dataflow.dataflow.io/v1",
            "kind": "DataFlow",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        });
        self.try_run(&["create", "-f", "-"], Some(&object.to_string()))
            .unwrap_or_else(|e| panic!("create DataFlow {namespace}/{name}: {e}"));
        let patch = serde_json::json!({ "status": status }).to_string();
        self.ok(&[
            "patch",
            "-n",
            namespace,
            "dataflow",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ]);
    }
}

/// Calls `check` until it gives a value or `timeout` passes; then panics naming
/// `what` and the last state `describe` gives.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: not within {} s; last state:\n{}",
                timeout.as_secs(),
                describe()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}
