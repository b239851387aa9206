//! `type: python` steps in the real wasmtime host, on the Python runtime that
//! `make build` makes (`target/runtimes/python.wasm`): what a function returns
//! becomes messages, an exception fails only its own message with no replay of
//! the batch, hostile code is contained, and a bad source is refused at start.

use dataflow_api::ErrorType;
use dataflow_tests::script_steps::{self, messages};
use dataflow_wasm_host::TransformChain;
use serde_json::{Value, json};

fn build(yaml: &str) -> Result<TransformChain, String> {
    script_steps::build(yaml, &script_steps::runtimes("python.wasm"))
}

fn manifest(code: &str, extra: &str) -> String {
    script_steps::manifest("python", code, extra)
}

fn build_error(yaml: &str) -> String {
    script_steps::build_error(yaml, &script_steps::runtimes("python.wasm"))
}

fn chain(code: &str, extra: &str) -> TransformChain {
    build(&manifest(code, extra)).unwrap()
}

const RESHAPE: &str = r#"
def transform(doc: dict, ctx) -> dict | list | None:
    if doc.get("skip"):
        return None
    if "items" in doc:
        return [{"order": doc["id"], "sku": item} for item in doc["items"]]
    doc["region"] = ctx.config["region"]
    doc["step"] = ctx.step
    return doc
"#;

#[test]
fn a_function_reshapes_drops_and_splits_messages_and_keeps_number_text() {
    let output = script_steps::check_reshape(&mut chain(RESHAPE, ", config: {region: eu}"));
    assert_eq!(
        output.outputs[0].metadata,
        [("topic".into(), "orders".into())],
        "metadata the function does not touch passes as it came"
    );
}

#[test]
fn an_exception_fails_only_its_message_with_no_replay_and_metadata_changes_travel() {
    let code = r#"
def transform(doc, ctx):
    ctx.metadata["checked"] = "yes"
    if doc["amount"] < 0:
        raise ValueError(f"negative amount {doc['amount']}")
    return {"amount": doc["amount"] * 2}
"#;
    let mut c = chain(code, "");
    let output = script_steps::check_raise(&mut c, "ValueError (line 5): negative amount -5");
    assert_eq!(output.failures[0].error_type, ErrorType::ScriptError);
    assert!(
        output.outputs[0]
            .metadata
            .contains(&("checked".to_owned(), "yes".to_owned()))
    );
}

/// Each hostile snippet fails its own message with a clear reason; the messages
/// beside it and the next batch go through.
#[test]
fn hostile_code_is_contained_and_the_flow_goes_on() {
    let code = r#"
def transform(doc, ctx):
    kind = doc.get("do")
    if kind == "loop":
        while True:
            pass
    if kind == "memory":
        hoard = []
        while True:
            hoard.append(bytearray(8 * 1024 * 1024))
    if kind == "file":
        return {"read": open("/etc/passwd").read()}
    if kind == "socket":
        import socket
        socket.create_connection(("127.0.0.1", 22), timeout=1)
    if kind == "subprocess":
        import subprocess
        return {"out": subprocess.run(["id"], capture_output=True).stdout.decode()}
    if kind == "env":
        import os
        return {"env": dict(os.environ)}
    if kind == "recursion":
        def down(n):
            return down(n + 1)
        down(0)
    return doc
"#;
    let mut c = chain(code, ", limits: {timeoutMs: 1000, memoryMiB: 128}");
    for (hostile, expected) in [
        ("loop", "time limit"),
        ("memory", "memory"),
        (
            "file",
            "FileNotFoundError (line 12): [Errno 44] No such file",
        ),
        (
            "socket",
            "ModuleNotFoundError (line 14): No module named 'socket'",
        ),
        (
            "subprocess",
            "ModuleNotFoundError (line 17): No module named 'subprocess'",
        ),
        ("recursion", "RecursionError"),
    ] {
        script_steps::check_contained(&mut c, hostile, expected);
    }
    let output = c.run(&mut messages(&[r#"{"do":"env"}"#]));
    let env: Value = serde_json::from_slice(&output.outputs[0].payload).unwrap();
    assert_eq!(env, json!({"env": {}}), "the sandbox has no environment");
}

#[test]
fn a_bad_source_is_refused_at_start_naming_the_line() {
    let err = build_error(&manifest(
        "def transform(doc, ctx):\n    return doc +\n",
        "",
    ));
    assert!(
        err.starts_with("spec.transformations[0].python: code: line 2:"),
        "{err}"
    );
    let err = build_error(&manifest(
        "def transfrom(doc, ctx):\n    return doc\n# transform\n",
        "",
    ));
    assert!(
        err.contains("defines no function transform(doc, ctx)"),
        "{err}"
    );
    let err = build_error(&manifest(
        "import nosuchmodule\ndef transform(doc, ctx):\n    return doc\n",
        "",
    ));
    assert!(
        err.contains("ModuleNotFoundError (line 1): No module named 'nosuchmodule'"),
        "{err}"
    );
}
