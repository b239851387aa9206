//! End-to-end tests of the `dataflow-processor` binary with embedded connectors:
//! file -> chain -> file, error sinks, router sinks, bad specs, graceful stop,
//! hostile components inside a running pipeline.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use dataflow_tests::{component, json_lines, processor, processor_bin};
use serde_json::{Value, json};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .map(|t| json_lines(&t))
        .unwrap_or_default()
}

/// Parses the summary line (`processed=.. written=.. ...`), the last line of stderr.
fn summary(output: &Output) -> BTreeMap<String, u64> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr.lines().last().unwrap_or_default();
    let fields: BTreeMap<String, u64> = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect();
    assert!(
        fields.contains_key("processed"),
        "no summary line in stderr:\n{stderr}"
    );
    fields
}

fn order(id: u64, active: bool, level: &str) -> String {
    json!({"orderId": id, "active": active, "level": level, "customerName": "Jo Doe",
           "user": {"userId": id * 7, "email": format!("user{id}@example.com")},
           "card": "4111111111111111", "internal_id": "int-1", "debug": {"traceId": "t"},
           "totalAmount": 0})
    .to_string()
    // json! would print 12.50 as 12.5; the test needs the exact text.
    .replace("\"totalAmount\":0", "\"totalAmount\":12.50")
}

fn run_ok(spec: &Path) -> Output {
    let output = processor(&["run", "--spec", spec.to_str().unwrap()], "");
    assert!(
        output.status.success(),
        "processor failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn file_to_file_through_the_chain_with_error_sink() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out, errors, spec) = (
        dir.path().join("in.jsonl"),
        dir.path().join("out.jsonl"),
        dir.path().join("errors.jsonl"),
        dir.path().join("flow.yaml"),
    );
    let mut lines: Vec<String> = (0..100).map(|i| order(i, i % 4 != 0, "info")).collect();
    lines.insert(10, "this is not json".into());
    lines.insert(50, "{\"broken\": ".into());
    write(&input, &(lines.join("\n") + "\n\n"));
    write(
        &spec,
        &format!(
            r#"
apiVersion: dataflow.dataflow.io/v1
kind: DataFlow
metadata: {{name: e2e}}
spec:
  source: {{type: file, file: {{path: {input}}}}}
  sink: {{type: file, file: {{path: {out}}}}}
  errors: {{type: file, file: {{path: {errors}}}}}
  transformations:
    - {{type: timestamp}}
    - {{type: filter, filter: {{condition: "$.active"}}}}
    - {{type: mask, mask: {{fields: [user.email, card], keepLength: true}}}}
    - {{type: remove, remove: {{fields: [internal_id, debug]}}}}
    - {{type: snakeCase, snakeCase: {{deep: true}}}}
"#,
            input = input.display(),
            out = out.display(),
            errors = errors.display()
        ),
    );
    let output = run_ok(&spec);
    let s = summary(&output);
    assert_eq!(
        (s["processed"], s["written"], s["filtered"], s["errors"]),
        (102, 75, 25, 2)
    );
    let written = read_lines(&out);
    assert_eq!(written.len(), 75);
    for doc in &written {
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "order_id",
                "active",
                "level",
                "customer_name",
                "user",
                "card",
                "total_amount",
                "created_at"
            ]
        );
        assert_eq!(doc["card"], "****************");
        assert!(
            doc["user"]["email"]
                .as_str()
                .unwrap()
                .chars()
                .all(|c| c == '*')
        );
        assert_eq!(
            doc["total_amount"].to_string(),
            "12.50",
            "number text is kept"
        );
    }
    let failed = read_lines(&errors);
    assert_eq!(failed.len(), 2);
    for record in &failed {
        assert_eq!(record["error"]["type"], "invalid_data");
        assert_eq!(record["error"]["stage"], "transform");
        assert_eq!(record["error"]["transformer_index"], 0);
        assert_eq!(record["error"]["original_sink"], "file");
        assert!(record["original_message"]["original_data"].is_string());
    }
}

