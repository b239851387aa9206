//! A component built with componentize-js's defaults (what a user gets without
//! knowing our flags) imports `wasi:http`; the host links a `wasi:http` that
//! refuses every request, so the component loads and runs as a `wasm` step.

use std::process::Command;

use dataflow_tests::{processor, workspace, write_file};

/// A transform written directly against `wit/transform.wit`: it marks every
/// message and passes its metadata on.
const MODULE: &str = r#"
const decoder = new TextDecoder();
const encoder = new TextEncoder();

class Transform {
  static create(config) {
    const transform = new Transform();
    transform.mark = JSON.parse(config || "{}").mark ?? "stock";
    return transform;
  }
  process(batch) {
    return batch.map((message) => {
      const doc = JSON.parse(decoder.decode(message.payload));
      doc.built = this.mark;
      return {
        tag: "emitted",
        val: [{ payload: encoder.encode(JSON.stringify(doc)), metadata: message.metadata }],
      };
    });
  }
}

export const transformer = { Transform };
"#;

#[test]
fn a_default_componentize_js_build_imports_wasi_http_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let module = write_file(dir.path(), "transform.js", MODULE);
    let wasm = dir.path().join("stock.wasm");
    let built = Command::new(workspace().join("scripts/build-runtimes.sh"))
        .arg("javascript-component")
        .arg(&wasm)
        .arg(&module)
        .output()
        .expect("run scripts/build-runtimes.sh");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let bytes = std::fs::read(&wasm).unwrap();
    assert!(
        bytes
            .windows(b"wasi:http/outgoing-handler".len())
            .any(|w| w == b"wasi:http/outgoing-handler"),
        "a default build imports wasi:http, which is what this test is about"
    );
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &format!(
            "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: wasm, wasm: {{path: \"{}\", config: {{mark: js}}}}}}\n",
            wasm.display()
        ),
    );
    let output = processor(
        &["transform", "--spec", spec.to_str().unwrap()],
        "{\"id\":1}\n{\"id\":2}\n",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "{\"id\":1,\"built\":\"js\"}\n{\"id\":2,\"built\":\"js\"}\n"
    );
}
