//! Hostile input against the processor binary: every depth, size and time that a
//! spec or a message controls is bounded, and what breaks a bound is reported
//! with its field or message; nothing aborts, stalls or loses a message.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dataflow_tests::{component, json_lines, processor, processor_bin};
use serde_json::Value;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `validate` on a spec with one filter whose condition is `condition`.
fn validate_condition(dir: &Path, condition: &str) -> Output {
    let spec = dir.join("flow.yaml");
    let condition = serde_json::to_string(condition).unwrap();
    std::fs::write(
        &spec,
        format!(
            "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: filter, filter: {{condition: {condition}}}}}\n"
        ),
    )
    .unwrap();
    processor(&["validate", "--spec", spec.to_str().unwrap()], "")
}

fn assert_refused(output: &Output, expected: &str) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "a clear refusal, not an abort: {}",
        stderr(output)
    );
    let text = stderr(output);
    assert!(text.contains(expected), "{text}");
}

#[test]
fn conditions_nested_or_chained_without_bound_are_refused_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    for parens in [2_000, 10_000] {
        let deep = format!("{}a{}", "(".repeat(parens), ")".repeat(parens));
        assert_refused(
            &validate_condition(dir.path(), &deep),
            "spec.transformations[0].filter.condition: invalid condition",
        );
    }
    assert_refused(
        &validate_condition(dir.path(), &format!("{}a", "!".repeat(10_000))),
        "nest more than 32 deep",
    );
    let chain = vec!["a"; 87_000].join(" && ");
    assert_refused(&validate_condition(dir.path(), &chain), "bytes long");
}

#[test]
fn deep_yaml_is_refused_fast() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("flow.yaml");
    let mut text = String::from("source: {type: stdin}\nsink: {type: stdout}\nx:\n");
    // 100,000 levels in flow style (block style needs quadratic text).
    text.push_str(&"[".repeat(100_000));
    text.push_str(&"]".repeat(100_000));
    text.push('\n');
    std::fs::write(&spec, text).unwrap();
    let started = Instant::now();
    let output = processor(&["validate", "--spec", spec.to_str().unwrap()], "");
    assert_refused(&output, "nests deeper than 64 levels");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn unknown_top_level_keys_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("flow.yaml");
    std::fs::write(
        &spec,
        "source: {type: stdin}\nsink: {type: stdout}\ntransformation:\n  - {type: mask, mask: {fields: [card]}}\n",
    )
    .unwrap();
    let output = processor(&["validate", "--spec", spec.to_str().unwrap()], "");
    assert_refused(&output, "unknown field `transformation`");
}

#[test]
fn a_validation_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("flow.yaml");
    std::fs::write(
        &spec,
        "source: {type: stdin}\nsink: {type: file, file: {path: \"\"}}\ntransformations: [{type: mask, mask: {fields: []}}]\n",
    )
    .unwrap();
    let output = processor(&["validate", "--spec", spec.to_str().unwrap()], "");
    let text = stderr(&output);
    assert_eq!(
        text.matches("spec.transformations[0].mask.fields: must not be empty")
            .count(),
        1,
        "{text}"
    );
}

fn wasm_spec(dir: &Path, path: &str) -> std::path::PathBuf {
    let spec = dir.join("flow.yaml");
    std::fs::write(
        &spec,
        format!("source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations: [{{type: wasm, wasm: {{path: {path}}}}}]\n"),
    )
    .unwrap();
    spec
}