#[test]
fn invalid_json_without_transforms_fails_at_read_and_is_counted_without_error_sink() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out, spec) = (
        dir.path().join("in.jsonl"),
        dir.path().join("out.jsonl"),
        dir.path().join("flow.yaml"),
    );
    write(&input, "{\"a\":1}\nnot json\n{\"b\":2}\n");
    write(
        &spec,
        &format!(
            "source: {{type: file, file: {{path: {}}}}}\nsink: {{type: file, file: {{path: {}}}}}\n",
            input.display(),
            out.display()
        ),
    );
    let output = run_ok(&spec);
    let s = summary(&output);
    assert_eq!((s["processed"], s["written"], s["errors"]), (3, 2, 1));
    assert_eq!(read_lines(&out), vec![json!({"a": 1}), json!({"b": 2})]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no error sink is configured") && stderr.contains(r#""stage":"read""#),
        "{stderr}"
    );
}

#[test]
fn router_sends_messages_to_route_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let input: Vec<String> = ["error", "info", "warning", "error", "debug"]
        .iter()
        .enumerate()
        .map(|(i, l)| order(i as u64, true, l))
        .collect();
    write(&p("in.jsonl"), &input.join("\n"));
    write(
        &p("flow.yaml"),
        &format!(
            r#"
source: {{type: file, file: {{path: {d}/in.jsonl}}}}
sink: {{type: file, file: {{path: {d}/main.jsonl}}}}
transformations:
  - type: router
    router:
      routes:
        - {{condition: "$.level == 'error'", sink: {{type: file, file: {{path: {d}/errors-route.jsonl}}}}}}
        - {{condition: "level == 'warning' || level == 'debug'", sink: {{type: file, file: {{path: {d}/other-route.jsonl}}}}}}
        - {{condition: "level == 'never'", sink: {{type: file, file: {{path: {d}/never.jsonl}}}}}}
  - {{type: select, select: {{fields: [orderId, level]}}}}
"#,
            d = dir.path().display()
        ),
    );
    let output = run_ok(&p("flow.yaml"));
    assert_eq!(summary(&output)["written"], 5);
    let ids = |name: &str| {
        read_lines(&p(name))
            .iter()
            .map(|d| d["orderId"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("errors-route.jsonl"), [0, 3]);
    assert_eq!(ids("other-route.jsonl"), [2, 4]);
    assert_eq!(ids("main.jsonl"), [1]);
    assert_eq!(
        read_lines(&p("main.jsonl"))[0],
        json!({"orderId": 1, "level": "info"})
    );
    assert!(
        !p("never.jsonl").exists(),
        "route sinks are opened only when used"
    );
}

#[test]
fn bad_specs_fail_with_the_field_path() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.yaml");
    let cases = [
        (
            "source: {type: stdin}\nsink: {type: postgresql, postgresql: {connectionString: x}}\n",
            "spec.sink.postgresql.table: required",
        ),
        (
            "source: {type: stdin}\nsink: {type: stdout}\ntransformations:\n  - {type: timestamp}\n  - {type: timestamp}\n  - {type: mask, mask: {fields: []}}\n",
            "spec.transformations[2].mask.fields: must not be empty",
        ),
        (
            "source: {type: stdin}\nsink: {type: stdout}\ntransformations: [{type: filter, filter: {condition: \"a &&\"}}]\n",
            "spec.transformations[0].filter.condition: invalid condition",
        ),
        (
            "source: {type: stdin}\nsink: {type: stdout}\ntransformations: [{type: mask, mask: {fields: [a], keepLenght: true}}]\n",
            "keepLenght",
        ),
        (
            "source: {type: stdin}\nsink: {type: nosuch}\n",
            "spec.sink.type: unknown variant `nosuch`",
        ),
        (
            "source: {type: file}\nsink: {type: stdout}\n",
            "spec.source: type file needs a file block",
        ),
        (
            "source: {type: stdin}\nsink: {type: stdout, file: {path: x}}\n",
            "spec.sink: the file block is set, but type is stdout",
        ),
        ("source: [oops\n", "not valid YAML or JSON"),
    ];
    for (text, expected) in cases {
        write(&spec, text);
        for command in ["run", "validate"] {
            let output = processor(&[command, "--spec", spec.to_str().unwrap()], "");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{command} accepted:\n{text}");
            assert!(
                stderr.contains(expected),
                "{command}: expected {expected:?} in:\n{stderr}"
            );
            assert_eq!(
                stderr.trim().lines().count(),
                1,
                "one-line reason expected:\n{stderr}"
            );
        }
    }
    // Several problems are all reported.
    write(
        &spec,
        "source: {type: kafka, kafka: {topic: t}}\nsink: {type: file, file: {path: \"\"}}\n",
    );
    let stderr = String::from_utf8_lossy(
        &processor(&["validate", "--spec", spec.to_str().unwrap()], "").stderr,
    )
    .into_owned();
    for expected in [
        "spec.source.kafka.brokers: required",
        "spec.sink.file.path: required",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing in {stderr}"
        );
    }
    // A valid spec whose secret reference was never resolved (it did not come
    // through the operator) fails at run, naming the field.
    write(
        &spec,
        "source: {type: stdin}\nsink: {type: nessie, nessie: {baseURLSecretRef: {name: nessie, key: url}, namespace: n, table: t}}\n",
    );
    assert!(
        processor(&["validate", "--spec", spec.to_str().unwrap()], "")
            .status
            .success()
    );
    let output = processor(&["run", "--spec", spec.to_str().unwrap()], "");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("spec.sink.nessie.baseURLSecretRef: secret nessie/url was not resolved"),
        "{stderr}"
    );
}

