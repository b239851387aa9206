//! `dataflow test FLOW TESTS`: a flow's transformations run over each test's
//! input messages, in the processor's own host, and what reaches the main
//! sink, each route and the error sink compared with what the test expects
//! (as `vector test` and Benthos' config tests do). Sinks and sources are never
//! opened.
//!
//! A tests file:
//!
//! ```yaml
//! tests:
//!   - name: big orders go to route 0
//!     input:
//!       - {id: 1, total: 10}                                   # a document
//!       - {payload: {id: 2, total: 900}, metadata: {topic: o}} # or a message
//!     expect:
//!       sink: [{id: 1, total: 10}]
//!       routes: {0: [{id: 2, total: 900}]}
//!       errors: [{$error: "needs approval"}]                   # text in the reason
//! ```
//!
//! An expectation left out is not checked; an empty list expects nothing there.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use dataflow_core::Message;
use dataflow_wasm_host::{ScriptRuntimes, TransformChain, WasmRuntime};
use serde::Deserialize;
use serde_json::Value;

use crate::sample_run::diff;

/// The most tests and messages a file may hold.
const MAX_TESTS: usize = 1_000;
const MAX_INPUTS: usize = 10_000;
/// The key of a pattern in an expected document, and the most a compiled
/// pattern may take.
const MATCHES: &str = "$matches";
const MAX_PATTERN_BYTES: usize = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestsFile {
    tests: Vec<FlowTest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowTest {
    name: String,
    input: Vec<Value>,
    #[serde(default)]
    expect: Expect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    sink: Option<Vec<Value>>,
    #[serde(default)]
    routes: BTreeMap<usize, Vec<Value>>,
    errors: Option<Vec<Value>>,
}

/// What a test's input became.
#[derive(Debug, Default)]
struct Outcome {
    sink: Vec<String>,
    routes: BTreeMap<usize, Vec<String>>,
    errors: Vec<String>,
}

/// A message from a test's input: `{payload, metadata}` or a document.
fn message(value: &Value) -> anyhow::Result<Message> {
    if let Some(object) = value.as_object()
        && object.contains_key("payload")
        && object.keys().all(|k| k == "payload" || k == "metadata")
    {
        let payload = match &object["payload"] {
            Value::String(text) => text.as_bytes().to_vec(),
            other => serde_json::to_vec(other)?,
        };
        let mut metadata = Vec::new();
        for (key, value) in object
            .get("metadata")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            metadata.push((key.clone(), text));
        }
        return Ok(Message { payload, metadata });
    }
    Ok(Message {
        payload: serde_json::to_vec(value)?,
        metadata: Vec::new(),
    })
}

fn run_one(chain: &mut TransformChain, test: &FlowTest) -> anyhow::Result<Outcome> {
    let mut inputs = test
        .input
        .iter()
        .enumerate()
        .map(|(i, v)| message(v).with_context(|| format!("input[{i}]")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let output = chain.run(&mut inputs);
    let mut outcome = Outcome::default();
    for message in output.outputs {
        let text = match serde_json::from_slice::<Value>(&message.payload) {
            Ok(document) => canonical(&document),
            Err(_) => String::from_utf8_lossy(&message.payload).into_owned(),
        };
        let route =
            dataflow_core::find_meta(&message.metadata, "route").and_then(|r| r.parse().ok());
        match route {
            Some(route) => outcome.routes.entry(route).or_default().push(text),
            None => outcome.sink.push(text),
        }
    }
    outcome.errors = output.failures.into_iter().map(|f| f.message).collect();
    Ok(outcome)
}

/// A document as compact JSON with every object's keys sorted, so a test
/// compares values and not the order a transformation wrote keys in.
fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// Whether `actual` is `expected`, where an expected `{"$matches": REGEX}`
/// stands for any string (or number) the pattern finds a match in: how a
/// test pins a value the flow computes, such as a `timestamp` step's clock.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(wanted), _) if wanted.len() == 1 && wanted.contains_key(MATCHES) => {
            let Some(pattern) = wanted[MATCHES].as_str() else {
                return false;
            };
            let text = match actual {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                _ => return false,
            };
            regex::RegexBuilder::new(pattern)
                .size_limit(MAX_PATTERN_BYTES)
                .build()
                .is_ok_and(|re| re.is_match(&text))
        }
        (Value::Object(wanted), Value::Object(got)) => {
            wanted.len() == got.len()
                && wanted
                    .iter()
                    .all(|(k, v)| got.get(k).is_some_and(|g| matches(v, g)))
        }
        (Value::Array(wanted), Value::Array(got)) => {
            wanted.len() == got.len() && wanted.iter().zip(got).all(|(w, g)| matches(w, g))
        }
        _ => expected == actual,
    }
}

