//! A component whose `process` export is lifted with the component model's async
//! ABI, as async-first toolchains build them, runs in the real host: its
//! messages go through, a failure it reports is that message's alone, and one
//! that waits forever or yields forever is stopped and fails alone.

use dataflow_api::ErrorType;
use dataflow_api::manifest as spec;
use dataflow_core::Message;
use dataflow_processor::builtins::BUILTINS_COMPONENT;
use dataflow_tests::component;
use dataflow_wasm_host::{ChainOutput, ScriptRuntimes, TransformChain, WasmRuntime};

/// A chain of the async component (with a short time limit) and a built-in.
fn chain() -> TransformChain {
    let yaml = format!(
        "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: wasm, wasm: {{path: {}, limits: {{timeoutMs: 300, memoryMiB: 16}}}}}}\n  - {{type: insertField, insertField: {{fields: {{seen: true}}}}}}\n",
        component("dataflow_async_component").display()
    );
    let loaded = spec::parse(&yaml).unwrap();
    TransformChain::build(
        &WasmRuntime::new().unwrap(),
        &loaded.spec,
        BUILTINS_COMPONENT,
        &ScriptRuntimes::default(),
    )
    .unwrap()
}

fn run(chain: &mut TransformChain, payloads: &[&str]) -> ChainOutput {
    let mut batch: Vec<Message> = payloads
        .iter()
        .map(|p| Message {
            payload: p.as_bytes().to_vec(),
            metadata: vec![("topic".into(), "orders".into())],
        })
        .collect();
    chain.run(&mut batch)
}

#[test]
fn an_async_lifted_component_transforms_and_fails_single_messages() {
    let mut c = chain();
    let output = run(&mut c, &[r#"{"id":1}"#, r#""fail""#, r#"{"id":3}"#]);
    assert_eq!(output.origins, [0, 2]);
    for message in &output.outputs {
        assert!(
            message
                .metadata
                .contains(&("via".to_owned(), "async".to_owned())),
            "{:?}",
            message.metadata
        );
        assert!(String::from_utf8_lossy(&message.payload).contains(r#""seen":true"#));
    }
    assert_eq!(output.failures.len(), 1);
    let failure = &output.failures[0];
    assert_eq!(
        (
            failure.origin,
            failure.transformer_index,
            failure.error_type
        ),
        (1, Some(0), ErrorType::InvalidData)
    );
    assert!(
        failure.message.contains("told to fail"),
        "{}",
        failure.message
    );
    assert_eq!(
        c.last_runs()[0].rebuilds,
        0,
        "a reported failure costs no rebuild"
    );
}

#[test]
fn an_async_task_that_waits_forever_or_spins_fails_only_its_message() {
    let mut c = chain();
    let output = run(
        &mut c,
        &[
            r#"{"id":0}"#,
            r#""hang""#,
            r#"{"id":2}"#,
            r#""spin""#,
            r#"{"id":4}"#,
        ],
    );
    assert_eq!(output.origins, [0, 2, 4]);
    let failed: Vec<(usize, ErrorType)> = output
        .failures
        .iter()
        .map(|f| (f.origin, f.error_type))
        .collect();
    assert_eq!(failed.len(), 2, "{:?}", output.failures);
    // The host sees that the task waits on nothing that can ever finish.
    assert_eq!(failed[0], (1, ErrorType::TransformTrap));
    assert!(
        output.failures[0]
            .message
            .contains("cannot make further progress"),
        "{}",
        output.failures[0].message
    );
    assert_eq!(failed[1], (3, ErrorType::TransformTimeout));
    // The flow goes on with the next batch.
    let next = run(&mut c, &[r#"{"id":5}"#]);
    assert_eq!(next.outputs.len(), 1);
}