#[test]
fn validate_loads_custom_components_and_checks_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("flow.yaml");
    let wasm = component("pii_redact");
    let digest = sha256_hex(&std::fs::read(&wasm).unwrap());
    let with = |sha: &str, config: &str| {
        format!(
            "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: wasm, wasm: {{path: {}, sha256: \"{sha}\", config: {config}}}}}\n",
            wasm.display()
        )
    };
    write(&spec, &with(&digest, "{}"));
    let output = processor(&["validate", "--spec", spec.to_str().unwrap()], "");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
    write(&spec, &with(&"0".repeat(64), "{}"));
    let output = processor(&["validate", "--spec", spec.to_str().unwrap()], "");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("expected 0000"),
        "checksum mismatch must fail"
    );
    write(&spec, &with(&digest, "{keepLastDigits: 9}"));
    let output = processor(&["validate", "--spec", spec.to_str().unwrap()], "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("spec.transformations[0].wasm: keepLastDigits:"),
        "{stderr}"
    );
    write(
        &spec,
        &with(&digest, "{}").replace("pii_redact.wasm", "missing.wasm"),
    );
    assert!(
        String::from_utf8_lossy(
            &processor(&["validate", "--spec", spec.to_str().unwrap()], "").stderr
        )
        .contains("cannot read component")
    );
}

