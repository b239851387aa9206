//! `dataflow transform init|test|build|package`, the transform authors' tool, end
//! to end: each language's new project passes its own test, a change shows as a
//! diff with exit 1, and what `package` prints runs in the processor (from a
//! transform directory, as the operator would mount it) and is accepted by the
//! real API server with the CRD, its sha256 pin enforced.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use dataflow_tests::cluster::{Cluster, test_namespace};
use dataflow_tests::{file_json_lines, processor, workspace, write_file};
use serde_json::Value;

/// Runs `dataflow` with `args`; Rust projects build into a target directory
/// kept between runs.
fn dataflow(args: &[&str]) -> Output {
    Command::new(dataflow_tests::cli_bin())
        .args(args)
        .env("LOG_LEVEL", "warn")
        .env("CARGO_TARGET_DIR", workspace().join("target/cli-projects"))
        .output()
        .expect("the dataflow binary runs (build it with `make build`)")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn ok(args: &[&str]) -> String {
    let output = dataflow(args);
    assert!(
        output.status.success(),
        "dataflow {}: {}\n{}",
        args.join(" "),
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

/// What `package` printed: the ConfigMap and the step's YAML (uncommented).
struct Package {
    config_map: Value,
    step: String,
    text: String,
}

fn package(dir: &Path) -> Package {
    let text = ok(&["transform", "package", &dir.to_string_lossy()]);
    let end = text
        .find("\n---\n")
        .expect("a ConfigMap document, then the step");
    // The document keeps its last line break: a `|` block ends with it.
    let (config_map, step) = (&text[..=end], &text[end + 5..]);
    let step = step
        .lines()
        .filter_map(|l| l.strip_prefix("#   "))
        .map(|l| format!("  {l}\n"))
        .collect();
    Package {
        config_map: serde_norway::from_str(config_map).expect("the ConfigMap is YAML"),
        step,
        text,
    }
}

impl Package {
    /// Writes the ConfigMap's files as the operator mounts them: `<dir>/<name>/<key>`.
    fn mount(&self, dir: &Path) {
        let name = self.config_map["metadata"]["name"].as_str().unwrap();
        let folder = dir.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        let files = |field: &str| {
            self.config_map[field]
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        for (key, text) in files("data") {
            std::fs::write(folder.join(key), text.as_str().unwrap()).unwrap();
        }
        for (key, encoded) in files("binaryData") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.as_str().unwrap())
                .unwrap();
            std::fs::write(folder.join(key), bytes).unwrap();
        }
    }

    /// A local flow over the project's sample with the packaged step.
    fn flow(&self, project: &Path, work: &Path) -> PathBuf {
        let input = project.join("sample/input.jsonl");
        let spec = format!(
            "source: {{type: file, file: {{path: {input:?}}}}}\nsink: {{type: file, file: {{path: {out:?}}}}}\nerrors: {{type: file, file: {{path: {errors:?}}}}}\ntransformations:\n{step}",
            input = input.display().to_string(),
            out = work.join("out.jsonl").display().to_string(),
            errors = work.join("errors.jsonl").display().to_string(),
            step = self.step,
        );
        write_file(work, "flow.yaml", &spec)
    }
}

/// The expected sample, split into outputs and error messages.
fn expected(project: &Path) -> (Vec<Value>, Vec<String>) {
    let text = std::fs::read_to_string(project.join("sample/expected.jsonl")).unwrap();
    let mut outputs = Vec::new();
    let mut errors = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value = serde_json::from_str(line).unwrap();
        match value.get("$error").and_then(Value::as_str) {
            Some(message) => errors.push(message.to_owned()),
            None => outputs.push(value),
        }
    }
    (outputs, errors)
}

/// The packaged step runs in the processor, from a transform directory, and gives
/// what the project's sample expects; a changed file fails its sha256 pin.
fn packaged_step_runs_in_the_processor(project: &Path, package: &Package) {
    let work = tempfile::tempdir().unwrap();
    let mounted = work.path().join("transforms");
    package.mount(&mounted);
    let flow = package.flow(project, work.path());
    let args = [
        "run",
        "--spec",
        &flow.to_string_lossy(),
        "--transform-dir",
        &mounted.to_string_lossy(),
    ];
    let run = processor(&args, "");
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    let (outputs, errors) = expected(project);
    assert_eq!(file_json_lines(&work.path().join("out.jsonl")), outputs);
    let records = file_json_lines(&work.path().join("errors.jsonl"));
    let messages: Vec<&str> = records
        .iter()
        .map(|r| r["error"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, errors);

    let file =
        std::fs::read_dir(mounted.join(package.config_map["metadata"]["name"].as_str().unwrap()))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&file, bytes).unwrap();
    let validate = processor(
        &[
            "validate",
            "--spec",
            &flow.to_string_lossy(),
            "--transform-dir",
            &mounted.to_string_lossy(),
        ],
        "",
    );
    let text = String::from_utf8_lossy(&validate.stderr);
    assert!(
        !validate.status.success() && text.contains("sha256") && text.contains("expected"),
        "a changed file must fail its pin: {text}"
    );
}

/// The ConfigMap is created and a DataFlow with the step passes the CRD's schema
/// (strict field validation) on the real API server.
fn packaged_manifests_apply(package: &Package, name: &str) {
    let cluster = Cluster::admin();
    cluster.install_crd();
    let namespace = test_namespace(&cluster, "transform-cli");
    cluster
        .apply(&namespace, &package.text)
        .unwrap_or_else(|e| panic!("kubectl apply of package's output: {e}"));
    let stored = cluster
        .get(&namespace, "configmap", name)
        .expect("the ConfigMap exists");
    assert_eq!(
        stored["data"].as_object().map(|d| d.len()).unwrap_or(0)
            + stored["binaryData"]
                .as_object()
                .map(|d| d.len())
                .unwrap_or(0),
        1
    );
    let dataflow = format!(
        "apiVersion: dataflow.dataflow.io/v1\nkind: DataFlow\nmetadata: {{name: {name}}}\nspec:\n  source: {{type: kafka, kafka: {{brokers: [\"kafka:9092\"], topic: orders}}}}\n  sink: {{type: kafka, kafka: {{brokers: [\"kafka:9092\"], topic: clean}}}}\n  transformations:\n{step}",
        step = package.step
    );
    cluster
        .try_run(
            &[
                "apply",
                "--dry-run=server",
                "--validate=strict",
                "-n",
                &namespace,
                "-f",
                "-",
            ],
            Some(&dataflow),
        )
        .unwrap_or_else(|e| panic!("the DataFlow with the packaged step: {e}\n{dataflow}"));
}

fn init(lang: &str, name: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(name);
    let mut args = vec!["transform", "init", dir.to_str().unwrap(), "--lang", lang];
    args.extend_from_slice(extra);
    ok(&args);
    (root, dir)
}

#[test]
fn a_python_project_goes_from_init_to_a_tested_configmap() {
    let started = Instant::now();
    let (_root, dir) = init("python", "clean-orders", &[]);
    let project = dir.to_string_lossy().into_owned();
    let tested = ok(&["transform", "test", &project]);
    assert!(tested.starts_with("ok: 3 output lines"), "{tested}");
    let built = ok(&["transform", "build", &project]);
    assert!(built.contains("nothing to build for python"), "{built}");
    let package = package(&dir);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "init to package took {:?}",
        started.elapsed()
    );
    packaged_step_runs_in_the_processor(&dir, &package);
    packaged_manifests_apply(&package, "clean-orders");

    // A change the sample does not expect is a diff and exit 1.
    let source = dir.join("transform.py");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace(".lower()", ".upper()")).unwrap();
    let failed = dataflow(&["transform", "test", &project]);
    assert_eq!(failed.status.code(), Some(1));
    let shown = stdout(&failed);
    assert!(
        shown.contains("- {\"id\":1,\"email\":\"ada@example.com\"")
            && shown.contains("+ {\"id\":1,\"email\":\"ADA@EXAMPLE.COM\"")
            && shown.contains("  {\"$error\""),
        "{shown}"
    );
    ok(&["transform", "test", &project, "--update"]);
    ok(&["transform", "test", &project]);

    // A syntax error is named with its line before anything runs.
    std::fs::write(&source, "def transform(doc, ctx)\n    return doc\n").unwrap();
    let broken = dataflow(&["transform", "test", &project]);
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(!broken.status.success() && err.contains("line 1"), "{err}");
}