#[test]
fn component_paths_to_devices_or_secrets_are_refused_without_reading_or_showing_them() {
    let dir = tempfile::tempdir().unwrap();
    for device in ["/dev/zero", "/dev/urandom"] {
        let started = Instant::now();
        let output = processor(
            &[
                "validate",
                "--spec",
                wasm_spec(dir.path(), device).to_str().unwrap(),
            ],
            "",
        );
        assert_refused(&output, "not a regular file");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    let secret = dir.path().join("shadow");
    std::fs::write(&secret, "root:$6$SECRET-HASH:19000:0:99999:7:::\n").unwrap();
    let output = processor(
        &[
            "validate",
            "--spec",
            wasm_spec(dir.path(), secret.to_str().unwrap())
                .to_str()
                .unwrap(),
        ],
        "",
    );
    assert_refused(&output, "not WebAssembly");
    assert!(!stderr(&output).contains("SECRET"), "{}", stderr(&output));
}

/// Runs `spec` and returns the output with the wall time it took.
fn timed_run(spec: &Path) -> (Output, Duration) {
    let started = Instant::now();
    let output = processor(&["run", "--spec", spec.to_str().unwrap()], "");
    (output, started.elapsed())
}

fn hostile_spec(dir: &Path, config: &str, limits: &str, lines: &[&str]) -> std::path::PathBuf {
    std::fs::write(dir.join("in.jsonl"), lines.join("\n")).unwrap();
    let spec = dir.join("flow.yaml");
    std::fs::write(
        &spec,
        format!(
            r#"
source: {{type: file, file: {{path: {d}/in.jsonl}}}}
sink: {{type: file, file: {{path: {d}/out.jsonl}}}}
errors: {{type: file, file: {{path: {d}/errors.jsonl}}}}
transformations:
  - {{type: wasm, wasm: {{path: {wasm}, config: {config}, limits: {limits}}}}}
"#,
            d = dir.display(),
            wasm = component("dataflow_test_components").display()
        ),
    )
    .unwrap();
    spec
}

fn read(path: &Path) -> Vec<Value> {
    json_lines(&std::fs::read_to_string(path).unwrap_or_default())
}

#[test]
fn a_sleeping_component_is_stopped_at_its_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let spec = hostile_spec(
        dir.path(),
        "{mode: sleep}",
        "{timeoutMs: 500}",
        &[r#"{"id": 1}"#, r#"{"id": 2, "evil": true}"#, r#"{"id": 3}"#],
    );
    let (output, took) = timed_run(&spec);
    assert!(output.status.success(), "{}", stderr(&output));
    // The sleep asks for 20 s; the call ends at its 500 ms limit (a replay of the
    // evil message alone takes another 500 ms).
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let errors = read(&dir.path().join("errors.jsonl"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["error"]["type"], "transform_timeout");
    assert_eq!(read(&dir.path().join("out.jsonl")).len(), 2);
}

#[test]
fn a_constructor_that_sleeps_is_stopped_at_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let spec = hostile_spec(
        dir.path(),
        "{mode: sleep, sleepInCreate: true}",
        "{timeoutMs: 500}",
        &[r#"{"id": 1}"#],
    );
    let started = Instant::now();
    let output = processor(&["validate", "--spec", spec.to_str().unwrap()], "");
    assert!(!output.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

/// The peak resident memory of a process, in MiB, polled until it exits.
fn run_measuring_peak(spec: &Path) -> (Output, u64) {
    let mut child = Command::new(processor_bin())
        .args(["run", "--spec", spec.to_str().unwrap()])
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak_kib = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(peak_kib)
                .max(peak_kib);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    (
        Output {
            status,
            stdout: Vec::new(),
            stderr,
        },
        peak_kib / 1024,
    )
}

#[test]
fn fan_out_stays_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"id": {i}, "evil": true}}"#))
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    // 200 inputs x 5,000 outputs of about 1.1 KiB: 1.1 GB out of 64 MiB components.
    let spec = hostile_spec(
        dir.path(),
        "{mode: fanout, outputs: 5000}",
        "{memoryMiB: 64, timeoutMs: 10000}",
        &refs,
    );
    let (output, peak_mib) = run_measuring_peak(&spec);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("written=1000000"), "{text}");
    assert!(peak_mib < 400, "peak RSS {peak_mib} MiB");
}

#[test]
fn batches_are_bounded_by_bytes_and_oversized_lines_go_to_the_error_sink() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!(r#"{{"blob": "{}"}}"#, "x".repeat(4 * 1024 * 1024));
    let huge = format!(r#"{{"blob": "{}"}}"#, "y".repeat(20 * 1024 * 1024));
    let mut text = String::new();
    for _ in 0..30 {
        text.push_str(&big);
        text.push('\n');
    }
    text.push_str(&huge);
    text.push('\n');
    std::fs::write(dir.path().join("in.jsonl"), text).unwrap();
    let spec = dir.path().join("flow.yaml");
    std::fs::write(
        &spec,
        format!(
            "source: {{type: file, file: {{path: {d}/in.jsonl}}}}\nsink: {{type: file, file: {{path: {d}/out.jsonl}}}}\nerrors: {{type: file, file: {{path: {d}/errors.jsonl}}}}\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let (output, peak_mib) = run_measuring_peak(&spec);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("written=30 filtered=0 errors=1"),
        "{}",
        stderr(&output)
    );
    // 150 MB in; batches of about 8 MiB keep the peak far below that.
    assert!(peak_mib < 220, "peak RSS {peak_mib} MiB");
    let errors = read(&dir.path().join("errors.jsonl"));
    let reason = errors[0]["error"]["message"].as_str().unwrap();
    assert!(
        reason.contains("20971534 bytes") || reason.contains("bytes; messages of at most"),
        "{reason}"
    );
}

#[test]
fn error_records_keep_non_utf8_originals_and_stay_parseable() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = b"{\"ok\": 1}\ncaf\xe9 \xff\n".to_vec();
    input
        .extend_from_slice(format!("{}1{}\n", "[".repeat(100_000), "]".repeat(100_000)).as_bytes());
    std::fs::write(dir.path().join("in.jsonl"), &input).unwrap();
    let spec = dir.path().join("flow.yaml");
    std::fs::write(
        &spec,
        format!(
            "source: {{type: file, file: {{path: {d}/in.jsonl}}}}\nsink: {{type: file, file: {{path: {d}/out.jsonl}}}}\nerrors: {{type: file, file: {{path: {d}/errors.jsonl}}}}\ntransformations: [{{type: snakeCase}}]\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let output = processor(&["run", "--spec", spec.to_str().unwrap()], "");
    assert!(output.status.success(), "{}", stderr(&output));
    // Every record parses with serde_json's default limits.
    let errors = read(&dir.path().join("errors.jsonl"));
    assert_eq!(errors.len(), 2);
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(
            errors[0]["original_message"]["original_data_base64"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(raw, b"caf\xe9 \xff");
    assert!(errors[1]["original_message"]["original_data"].is_string());
}