#[test]
fn validate_accepts_a_configmap_component_and_checks_it_from_a_local_dir() {
    let example = dataflow_tests::workspace().join("examples/custom-wasm.yaml");
    let example = example.to_str().unwrap();
    let output = processor(&["validate", "--spec", example], "");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("ConfigMap pii-redact/pii_redact.wasm was not loaded")
            && stdout.trim_end().ends_with("ok"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("pii-redact")).unwrap();
    std::fs::copy(
        component("pii_redact"),
        dir.path().join("pii-redact/pii_redact.wasm"),
    )
    .unwrap();
    let local = dir.path().to_str().unwrap();
    let output = processor(
        &["validate", "--spec", example, "--transform-dir", local],
        "",
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");

    // The component is really loaded: a broken one fails validation.
    std::fs::write(dir.path().join("pii-redact/pii_redact.wasm"), b"not wasm").unwrap();
    let output = processor(
        &["validate", "--spec", example, "--transform-dir", local],
        "",
    );
    assert!(!output.status.success());

    // `run` cannot go without the component and says where to put it.
    let output = processor(&["run", "--spec", example], "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("pass --transform-dir"), "{stderr}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    // Independent of the processor's own hashing: ask coreutils.
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), bytes).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn transform_command_runs_the_chain_over_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("flow.yaml");
    write(
        &spec,
        &format!(
            "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: camelCase}}\n  - {{type: wasm, wasm: {{path: {}}}}}\n  - {{type: flatten, flatten: {{field: Items}}}}\n",
            component("pii_redact").display()
        ),
    );
    let input = b"{\"user_mail\":\"a.b@example.com\",\"items\":[{\"n\":1},{\"n\":2}]}\nnot json\n\"bad \xff\"\n";
    let output = processor(&["transform", "--spec", spec.to_str().unwrap()], input);
    assert!(output.status.success());
    assert_eq!(
        json_lines(&String::from_utf8_lossy(&output.stdout)),
        vec![
            json!({"UserMail": "[email]", "n": 1}),
            json!({"UserMail": "[email]", "n": 2})
        ]
    );
    let errors = json_lines(&String::from_utf8_lossy(&output.stderr));
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["error"]["type"], "invalid_data");
    assert_eq!(errors[0]["original_message"]["original_data"], "not json");
    assert_eq!(
        errors[1]["error"]["type"], "invalid_data",
        "a non-UTF-8 line is an error record"
    );
}

#[test]
fn sigterm_drains_flushes_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (out, spec) = (dir.path().join("out.jsonl"), dir.path().join("flow.yaml"));
    write(
        &spec,
        &format!(
            "source: {{type: generator, generator: {{count: 0, ratePerSecond: 5000}}}}\nsink: {{type: file, file: {{path: {}}}}}\ntransformations: [{{type: timestamp}}]\n",
            out.display()
        ),
    );
    let child = Command::new(processor_bin())
        .args(["run", "--spec", spec.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let s = summary(&output);
    assert!(s["processed"] > 1000, "{s:?}");
    assert_eq!(
        s["processed"], s["written"],
        "everything read was written before exit"
    );
    assert_eq!(read_lines(&out).len() as u64, s["written"]);
}

#[test]
fn hostile_components_fail_only_their_messages_in_a_running_pipeline() {
    for (mode, error_type) in [
        ("panic", "transform_trap"),
        ("loop", "transform_timeout"),
        ("oom", "transform_oom"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let mut lines: Vec<String> = (0..300)
            .map(|i| json!({"id": i, "camelKey": i}).to_string())
            .collect();
        for at in [5, 150, 290] {
            lines[at] = json!({"id": at, "evil": true}).to_string();
        }
        write(&p("in.jsonl"), &lines.join("\n"));
        write(
            &p("flow.yaml"),
            &format!(
                r#"
source: {{type: file, file: {{path: {d}/in.jsonl}}}}
sink: {{type: file, file: {{path: {d}/out.jsonl}}}}
errors: {{type: file, file: {{path: {d}/errors.jsonl}}}}
transformations:
  - {{type: snakeCase}}
  - {{type: wasm, wasm: {{path: {wasm}, config: {{mode: {mode}}}, limits: {{memoryMiB: 16, timeoutMs: 200}}}}}}
  - {{type: remove, remove: {{fields: [id]}}}}
"#,
                d = dir.path().display(),
                wasm = component("dataflow_test_components").display()
            ),
        );
        let output = run_ok(&p("flow.yaml"));
        let s = summary(&output);
        assert_eq!(
            (s["processed"], s["written"], s["errors"]),
            (300, 297, 3),
            "{mode}"
        );
        assert!(
            read_lines(&p("out.jsonl"))
                .iter()
                .all(|d| d.get("camel_key").is_some() && d.get("id").is_none())
        );
        let errors = read_lines(&p("errors.jsonl"));
        let ids: Vec<u64> = errors
            .iter()
            .map(|e| e["original_message"]["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [5, 150, 290], "{mode}");
        for e in &errors {
            assert_eq!(e["error"]["type"], error_type, "{mode}");
            assert_eq!(e["error"]["transformer_index"], 1, "{mode}");
        }
    }
}
