//! Golden cases for every built-in transform (`tests/golden/*.json`), each run three
//! ways: natively, through the transform's own component, and through the fused
//! built-ins component, both in the real wasmtime host. All three must agree with
//! the expected output.

use std::path::Path;

use dataflow_builtins::{Chain, Step};
use dataflow_processor::builtins::BUILTINS_COMPONENT;
use dataflow_tests::{component, json_matches, workspace};
use dataflow_transform_sdk::{ErrorKind, Message, Outcome, process_batch};
use dataflow_wasm_host::{ComponentPre, Inputs, Limits, TransformInstance, WasmError, WasmRuntime};
use serde_json::{Value, json};

const LIMITS: Limits = Limits {
    memory_bytes: 256 << 20,
    timeout_ms: 10_000,
};

/// A transform's result for one input, in a form all three runs share.
#[derive(Debug)]
enum Got {
    Outputs(Vec<(String, Vec<(String, String)>)>),
    Error(&'static str, String),
    ConfigError(String),
}

struct Case {
    transform: String,
    name: String,
    config: Value,
    input: Vec<u8>,
    metadata: Vec<(String, String)>,
    expected: Value,
}

fn metadata(value: Option<&Value>) -> Vec<(String, String)> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn load_cases() -> Vec<Case> {
    let dir = workspace().join("tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let transform = doc["transform"].as_str().unwrap().to_owned();
        for case in doc["cases"].as_array().unwrap() {
            let input = match (&case.get("input"), &case.get("raw")) {
                (Some(value), _) => serde_json::to_vec(value).unwrap(),
                (None, Some(Value::String(raw))) => raw.as_bytes().to_vec(),
                _ => Vec::new(),
            };
            cases.push(Case {
                transform: transform.clone(),
                name: case["name"].as_str().unwrap().to_owned(),
                config: case.get("config").cloned().unwrap_or(json!({})),
                input,
                metadata: metadata(case.get("metadata")),
                expected: case.clone(),
            });
        }
    }
    assert!(
        cases.len() > 80,
        "expected the full golden set, found {}",
        cases.len()
    );
    cases
}

fn native(case: &Case) -> Got {
    let step = match Step::new(&case.transform, &case.config.to_string()) {
        Ok(step) => step,
        Err(e) => return Got::ConfigError(e.to_string()),
    };
    let mut chain = Chain::new(vec![step]);
    let batch = vec![Message {
        payload: case.input.clone(),
        metadata: case.metadata.clone(),
    }];
    match process_batch(&mut chain, batch).remove(0) {
        Outcome::Emitted(out) => Got::Outputs(
            out.into_iter()
                .map(|m| (String::from_utf8(m.payload).unwrap(), m.metadata))
                .collect(),
        ),
        Outcome::Failed(e) => Got::Error(
            match e.kind {
                ErrorKind::InvalidData => "invalid_data",
                ErrorKind::Failed => "failed",
            },
            e.message,
        ),
    }
}

fn in_wasm(pre: ComponentPre, config: String, case: &Case) -> Got {
    let mut instance = match TransformInstance::create(&case.transform, pre, config, LIMITS) {
        Ok(instance) => instance,
        Err(WasmError::Config(msg)) => return Got::ConfigError(msg),
        Err(other) => panic!("{}: {other}", case.name),
    };
    let mut batch = [Message {
        payload: case.input.clone(),
        metadata: case.metadata.clone(),
    }];
    match instance.call(Inputs::Given(&mut batch)).unwrap().remove(0) {
        Outcome::Emitted(out) => Got::Outputs(
            out.into_iter()
                .map(|m| (String::from_utf8(m.payload).unwrap(), m.metadata))
                .collect(),
        ),
        Outcome::Failed(e) => Got::Error(
            match e.kind {
                ErrorKind::InvalidData => "invalid_data",
                ErrorKind::Failed => "failed",
            },
            e.message,
        ),
    }
}

fn check(case: &Case, how: &str, got: &Got) -> Result<(), String> {
    let ctx = |msg: String| format!("{} / {} [{how}]: {msg}", case.transform, case.name);
    let e = &case.expected;
    if let Some(want) = e.get("config_error").and_then(Value::as_str) {
        return match got {
            Got::ConfigError(msg) if msg.contains(want) => Ok(()),
            other => Err(ctx(format!(
                "expected config error containing {want:?}, got {other:?}"
            ))),
        };
    }
    if let Some(want) = e.get("error").and_then(Value::as_str) {
        return match got {
            Got::Error(kind, message) if *kind == want && !message.is_empty() => Ok(()),
            other => Err(ctx(format!("expected {want} error, got {other:?}"))),
        };
    }
    let Got::Outputs(outputs) = got else {
        return Err(ctx(format!("expected outputs, got {got:?}")));
    };
    let expected = e["output"]
        .as_array()
        .ok_or_else(|| ctx("case has no output".into()))?;
    if outputs.len() != expected.len() {
        return Err(ctx(format!(
            "expected {} outputs, got {outputs:?}",
            expected.len()
        )));
    }
    let want_meta = e
        .get("metadata_out")
        .map_or_else(|| case.metadata.clone(), |m| metadata(Some(m)));
    // `output_raw`: the exact bytes each output must have (a pass-through).
    if let Some(raw) = e.get("output_raw").and_then(Value::as_array) {
        let got: Vec<&str> = outputs
            .iter()
            .map(|(payload, _)| payload.as_str())
            .collect();
        let want: Vec<&str> = raw.iter().filter_map(Value::as_str).collect();
        if got != want {
            return Err(ctx(format!("expected the bytes {want:?}, got {got:?}")));
        }
    }
    for (i, ((payload, meta), want)) in outputs.iter().zip(expected).enumerate() {
        let actual: Value = serde_json::from_str(payload)
            .map_err(|err| ctx(format!("output {i} not JSON: {err}")))?;
        json_matches(want, &actual)
            .map_err(|err| ctx(format!("output {i}: {err} (got {payload})")))?;
        if *meta != want_meta {
            return Err(ctx(format!(
                "output {i} metadata {meta:?}, expected {want_meta:?}"
            )));
        }
    }
    Ok(())
}

fn standalone_component(transform: &str) -> Vec<u8> {
    // Each built-in's crate is its spec name in snake case (`insertField` ->
    // `dataflow_transform_insert_field`).
    let mut crate_name = String::new();
    for c in transform.chars() {
        if c.is_ascii_uppercase() {
            crate_name.push('_');
        }
        crate_name.push(c.to_ascii_lowercase());
    }
    std::fs::read(component(&format!("dataflow_transform_{crate_name}"))).unwrap()
}

#[test]
fn golden_cases_natively_and_in_wasm() {
    let runtime = WasmRuntime::new().unwrap();
    let cases = load_cases();
    let mut failures = Vec::new();
    for case in &cases {
        let own = standalone_component(&case.transform);
        let fused_config =
            json!({"steps": [{"type": case.transform, "config": case.config}]}).to_string();
        let runs = [
            ("native", native(case)),
            (
                "own component",
                in_wasm(
                    runtime.prepare(&case.transform, &own).unwrap(),
                    case.config.to_string(),
                    case,
                ),
            ),
            (
                "fused component",
                in_wasm(
                    runtime.prepare_builtins(BUILTINS_COMPONENT).unwrap(),
                    fused_config,
                    case,
                ),
            ),
        ];
        for (how, got) in &runs {
            if let Err(err) = check(case, how, got) {
                failures.push(err);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every built-in has golden cases.
    for name in dataflow_builtins::BUILTIN_TYPES {
        assert!(
            cases.iter().any(|c| c.transform == *name),
            "no golden cases for {name}"
        );
    }
    assert!(Path::new(&workspace().join("tests/golden")).is_dir());
}
