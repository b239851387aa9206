//! Building chains of one script step (`type: python` or `type: javascript`) on
//! the runtimes `make build` makes under `target/runtimes`.

use dataflow_api::manifest as spec;
use dataflow_core::Message;
use dataflow_processor::builtins::BUILTINS_COMPONENT;
use dataflow_wasm_host::{ChainOutput, ScriptRuntimes, TransformChain, WasmRuntime};

use crate::workspace;

/// The runtimes under `target/runtimes`, which must hold `file`.
pub fn runtimes(file: &str) -> ScriptRuntimes {
    let dir = workspace().join("target/runtimes");
    assert!(
        dir.join(file).is_file(),
        "{}/{file} is missing: run `make build`",
        dir.display()
    );
    ScriptRuntimes::in_dir(dir)
}

/// A flow whose one step is a `language` step running `code`, with `extra`
/// settings (YAML flow mapping entries) beside it.
pub fn manifest(language: &str, code: &str, extra: &str) -> String {
    let code = serde_json::to_string(code).expect("code as JSON");
    format!(
        "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: {language}, {language}: {{code: {code}{extra}}}}}\n"
    )
}

/// The chain of a manifest, or the error that stopped it, as text.
pub fn build(yaml: &str, runtimes: &ScriptRuntimes) -> Result<TransformChain, String> {
    let loaded = spec::parse(yaml).map_err(|e| e.to_string())?;
    TransformChain::build(
        &WasmRuntime::new().map_err(|e| e.to_string())?,
        &loaded.spec,
        BUILTINS_COMPONENT,
        runtimes,
    )
    .map_err(|e| e.to_string())
}

/// Messages with these payloads, each with the metadata `topic=orders`.
pub fn messages(payloads: &[&str]) -> Vec<Message> {
    payloads
        .iter()
        .map(|p| Message {
            payload: p.as_bytes().to_vec(),
            metadata: vec![("topic".into(), "orders".into())],
        })
        .collect()
}

/// The payloads of the outputs, as text.
pub fn texts(output: &ChainOutput) -> Vec<String> {
    output
        .outputs
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect()
}

/// The error that stops a manifest's chain; panics when it builds.
pub fn build_error(yaml: &str, runtimes: &ScriptRuntimes) -> String {
    match build(yaml, runtimes) {
        Ok(_) => panic!("the chain was built:\n{yaml}"),
        Err(error) => error,
    }
}

/// The reshaping scenario both languages pass: `chain` runs a function that adds
/// `region` (from its config, `eu`) and `step`, drops `skip`, and splits `items`
/// into one message per item. Numbers it does not touch keep their text.
pub fn check_reshape(chain: &mut TransformChain) -> ChainOutput {
    let output = chain.run(&mut messages(&[
        r#"{"id":1,"price":1.50,"big":12345678901234567890,"exp":1e3,"plain":2.5}"#,
        r#"{"id":2,"skip":true}"#,
        r#"{"id":3,"items":["a","b"]}"#,
    ]));
    assert!(output.failures.is_empty(), "{:?}", output.failures);
    assert_eq!(
        texts(&output),
        [
            r#"{"id":1,"price":1.50,"big":12345678901234567890,"exp":1e3,"plain":2.5,"region":"eu","step":0}"#,
            r#"{"order":3,"sku":"a"}"#,
            r#"{"order":3,"sku":"b"}"#,
        ]
    );
    assert_eq!(output.origins, [0, 2, 2]);
    assert_eq!(output.filtered, 1, "nothing returned drops the message");
    output
}

/// The failing scenario: `chain` runs a function that doubles `amount` and
/// raises `expected` (the error record's text) for a negative one. The raise and
/// a payload that is not JSON fail only their messages, in one call, with no
/// rebuild and no replay.
pub fn check_raise(chain: &mut TransformChain, expected: &str) -> ChainOutput {
    let output = chain.run(&mut messages(&[
        r#"{"amount":1}"#,
        r#"{"amount":-5}"#,
        r#"not json"#,
        r#"{"amount":3}"#,
    ]));
    assert_eq!(texts(&output), [r#"{"amount":2}"#, r#"{"amount":6}"#]);
    assert_eq!(output.origins, [0, 3]);
    let failures: Vec<(usize, &str)> = output
        .failures
        .iter()
        .map(|f| (f.origin, f.message.as_str()))
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(failures[0], (1, expected), "the error, with its line");
    assert_eq!(
        output.failures[0].error_type,
        dataflow_api::ErrorType::ScriptError,
        "what the user's code raised has a type of its own"
    );
    assert_eq!(output.failures[0].error_type.as_str(), "script_error");
    assert_eq!(
        output.failures[1].error_type,
        dataflow_api::ErrorType::InvalidData,
        "input that is not JSON is the data's fault"
    );
    assert_eq!(failures[1].0, 2);
    assert!(failures[1].1.contains("not JSON"), "{failures:?}");
    assert_eq!(chain.rebuilds(), 0, "a raise costs no rebuild");
    assert_eq!(
        chain.last_runs()[0].received,
        4,
        "one call, no replay one by one"
    );
    output
}

/// One hostile snippet (`{"do": hostile}`) between two plain messages: it fails
/// alone, with a reason holding `expected` (any case); the others go through.
pub fn check_contained(chain: &mut TransformChain, hostile: &str, expected: &str) {
    let payload = format!(r#"{{"do":"{hostile}"}}"#);
    let output = chain.run(&mut messages(&[r#"{"id":1}"#, &payload, r#"{"id":2}"#]));
    assert_eq!(
        texts(&output),
        [r#"{"id":1}"#, r#"{"id":2}"#],
        "{hostile}: {:?}",
        output.failures
    );
    assert_eq!(output.failures.len(), 1, "{hostile}");
    let failure = &output.failures[0];
    assert_eq!(failure.origin, 1, "{hostile}");
    assert!(
        failure
            .message
            .to_lowercase()
            .contains(&expected.to_lowercase()),
        "{hostile}: {}",
        failure.message
    );
}
