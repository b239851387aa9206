//! User transforms side by side: the same redaction as a Rust component (the
//! `pii-redact` example), a Python function and a JavaScript function, one step,
//! one core; the error path (1% of messages raising); and the start of a Python
//! flow.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dataflow_api::manifest;
use dataflow_core::Message;
use dataflow_processor::builtins::BUILTINS_COMPONENT;
use dataflow_wasm_host::{ScriptRuntimes, TransformChain, WasmRuntime};

use crate::{BATCH, RUNS, fastest_run, peak_rss_mib, processor_run, rate};

/// The `pii-redact` example's rule, in Python: e-mail addresses become `[email]`,
/// Luhn-valid card numbers keep their last four digits.
const REDACT: &str = r#"
import re
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")

def luhn(digits):
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = ord(d) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0

def card(match):
    digits = re.sub(r"[ -]", "", match.group(0))
    return "*" * (len(digits) - 4) + digits[-4:] if luhn(digits) else match.group(0)

def redact(value):
    if isinstance(value, str):
        return CARD.sub(card, EMAIL.sub("[email]", value))
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value

def transform(doc, ctx):
    if ctx.config.get("fail") and doc.get("orderId", 1) % 100 == 0:
        raise ValueError("order refused")
    return redact(doc)
"#;

/// The same rule in JavaScript.
const REDACT_JS: &str = r#"
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+/g;
const CARD = /\b\d(?:[ -]?\d){12,18}\b/g;

function luhn(digits) {
  let total = 0;
  for (let i = 0; i < digits.length; i++) {
    let n = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2) n = n > 4 ? n * 2 - 9 : n * 2;
    total += n;
  }
  return total % 10 === 0;
}

function card(match) {
  const digits = match.replace(/[ -]/g, "");
  return luhn(digits) ? "*".repeat(digits.length - 4) + digits.slice(-4) : match;
}

function redact(value) {
  if (typeof value === "string") return value.replace(EMAIL, "[email]").replace(CARD, card);
  if (Array.isArray(value)) return value.map(redact);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const k in value) out[k] = redact(value[k]);
    return out;
  }
  return value;
}

export function transform(doc, ctx) {
  if (ctx.config.fail && (doc.orderId ?? 1) % 100 === 0) throw new Error("order refused");
  return redact(doc);
}
"#;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chain(step: &str) -> TransformChain {
    let yaml =
        format!("source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {step}\n");
    let loaded = manifest::parse(&yaml).expect("bench spec");
    TransformChain::build(
        &WasmRuntime::new().expect("engine"),
        &loaded.spec,
        BUILTINS_COMPONENT,
        &ScriptRuntimes::in_dir(workspace().join("target/runtimes")),
    )
    .expect("bench chain")
}

fn script_step(language: &str, code: &str, fail: bool) -> String {
    format!(
        "{{type: {language}, {language}: {{code: {}, config: {{fail: {fail}}}, limits: {{timeoutMs: 60000}}}}}}",
        serde_json::to_string(code).expect("code")
    )
}

fn python_step(fail: bool) -> String {
    script_step("python", REDACT, fail)
}

/// One pass of the corpus through `chain`; the failures it made.
fn pass(chain: &mut TransformChain, messages: &[Message]) -> (Duration, usize) {
    let mut messages = messages.to_vec();
    let start = Instant::now();
    let mut failed = 0;
    for batch in messages.chunks_mut(BATCH) {
        failed += chain.run(batch).failures.len();
    }
    (start.elapsed(), failed)
}

/// Prints the user-transform rows.
pub(crate) fn report(messages: &[Message]) {
    let rust_step = format!(
        "{{type: wasm, wasm: {{path: {}}}}}",
        workspace()
            .join("target/wasm32-wasip2/wasm/pii_redact.wasm")
            .display()
    );
    let mut rows = [
        ("rust component", chain(&rust_step), 0.0f64, 0),
        ("python", chain(&python_step(false)), 0.0, 0),
        ("python, 1% raise", chain(&python_step(true)), 0.0, 0),
        (
            "javascript",
            chain(&script_step("javascript", REDACT_JS, false)),
            0.0,
            0,
        ),
        (
            "javascript, 1% throw",
            chain(&script_step("javascript", REDACT_JS, true)),
            0.0,
            0,
        ),
    ];
    // The scripts are slow: fewer runs over the corpus, interleaved.
    for _ in 0..RUNS.min(3) {
        for (_, chain, best, failed) in &mut rows {
            let (elapsed, failures) = pass(chain, messages);
            *best = best.max(rate(messages.len(), elapsed));
            *failed = failures;
        }
    }
    println!(
        "{:<22} {:>12} {:>10}",
        "user transform (redact)", "msg/s", "failed"
    );
    for (name, chain, best, failed) in &rows {
        println!(
            "{name:<22} {best:>12.0} {failed:>10}   rebuilds {}",
            chain.rebuilds()
        );
    }
    python_start();
}

/// Start of a Python flow with the runtime compiled and cached: the processor
/// run on one message from stdin, wall time and peak RSS.
fn python_start() {
    let dir = std::env::temp_dir().join(format!("dataflow-bench-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let spec = dir.join("flow.yaml");
    let input = dir.join("in.jsonl");
    std::fs::write(&input, "{\"orderId\": 1, \"email\": \"a@b.example\"}\n").expect("input");
    std::fs::write(
        &spec,
        format!(
            "source: {{type: file, file: {{path: {}}}}}\nsink: {{type: file, file: {{path: {}}}}}\ntransformations:\n  - {}\n",
            input.display(),
            dir.join("out.jsonl").display(),
            python_step(false)
        ),
    )
    .expect("spec");
    let run = || processor_run(&spec);
    // The first run fills the compilation cache.
    let _ = run().status();
    let best = fastest_run(3, &run);
    println!(
        "python flow start to end (one message, runtime cached): {:.0} ms, peak RSS {} MiB",
        best * 1000.0,
        peak_rss_mib(&mut run())
    );
    // A new pod: its cache emptyDir is empty; the image's precompiled set (what
    // `make build` puts in target/release/precompiled) answers, or nothing does.
    let fresh = std::sync::atomic::AtomicU32::new(0);
    let new_pod = |precompiled: &str| {
        let n = fresh.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut command = processor_run(&spec);
        command
            .env("DATAFLOW_CACHE_DIR", dir.join(format!("cache-{n}")))
            .env("DATAFLOW_PRECOMPILED_DIR", precompiled);
        command
    };
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/precompiled");
    let shipped = shipped.to_string_lossy().into_owned();
    let best = fastest_run(3, &|| new_pod(&shipped));
    println!(
        "python flow start to end in a new pod (empty cache, precompiled runtime): {:.0} ms, peak RSS {} MiB",
        best * 1000.0,
        peak_rss_mib(&mut new_pod(&shipped))
    );
    let best = fastest_run(1, &|| new_pod("/nonexistent"));
    println!(
        "python flow start to end in a new pod with nothing precompiled: {:.0} ms",
        best * 1000.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
