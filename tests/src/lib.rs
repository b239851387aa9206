//! Helpers shared by the end-to-end tests: where the built binaries and components
//! are, running the processor, and comparing JSON with placeholders.
//!
//! The tests expect `make build` to have run (`make test` does): they use the release
//! processor binary and the components under `target/wasm32-wasip2/wasm/`.

pub mod browser;
pub mod cluster;
pub mod fake_nessie;
pub mod fake_trino;
pub mod jobs;
pub mod keycloak;
pub mod kubelet;
pub mod nessie_server;
pub mod oci;
pub mod script_steps;
pub mod services;
pub mod trino_client;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use regex::Regex;
use serde_json::Value;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The processor binary (`DATAFLOW_PROCESSOR_BIN` overrides).
pub fn processor_bin() -> PathBuf {
    std::env::var_os("DATAFLOW_PROCESSOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/release/dataflow-processor"))
}

/// The authors' tool, `dataflow`.
pub fn cli_bin() -> PathBuf {
    workspace().join("target/release/dataflow")
}

/// A built component, by crate name with underscores (`dataflow_transform_mask`).
pub fn component(name: &str) -> PathBuf {
    let path = workspace().join(format!("target/wasm32-wasip2/wasm/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `make wasm`",
        path.display()
    );
    path
}

/// Runs the processor with `args`, feeding `stdin`.
pub fn processor(args: &[&str], stdin: impl AsRef<[u8]>) -> Output {
    processor_with_env(args, stdin, &[])
}

/// [`processor`], with more environment variables.
pub fn processor_with_env(args: &[&str], stdin: impl AsRef<[u8]>, env: &[(&str, &str)]) -> Output {
    use std::io::Write;
    let mut child = Command::new(processor_bin())
        .args(args)
        .env("LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the processor binary runs (build it with `make build`)");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_ref()).expect("write stdin");
    }
    child.wait_with_output().expect("processor finishes")
}

/// Writes `text` to `dir/name`; returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// The JSON lines of a file as written so far (none while it does not exist).
pub fn file_json_lines(path: &Path) -> Vec<Value> {
    json_lines(&std::fs::read_to_string(path).unwrap_or_default())
}

/// Runs `dataflow-processor run --spec <spec>` to its end, off the async runtime;
/// returns whether it succeeded, and its standard error.
pub async fn run_spec_to_end(spec: &Path) -> (bool, String) {
    run_spec_to_end_with_env(spec, &[]).await
}

/// [`run_spec_to_end`], with more environment variables.
pub async fn run_spec_to_end_with_env(spec: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let spec = spec.to_owned();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let output = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        processor_with_env(&["run", "--spec", &spec.to_string_lossy()], "", &env)
    })
    .await
    .expect("the processor run finishes");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Parses a JSON-lines text.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Compares `actual` with `expected`, including key order. In `expected`, the string
/// `"$int"` matches any integer and `"$matches:<regex>"` any string matching it.
pub fn json_matches(expected: &Value, actual: &Value) -> Result<(), String> {
    match (expected, actual) {
        (Value::String(e), Value::Number(a)) if e == "$int" => {
            if a.as_i64().is_some() {
                Ok(())
            } else {
                Err(format!("{a} is not an integer"))
            }
        }
        (Value::String(e), Value::String(a)) if e.starts_with("$matches:") => {
            let pattern = &e["$matches:".len()..];
            let re = Regex::new(pattern).map_err(|err| format!("bad pattern {pattern}: {err}"))?;
            if re.is_match(a) {
                Ok(())
            } else {
                Err(format!("{a:?} does not match {pattern}"))
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            let ek: Vec<_> = e.keys().collect();
            let ak: Vec<_> = a.keys().collect();
            if ek != ak {
                return Err(format!("keys differ: expected {ek:?}, got {ak:?}"));
            }
            for (k, ev) in e {
                json_matches(ev, &a[k]).map_err(|err| format!("{k}: {err}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!("expected {} items, got {}", e.len(), a.len()));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                json_matches(ev, av).map_err(|err| format!("[{i}]: {err}"))?;
            }
            Ok(())
        }
        // Exact text comparison: number text must survive untouched.
        (e, a) if *e == *a => Ok(()),
        (e, a) => Err(format!("expected {e}, got {a}")),
    }
}
