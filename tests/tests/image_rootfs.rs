//! The image's runtime stage, run without a container engine: `scripts/image-rootfs.sh`
//! builds it as a directory (debootstrap of the Dockerfile's Debian suite, its
//! RUN steps chrooted, its COPYs from this checkout's build), and each command
//! here runs chrooted into it as the user the Dockerfile declares, with its ENV.
//! A shared library, CA bundle or runtime the Dockerfile forgets fails here.
//! Needs root (chroot), as `make test` runs on CI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use dataflow_tests::services::{consume, create_topic, kafka_env, unique};
use dataflow_tests::{component, workspace};

/// The built runtime stage and how its container runs.
struct Image {
    _dir: tempfile::TempDir,
    root: PathBuf,
    user: String,
    env: Vec<(String, String)>,
}

impl Image {
    fn build() -> Self {
        // SAFETY: getuid has no preconditions.
        assert_eq!(
            unsafe { libc::getuid() },
            0,
            "this test chroots into the image and needs root"
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path().join("root");
        let output = Command::new(workspace().join("scripts/image-rootfs.sh"))
            .arg(&root)
            .output()
            .expect("scripts/image-rootfs.sh runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let described = std::fs::read_to_string(root.with_extension("env")).expect("the env file");
        let mut user = "root".to_owned();
        let mut env = Vec::new();
        for line in described.lines() {
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            if name == "USER" {
                user = value.to_owned();
            } else {
                env.push((name.to_owned(), value.to_owned()));
            }
        }
        assert_ne!(user, "root", "the image runs as a non-root user");
        // What a pod's emptyDir (with the pod's fsGroup) gives the processor.
        for (name, value) in &env {
            if name == "DATAFLOW_CACHE_DIR" {
                let cache = root.join(value.trim_start_matches('/'));
                std::fs::create_dir_all(&cache).expect("the cache directory");
                chown(&cache, &user);
            }
        }
        Image {
            _dir: dir,
            root,
            user,
            env,
        }
    }

    /// Puts `bytes` at `path` inside the image; returns `path`.
    fn put(&self, path: &str, bytes: impl AsRef<[u8]>) -> String {
        let target = self.root.join(path.trim_start_matches('/'));
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).expect("a directory in the image");
        }
        std::fs::write(&target, bytes).expect("write into the image");
        path.to_owned()
    }

    /// Runs `args` in the image as its user.
    fn run(&self, args: &[&str]) -> Output {
        self.run_as(&self.user, args)
    }

    fn run_as(&self, user: &str, args: &[&str]) -> Output {
        self.run_with(user, &[], args)
    }

    /// Runs `args` as `user`, with `extra` environment over the image's.
    fn run_with(&self, user: &str, extra: &[(&str, &str)], args: &[&str]) -> Output {
        Command::new("chroot")
            .arg(format!("--userspec={user}"))
            .arg(&self.root)
            .args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LOG_LEVEL", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .output()
            .expect("chroot runs")
    }
}

fn chown(path: &Path, user: &str) {
    let status = Command::new("chown")
        .arg(user)
        .arg(path)
        .status()
        .expect("chown runs");
    assert!(status.success());
}

fn ok(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned() + &stderr
}

#[test]
fn the_runtime_stage_runs_the_operator_and_the_processor() {
    let image = Image::build();

    let crd = ok(&image.run(&["dataflow-operator", "crd"]));
    assert!(crd.contains("kind: CustomResourceDefinition"), "{crd}");

    // The local demo, as the README runs it.
    let demo = std::fs::read_to_string(workspace().join("examples/local-demo.yaml")).unwrap();
    let spec = image.put("/tmp/local-demo.yaml", demo);
    let out = ok(&image.run(&["dataflow-processor", "run", "--spec", &spec]));
    assert!(out.contains("processed=20"), "{out}");

    // A user component is compiled (into the cache directory the image names).
    let wasm = std::fs::read(component("pii_redact")).unwrap();
    let wasm = image.put("/tmp/pii_redact.wasm", wasm);
    let flow = format!(
        "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: wasm, wasm: {{path: {wasm}}}}}\n"
    );
    let spec = image.put("/tmp/wasm.yaml", flow);
    let out = ok(&image.run(&["dataflow-processor", "validate", "--spec", &spec]));
    assert_eq!(out.trim(), "ok");

    // A Python step finds the runtime where the image puts it.
    let flow = "source: {type: generator, generator: {count: 3}}\nsink: {type: stdout}\ntransformations:\n  - type: python\n    python:\n      code: |\n        def transform(doc, ctx):\n            doc[\"seen_by\"] = \"python\"\n            return doc\n";
    let spec = image.put("/tmp/python.yaml", flow);
    let out = ok(&image.run_with(
        &image.user,
        &[("LOG_LEVEL", "debug")],
        &["dataflow-processor", "run", "--spec", &spec],
    ));
    assert_eq!(out.matches(r#""seen_by":"python""#).count(), 3, "{out}");
    // ... already compiled: the image's precompiled set answers, with an empty cache.
    assert!(
        out.lines()
            .any(|l| l.contains("compiled component taken from disk")
                && l.contains("/usr/local/lib/dataflow/precompiled/")),
        "{out}"
    );

    // TLS trusts the image's CA bundle: the test CA added the way a derived
    // image would, then SASL_SSL to the test broker with no caFile.
    let kafka = kafka_env();
    let ca = std::fs::read(&kafka.ca).unwrap();
    image.put("/usr/local/share/ca-certificates/dataflow-test.crt", ca);
    ok(&image.run_as("0:0", &["update-ca-certificates"]));
    let topic = unique("image_tls");
    create_topic(&topic);
    let flow = format!(
        "source: {{type: generator, generator: {{count: 5}}}}\nsink:\n  type: kafka\n  kafka: {{brokers: [\"{}\"], topic: {topic}, tls: {{}}, sasl: {{mechanism: scram-sha-512, username: {}, password: \"{}\"}}}}\n",
        kafka.sasl_brokers, kafka.sasl_user, kafka.sasl_password
    );
    let spec = image.put("/tmp/kafka.yaml", flow);
    ok(&image.run(&["dataflow-processor", "run", "--spec", &spec]));
    assert_eq!(consume(&topic, 5, Duration::from_secs(30)).len(), 5);
}
