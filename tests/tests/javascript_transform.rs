//! `type: javascript` steps in the real wasmtime host, on the JavaScript runtime
//! that `make build` makes (`target/runtimes/javascript.wasm`): TypeScript with
//! types runs, what a function returns becomes messages, a throw fails only its
//! own message with no replay, hostile code is contained, and a bad source is
//! refused at start.

use dataflow_api::ErrorType;
use dataflow_tests::script_steps::{self, messages, texts};
use dataflow_wasm_host::TransformChain;

fn build(yaml: &str) -> Result<TransformChain, String> {
    script_steps::build(yaml, &script_steps::runtimes("javascript.wasm"))
}

fn build_error(yaml: &str) -> String {
    script_steps::build_error(yaml, &script_steps::runtimes("javascript.wasm"))
}

fn chain(code: &str, extra: &str) -> TransformChain {
    build(&script_steps::manifest("javascript", code, extra)).unwrap()
}

const RESHAPE: &str = r#"
interface Order { id: number; skip?: boolean; items?: string[]; [k: string]: unknown }
type Ctx = { config: { region: string }; step: number; metadata: Record<string, string> };

export function transform(doc: Order, ctx: Ctx): Order | object[] | null {
  if (doc.skip) return null;
  if (doc.items) return doc.items.map((sku: string) => ({ order: doc.id, sku }));
  ctx.metadata["region"] = ctx.config.region;
  return { ...doc, region: ctx.config.region, step: ctx.step };
}
"#;

#[test]
fn typescript_reshapes_drops_and_splits_messages_and_keeps_number_text() {
    let output = script_steps::check_reshape(&mut chain(RESHAPE, ", config: {region: eu}"));
    assert!(
        output.outputs[0]
            .metadata
            .contains(&("region".to_owned(), "eu".to_owned())),
        "metadata changes travel with the output"
    );
}

#[test]
fn a_throw_fails_only_its_message_with_no_replay() {
    let code = r#"
export function transform(doc, ctx) {
  if (doc.amount < 0) {
    throw new RangeError(`negative amount ${doc.amount}`);
  }
  return { amount: doc.amount * 2 };
}
"#;
    let output = script_steps::check_raise(
        &mut chain(code, ""),
        "RangeError (line 4): negative amount -5",
    );
    assert_eq!(output.failures[0].error_type, ErrorType::ScriptError);
}

#[test]
fn hostile_code_is_contained_and_the_flow_goes_on() {
    let code = r#"
export function transform(doc, ctx) {
  switch (doc.do) {
    case "loop": for (;;) {}
    case "memory": { const hoard = []; for (let i = 0; ; i++) hoard.push("x".repeat(1 << 24) + i); }
    case "fetch": return { got: fetch("http://127.0.0.1:9/") };
    case "recursion": { const down = (n) => down(n + 1) + 1; return { n: down(0) }; }
    case "eval": return { e: eval("1 + 1") };
  }
  return doc;
}
"#;
    let mut c = chain(code, ", limits: {timeoutMs: 1000, memoryMiB: 128}");
    for (hostile, expected) in [
        ("loop", "time limit"),
        ("memory", "memory"),
        ("recursion", "recursion"),
        ("fetch", "referenceerror (line 6): fetch is not defined"),
    ] {
        script_steps::check_contained(&mut c, hostile, expected);
    }
    let output = c.run(&mut messages(&[r#"{"do":"eval"}"#]));
    assert_eq!(texts(&output), [r#"{"e":2}"#], "{:?}", output.failures);
}

#[test]
fn a_bad_source_is_refused_at_start() {
    let manifest = |code: &str| script_steps::manifest("javascript", code, "");
    let err = build_error(&manifest(
        "export function transform(doc, ctx) {\n  return doc +;\n}\n",
    ));
    assert!(
        err.starts_with("spec.transformations[0].javascript: code: SyntaxError"),
        "{err}"
    );
    let err = build_error(&manifest(
        "// no transform here\nexport function transfrom(doc) { return doc }\n",
    ));
    assert!(
        err.contains("exports no function transform(doc, ctx)"),
        "{err}"
    );
}