#[test]
fn a_typescript_project_goes_from_init_to_a_tested_configmap() {
    let (_root, dir) = init("typescript", "ts-orders", &[]);
    let project = dir.to_string_lossy().into_owned();
    let tested = ok(&["transform", "test", &project]);
    assert!(tested.starts_with("ok: 3 output lines"), "{tested}");
    let package = package(&dir);
    assert!(
        package.step.contains("type: javascript"),
        "{}",
        package.step
    );
    assert!(
        package.config_map["data"]["transform.ts"]
            .as_str()
            .unwrap()
            .contains("interface Order"),
        "the TypeScript source is shipped as written"
    );
    packaged_step_runs_in_the_processor(&dir, &package);
}

#[test]
fn a_rust_project_builds_tests_and_packages_its_component() {
    let sdk = workspace().join("transforms-wasm/sdk");
    let (_root, dir) = init(
        "rust",
        "rust-orders",
        &["--sdk-path", sdk.to_str().unwrap()],
    );
    // The workspace's lock file pins the same versions, so the build reuses the
    // shared target directory instead of resolving from the registry.
    std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let project = dir.to_string_lossy().into_owned();
    let built = ok(&["transform", "build", &project]);
    assert!(
        built.starts_with("built ")
            && built.contains("rust_orders.wasm (")
            && built.contains("bytes, sha256 "),
        "{built}"
    );
    let tested = ok(&["transform", "test", &project]);
    assert!(tested.starts_with("ok: 3 output lines"), "{tested}");
    let package = package(&dir);
    assert!(
        package.config_map["binaryData"]["rust_orders.wasm"].is_string(),
        "{}",
        package.text.chars().take(400).collect::<String>()
    );
    packaged_step_runs_in_the_processor(&dir, &package);

    // Without the cdylib crate type cargo builds no component: said, not silent.
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "crate-type = [\"cdylib\", \"rlib\"]",
            "crate-type = [\"rlib\"]",
        ),
    )
    .unwrap();
    let failed = dataflow(&["transform", "build", &project]);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success() && err.contains("crate-type = [\"cdylib\", \"rlib\"]"),
        "{err}"
    );
}