/// Every pattern in an expected document compiles, or the error names it.
fn check_patterns(value: &Value) -> anyhow::Result<()> {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key(MATCHES) => {
            let pattern = map[MATCHES].as_str().with_context(|| {
                format!(
                    "{MATCHES} takes a regular expression as a string, not {}",
                    map[MATCHES]
                )
            })?;
            regex::RegexBuilder::new(pattern)
                .size_limit(MAX_PATTERN_BYTES)
                .build()
                .with_context(|| format!("{MATCHES}: {pattern:?} is not a regular expression"))?;
            Ok(())
        }
        Value::Object(map) => map.values().try_for_each(check_patterns),
        Value::Array(items) => items.iter().try_for_each(check_patterns),
        _ => Ok(()),
    }
}

/// The expected documents as lines to compare, each one that matches the
/// output in its place (patterns included) shown as that output.
fn lines(values: &[Value], actual: &[String]) -> Vec<String> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let got = actual
                .get(i)
                .and_then(|line| serde_json::from_str::<Value>(line).ok());
            match got {
                Some(got) if matches(value, &got) => canonical(&got),
                _ => canonical(value),
            }
        })
        .collect()
}

/// The differences of one test, each titled; empty when it passes.
fn differences(test: &FlowTest, outcome: &Outcome) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(sink) = &test.expect.sink
        && let Some(shown) = diff(&lines(sink, &outcome.sink), &outcome.sink)
    {
        found.push(format!("sink:\n{shown}"));
    }
    for (route, expected) in &test.expect.routes {
        let actual = outcome.routes.get(route).cloned().unwrap_or_default();
        if let Some(shown) = diff(&lines(expected, &actual), &actual) {
            found.push(format!("route {route}:\n{shown}"));
        }
    }
    if let Some(errors) = &test.expect.errors {
        let wanted: Vec<String> = errors
            .iter()
            .map(|e| {
                e.get("$error")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        let matches = wanted.len() == outcome.errors.len()
            && wanted
                .iter()
                .zip(&outcome.errors)
                .all(|(w, a)| a.contains(w.as_str()));
        if !matches {
            let mut shown = String::new();
            for w in &wanted {
                shown.push_str(&format!("- {}\n", serde_json::json!({"$error": w})));
            }
            for a in &outcome.errors {
                shown.push_str(&format!("+ {}\n", serde_json::json!({"$error": a})));
            }
            found.push(format!(
                "errors (each expected text must be in the reason, in order):\n{shown}"
            ));
        }
    }
    found
}

/// Runs every test of `tests` against the flow in `flow`.
pub fn run(flow: &Path, tests: &Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(flow).with_context(|| format!("cannot read {}", flow.display()))?;
    let loaded =
        dataflow_api::manifest::parse(&text).with_context(|| flow.display().to_string())?;
    let runtime = WasmRuntime::new()?;
    let mut chain = TransformChain::build(
        &runtime,
        &loaded.spec,
        dataflow_builtins_embedded::BUILTINS_COMPONENT,
        &ScriptRuntimes::installed(),
    )
    .with_context(|| format!("{}: the transformations cannot be built", flow.display()))?;
    let text = std::fs::read_to_string(tests)
        .with_context(|| format!("cannot read {}", tests.display()))?;
    let file: TestsFile =
        serde_norway::from_str(&text).with_context(|| tests.display().to_string())?;
    anyhow::ensure!(!file.tests.is_empty(), "{}: no tests", tests.display());
    anyhow::ensure!(
        file.tests.len() <= MAX_TESTS,
        "{}: more than {MAX_TESTS} tests",
        tests.display()
    );
    let inputs: usize = file.tests.iter().map(|t| t.input.len()).sum();
    anyhow::ensure!(
        inputs <= MAX_INPUTS,
        "{}: more than {MAX_INPUTS} input messages",
        tests.display()
    );
    for test in &file.tests {
        let mut expected = test
            .expect
            .sink
            .iter()
            .chain(test.expect.routes.values())
            .flatten();
        expected
            .try_for_each(check_patterns)
            .with_context(|| format!("{}: test {:?}", tests.display(), test.name))?;
    }
    let mut failed = 0;
    for test in &file.tests {
        let outcome = run_one(&mut chain, test).with_context(|| format!("test {:?}", test.name))?;
        let found = differences(test, &outcome);
        if found.is_empty() {
            println!("ok      {}", test.name);
        } else {
            failed += 1;
            println!(
                "FAILED  {}\n--- expected\n+++ what the flow gave\n{}",
                test.name,
                found.join("\n")
            );
        }
    }
    println!("{} passed, {failed} failed", file.tests.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expectations_left_out_are_not_checked_and_errors_match_by_text() {
        let test: FlowTest = serde_norway::from_str(
            "name: t\ninput: [{a: 1}]\nexpect:\n  routes: {0: [{a: 1}]}\n  errors: [{$error: approval}]\n",
        )
        .unwrap();
        let mut outcome = Outcome {
            sink: vec!["{\"b\":2}".into()],
            ..Outcome::default()
        };
        outcome.routes.insert(0, vec![canonical(&json!({"a": 1}))]);
        outcome
            .errors
            .push("ValueError: order 3 needs approval".into());
        assert!(differences(&test, &outcome).is_empty());
        outcome.errors[0] = "something else".into();
        let found = differences(&test, &outcome);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("+ {\"$error\":\"something else\"}"),
            "{found:?}"
        );
    }

    #[test]
    fn documents_compare_whatever_their_key_order() {
        assert_eq!(
            canonical(&json!({"b": {"y": 1, "x": [{"d": 1, "c": 2}]}, "a": 0})),
            canonical(&json!({"a": 0, "b": {"x": [{"c": 2, "d": 1}], "y": 1}}))
        );
        assert_ne!(
            canonical(&json!({"a": [1, 2]})),
            canonical(&json!({"a": [2, 1]}))
        );
    }

    #[test]
    fn a_pattern_stands_for_a_computed_value() {
        let expected = json!({"id": 1, "at": {"$matches": "^2[0-9]{3}-"}});
        assert!(matches(
            &expected,
            &json!({"at": "2026-12-07T10:00:00Z", "id": 1})
        ));
        assert!(!matches(&expected, &json!({"id": 1, "at": "yesterday"})));
        assert!(!matches(&expected, &json!({"id": 1})));
        assert!(!matches(
            &expected,
            &json!({"id": 1, "at": "2026-01-01", "extra": true})
        ));
        assert!(check_patterns(&json!([{"a": {"$matches": "("}}])).is_err());
        assert!(check_patterns(&json!({"a": {"$matches": 3}})).is_err());
        assert!(check_patterns(&expected).is_ok());
        let actual = vec![canonical(&json!({"id": 1, "at": "2026-12-07T10:00:00Z"}))];
        assert_eq!(lines(&[expected], &actual), actual);
    }

    #[test]
    fn inputs_are_documents_or_messages() {
        let m = message(&json!({"payload": {"id": 1}, "metadata": {"topic": "t", "partition": 0}}))
            .unwrap();
        assert_eq!(m.payload, br#"{"id":1}"#);
        assert_eq!(
            m.metadata,
            [
                ("topic".into(), "t".into()),
                ("partition".into(), "0".into())
            ]
        );
        assert_eq!(message(&json!({"id": 1})).unwrap().payload, br#"{"id":1}"#);
    }
}
