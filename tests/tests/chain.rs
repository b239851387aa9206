//! The transform chain in the real wasmtime host: fused built-ins agree with the
//! native chain, failures carry the right transformer index, custom components sit
//! between built-ins, and user components are sandboxed.

use dataflow_api::ErrorType;
use dataflow_api::manifest as spec;
use dataflow_builtins::Chain;
use dataflow_core::Message;
use dataflow_processor::builtins::BUILTINS_COMPONENT;
use dataflow_tests::component;
use dataflow_transform_sdk::{Outcome, Transform, process_batch};
use dataflow_wasm_host::{ScriptRuntimes, TransformChain, WasmRuntime};
use serde_json::{Value, json};

fn chain(yaml: &str) -> TransformChain {
    let loaded = spec::parse(yaml).unwrap();
    TransformChain::build(
        &WasmRuntime::new().unwrap(),
        &loaded.spec,
        BUILTINS_COMPONENT,
        &ScriptRuntimes::default(),
    )
    .unwrap()
}

fn messages(docs: &[String]) -> Vec<Message> {
    docs.iter()
        .map(|d| Message {
            payload: d.as_bytes().to_vec(),
            metadata: vec![("topic".into(), "orders".into())],
        })
        .collect()
}

fn sample_orders(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            json!({"orderId": i, "active": i % 3 != 0, "level": if i % 5 == 0 { "error" } else { "info" },
                   "user": {"userId": i, "email": format!("u{i}@example.com"), "homeAddress": {"zipCode": "01234"}},
                   "card": "4111111111111111", "internal_id": "x", "debug": {"traceId": "t"},
                   "items": [{"sku": "A", "unitPrice": 1.25}, {"sku": "B", "unitPrice": 2}]})
            .to_string()
        })
        .collect()
}

const BENCH_CHAIN: &str = r#"
source: {type: stdin}
sink: {type: stdout}
transformations:
  - {type: filter, filter: {condition: "$.active"}}
  - {type: mask, mask: {fields: [user.email, card], keepLength: true}}
  - {type: remove, remove: {fields: [internal_id, debug]}}
  - {type: flatten, flatten: {field: items}}
  - {type: snakeCase, snakeCase: {deep: true}}
"#;

#[test]
fn fused_wasm_chain_matches_the_native_chain() {
    let docs = sample_orders(500);
    let mut wasm = chain(BENCH_CHAIN);
    let output = wasm.run(&mut messages(&docs));
    assert!(output.failures.is_empty());

    let config = json!({"steps": [
        {"type": "filter", "config": {"condition": "$.active"}},
        {"type": "mask", "config": {"fields": ["user.email", "card"], "keepLength": true}},
        {"type": "remove", "config": {"fields": ["internal_id", "debug"]}},
        {"type": "flatten", "config": {"field": "items"}},
        {"type": "snakeCase", "config": {"deep": true}},
    ]});
    let mut native = Chain::from_config(&config.to_string()).unwrap();
    let batch = docs
        .iter()
        .map(|d| dataflow_transform_sdk::Message {
            payload: d.as_bytes().to_vec(),
            metadata: vec![("topic".into(), "orders".into())],
        })
        .collect();
    let expected: Vec<Vec<u8>> = process_batch(&mut native, batch)
        .into_iter()
        .flat_map(|o| match o {
            Outcome::Emitted(out) => out.into_iter().map(|m| m.payload).collect::<Vec<_>>(),
            Outcome::Failed(e) => panic!("{e}"),
        })
        .collect();
    let got: Vec<Vec<u8>> = output.outputs.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(got, expected);
    // 2 of 3 are active, each flattened into 2 messages.
    assert_eq!(got.len(), (0..500).filter(|i| i % 3 != 0).count() * 2);
    assert_eq!(output.filtered, (0..500).filter(|i| i % 3 == 0).count());
    // Lineage: outputs point back at their inputs, in order.
    assert!(output.origins.windows(2).all(|w| w[0] <= w[1]));
    assert!(
        output
            .outputs
            .iter()
            .all(|m| m.metadata == vec![("topic".to_owned(), "orders".to_owned())])
    );
    let first: Value = serde_json::from_slice(&got[0]).unwrap();
    assert_eq!(first["unit_price"].to_string(), "1.25");
}

#[test]
fn a_failure_inside_a_fused_group_names_its_own_transformation() {
    let mut c = chain(
        r#"
source: {type: stdin}
sink: {type: stdout}
transformations:
  - {type: snakeCase}
  - {type: timestamp, timestamp: {fieldName: "list.5"}}
"#,
    );
    let output = c.run(&mut messages(&[
        r#"{"list": [1]}"#.to_owned(),
        r#"{"other": 1}"#.to_owned(),
    ]));
    assert_eq!(output.outputs.len(), 1);
    assert_eq!(output.failures.len(), 1);
    let failure = &output.failures[0];
    assert_eq!(
        (
            failure.origin,
            failure.transformer_index,
            failure.error_type
        ),
        (0, Some(1), ErrorType::InvalidData)
    );
}

/// A message with Kafka-like metadata that names it.
fn tagged(n: usize, payload: &str) -> Message {
    Message {
        payload: payload.as_bytes().to_vec(),
        metadata: vec![
            ("topic".into(), "orders".into()),
            ("headers.trace-id".into(), format!("trace-{n}")),
        ],
    }
}

#[test]
fn failed_inputs_keep_their_metadata_for_error_records_wherever_they_fail() {
    // Built-ins, a user component, built-ins: failures in the first and the last group.
    let mut c = chain(&format!(
        r#"
source: {{type: stdin}}
sink: {{type: stdout}}
transformations:
  - {{type: timestamp, timestamp: {{fieldName: "list.5"}}}}
  - {{type: wasm, wasm: {{path: {}}}}}
  - {{type: cast, cast: {{fields: {{n: integer}}}}}}
"#,
        component("pii_redact").display()
    ));
    let originals = vec![
        tagged(0, r#"{"n": "7"}"#),
        tagged(1, r#"{"list": [1]}"#),
        tagged(2, r#"{"n": "seven"}"#),
    ];
    let mut inputs = originals.clone();
    let output = c.run(&mut inputs);
    assert_eq!(output.origins, [0]);
    assert_eq!(output.outputs[0].metadata, originals[0].metadata);
    let failed: Vec<(usize, Option<usize>)> = output
        .failures
        .iter()
        .map(|f| (f.origin, f.transformer_index))
        .collect();
    assert_eq!(failed, [(1, Some(0)), (2, Some(2))]);
    for failure in &output.failures {
        let record = failure.record(&inputs, dataflow_api::SinkType::Stdout);
        assert_eq!(
            record.metadata,
            originals[failure.origin].metadata.as_slice()
        );
        assert_eq!(
            record.original,
            originals[failure.origin].payload.as_slice()
        );
    }
}

#[test]
fn a_last_group_of_built_ins_hands_its_inputs_metadata_on_instead_of_copying_it() {
    let mut c = chain(
        r#"
source: {type: stdin}
sink: {type: stdout}
transformations:
  - {type: insertField, insertField: {fields: {seen: true}}}
  - {type: cast, cast: {fields: {n: integer}}}
"#,
    );
    let originals = vec![tagged(0, r#"{"n": "1"}"#), tagged(1, r#"{"n": "one"}"#)];
    let mut inputs = originals.clone();
    let output = c.run(&mut inputs);
    assert_eq!(output.outputs.len(), 1);
    assert_eq!(output.outputs[0].metadata, originals[0].metadata);
    assert!(
        inputs[0].metadata.is_empty(),
        "the metadata was copied, not moved"
    );
    assert_eq!(inputs[1], originals[1], "a failed input is left whole");
}

#[test]
fn custom_component_between_built_ins() {
    let mut c = chain(&format!(
        r#"
source: {{type: stdin}}
sink: {{type: stdout}}
transformations:
  - {{type: select, select: {{fields: [user.email, note]}}}}
  - {{type: wasm, wasm: {{path: {}, config: {{keepDomain: true}}}}}}
  - {{type: camelCase}}
"#,
        component("pii_redact").display()
    ));
    let output = c.run(&mut messages(&[
        r#"{"user":{"email":"jane@example.com"},"note":"card 4111 1111 1111 1111","x":1}"#
            .to_owned(),
    ]));
    let doc: Value = serde_json::from_slice(&output.outputs[0].payload).unwrap();
    assert_eq!(
        doc,
        json!({"Email": "j***@example.com", "Note": "card ************1111"})
    );
}

#[test]
fn user_components_get_no_files_env_args_network_or_http() {
    let mut c = chain(&format!(
        "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: wasm, wasm: {{path: {}, config: {{mode: probe}}}}}}\n",
        component("dataflow_test_components").display()
    ));
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe { std::env::set_var("DATAFLOW_SECRET_PROBE", "visible?") };
    let output = c.run(&mut messages(&[r#"{"evil": true}"#.to_owned()]));
    let doc: Value = serde_json::from_slice(&output.outputs[0].payload).unwrap();
    let probe = &doc["probe"];
    assert!(
        probe["file"].as_str().unwrap().starts_with("denied"),
        "{probe}"
    );
    assert!(
        probe["dir"].as_str().unwrap().starts_with("denied"),
        "{probe}"
    );
    assert!(
        probe["net"].as_str().unwrap().starts_with("denied"),
        "{probe}"
    );
    // Refused by the host's policy, not by a closed port.
    assert_eq!(
        probe["http"], "denied: ErrorCode::HttpRequestDenied",
        "{probe}"
    );
    assert_eq!(probe["env"], 0);
    assert_eq!(probe["args"], 0);
}

#[test]
fn a_trapping_instance_is_rebuilt_and_the_rest_of_the_batch_succeeds() {
    let mut c = chain(&format!(
        "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: wasm, wasm: {{path: {}, config: {{mode: panic}}}}}}\n",
        component("dataflow_test_components").display()
    ));
    let docs: Vec<String> = (0..50)
        .map(|i| json!({"id": i, "evil": i % 10 == 3}).to_string())
        .collect();
    let output = c.run(&mut messages(&docs));
    assert_eq!(output.outputs.len(), 45);
    let failed: Vec<usize> = output.failures.iter().map(|f| f.origin).collect();
    assert_eq!(failed, [3, 13, 23, 33, 43]);
    assert!(
        output
            .failures
            .iter()
            .all(|f| f.error_type == ErrorType::TransformTrap
                && f.message.contains("panicked on purpose"))
    );
    assert!(c.rebuilds() >= 5, "instance rebuilt after each trap");
    // The next batch runs on a healthy instance.
    let again = c.run(&mut messages(&[r#"{"id": 99}"#.to_owned()]));
    assert_eq!(again.outputs.len(), 1);
}

/// A batch far larger than one call's payload budget is cut into several calls:
/// outputs keep the input order, a trap fails only its own messages (its call is
/// replayed one by one, the other calls are not), and the built-ins' step counters
/// add up over all the calls.
#[test]
fn a_large_batch_is_cut_into_calls_with_failures_isolated_per_call() {
    let pad = "x".repeat(1000);
    let evil = [5, 130, 131, 400, 599];
    let docs: Vec<String> = (0..600)
        .map(|i| {
            json!({"id": i, "active": i % 2 == 0, "evil": evil.contains(&i), "pad": pad})
                .to_string()
        })
        .collect();
    let mut c = chain(&format!(
        "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: timestamp}}\n  - {{type: filter, filter: {{condition: \"$.active || $.evil\"}}}}\n  - {{type: wasm, wasm: {{path: {}, config: {{mode: panic}}}}}}\n",
        component("dataflow_test_components").display()
    ));
    let output = c.run(&mut messages(&docs));
    let failed: Vec<usize> = output.failures.iter().map(|f| f.origin).collect();
    assert_eq!(failed, evil);
    let ids: Vec<u64> = output
        .outputs
        .iter()
        .map(|m| {
            serde_json::from_slice::<Value>(&m.payload).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let expected: Vec<u64> = (0..600u64)
        .filter(|i| i % 2 == 0 && !evil.contains(&(*i as usize)))
        .collect();
    assert_eq!(ids, expected);
    let runs = c.last_runs();
    let steps: Vec<(u64, u64)> = runs[0]
        .step_counts
        .iter()
        .map(|s| (s.received, s.emitted))
        .collect();
    assert_eq!(steps, [(600, 600), (600, 303)]);
    // The batch runs depth first: each call of the built-ins (about 128 KiB, some
    // 125 messages) hands its outputs on as one call of the component. Four of those
    // calls hold an evil message (5; 130 and 131; 400; 599). Each failed call is
    // followed by a rebuild, and so is each evil message's trap but the last one,
    // whose rebuild waits for the next batch.
    assert_eq!(runs[1].received, 303);
    assert_eq!(runs[1].rebuilds, 4 + 5 - 1);
}

/// A batch of large messages (30 MB in all) through a component limited to 16 MiB:
/// the batch is cut into calls, so no call comes near the limit and nothing is
/// replayed. (In one call the packed batch alone would not fit.)
#[test]
fn a_batch_of_large_messages_fits_a_small_memory_limit() {
    let pad = "y".repeat(300_000);
    let docs: Vec<String> = (0..100)
        .map(|i| json!({"id": i, "pad": pad}).to_string())
        .collect();
    let mut c = chain(&format!(
        "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: wasm, wasm: {{path: {}, config: {{mode: panic}}, limits: {{memoryMiB: 16}}}}}}\n",
        component("dataflow_test_components").display()
    ));
    let output = c.run(&mut messages(&docs));
    assert!(
        output.failures.is_empty(),
        "{:?}",
        output.failures.first().map(|f| &f.message)
    );
    assert_eq!(output.outputs.len(), 100);
    let run = &c.last_runs()[0];
    assert_eq!((run.memory_limit_hits, run.rebuilds), (0, 0));
}

/// What each batch reports for metrics: rebuilds, time-limit and memory-limit hits
/// of a custom component, and per-step counts from the fused built-ins.
#[test]
fn batches_report_sandbox_events_and_step_counts() {
    let docs: Vec<String> = (0..6)
        .map(|i| json!({"id": i, "active": i % 2 == 0, "evil": i == 1}).to_string())
        .collect();
    for (mode, timeouts, memory_hits) in [("loop", 1, 0), ("oom", 0, 1)] {
        let mut c = chain(&format!(
            "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: filter, filter: {{condition: \"$.active || $.evil\"}}}}\n  - {{type: timestamp}}\n  - {{type: wasm, wasm: {{path: {}, config: {{mode: {mode}}}, limits: {{timeoutMs: 200, memoryMiB: 16}}}}}}\n",
            component("dataflow_test_components").display()
        ));
        let output = c.run(&mut messages(&docs));
        assert_eq!(output.outputs.len(), 3, "{mode}");
        let runs = c.last_runs();
        assert_eq!(runs.len(), 2);
        let fused = &runs[0];
        assert_eq!(
            (fused.first_index, fused.steps, fused.custom),
            (0, 2, false)
        );
        assert_eq!((fused.received, fused.emitted), (6, 4));
        let steps: Vec<(u64, u64)> = fused
            .step_counts
            .iter()
            .map(|s| (s.received, s.emitted))
            .collect();
        assert_eq!(steps, [(6, 4), (4, 4)]);
        let custom = &runs[1];
        assert_eq!(
            (custom.first_index, custom.steps, custom.custom),
            (2, 1, true)
        );
        assert_eq!((custom.received, custom.emitted), (4, 3));
        assert!(custom.step_counts.is_empty());
        // The batch call fails once, then the evil message alone fails again.
        assert_eq!(
            (custom.timeouts, custom.memory_limit_hits),
            (2 * timeouts, 2 * memory_hits),
            "{mode}"
        );
        assert!(custom.rebuilds >= 1, "{mode}");
    }
}

/// A component made without the SDK (`tests/plain-component`) exports only
/// `transformer.process`, not `packed-transformer`: the host falls back to it, and
/// its outputs, metadata and failures come through as from any other component.
#[test]
fn components_without_the_packed_export_run_through_process() {
    let mut c = chain(&format!(
        "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: wasm, wasm: {{path: {}}}}}\n  - {{type: camelCase}}\n",
        component("dataflow_plain_component").display()
    ));
    let output = c.run(&mut messages(&[
        r#"{"order_id":1}"#.to_owned(),
        r#""fail""#.to_owned(),
        r#"{"order_id":3}"#.to_owned(),
    ]));
    let payloads: Vec<&[u8]> = output
        .outputs
        .iter()
        .map(|m| m.payload.as_slice())
        .collect();
    assert_eq!(payloads, [br#"{"OrderId":1}"#, br#"{"OrderId":3}"#]);
    assert_eq!(output.origins, [0, 2]);
    let expected_metadata = [
        ("topic".to_owned(), "orders".to_owned()),
        ("via".to_owned(), "process".to_owned()),
    ];
    assert!(
        output
            .outputs
            .iter()
            .all(|m| m.metadata == expected_metadata)
    );
    assert_eq!(output.failures.len(), 1);
    let failure = &output.failures[0];
    assert_eq!((failure.origin, failure.transformer_index), (1, Some(0)));
    assert_eq!(failure.error_type, ErrorType::InvalidData);
    assert!(
        failure.message.contains("told to fail"),
        "{}",
        failure.message
    );
}

#[test]
fn when_runs_a_step_only_where_it_holds_and_passes_the_rest_on_in_order() {
    let mut c = chain(&format!(
        r#"
source: {{type: stdin}}
sink: {{type: stdout}}
transformations:
  - {{type: mask, when: "metadata.topic == 'payments'", mask: {{fields: [card]}}}}
  - {{type: wasm, when: "level == 'error'", wasm: {{path: {}, config: {{keepDomain: true}}}}}}
  - {{type: filter, when: "level == 'debug'", filter: {{condition: "keep"}}}}
"#,
        component("pii_redact").display()
    ));
    let message = |topic: &str, payload: &str| Message {
        payload: payload.as_bytes().to_vec(),
        metadata: vec![("topic".into(), topic.into())],
    };
    let email = r#"{"email":"jane@example.com"}"#;
    let output = c.run(&mut [
        message(
            "payments",
            &format!(r#"{{"id":0,"level":"error","card":"4111","user":{email}}}"#),
        ),
        message(
            "orders",
            &format!(r#"{{"id":1,"level":"info","card":"4111","user":{email}}}"#),
        ),
        message("orders", "not json"),
        message("payments", r#"{"id":3,"level":"debug","card":"4111"}"#),
        message(
            "orders",
            &format!(r#"{{"id":4,"level":"error","card":"4111","user":{email}}}"#),
        ),
    ]);
    let docs: Vec<Value> = output
        .outputs
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert_eq!(
        docs,
        [
            json!({"id": 0, "level": "error", "card": "***", "user": {"email": "j***@example.com"}}),
            json!({"id": 1, "level": "info", "card": "4111", "user": {"email": "jane@example.com"}}),
            json!({"id": 4, "level": "error", "card": "4111", "user": {"email": "j***@example.com"}}),
        ],
        "each step ran only where its when held; the others passed it unchanged, in order"
    );
    assert_eq!(output.origins, [0, 1, 4]);
    assert_eq!(
        output.filtered, 1,
        "the debug message met the filter and was dropped"
    );
    assert_eq!(output.failures.len(), 1);
    assert_eq!(output.failures[0].origin, 2);
    assert_eq!(output.failures[0].error_type, ErrorType::InvalidData);
}

#[test]
fn the_cdc_example_turns_debezium_events_into_typed_rows() {
    let path = dataflow_tests::workspace().join("examples/debezium-to-postgres.yaml");
    let mut c = chain(&std::fs::read_to_string(path).unwrap());
    let event = |region: &str, payload: &str| Message {
        payload: payload.as_bytes().to_vec(),
        metadata: vec![
            ("topic".into(), "shop.public.orders".into()),
            ("headers.tenant".into(), "acme".into()),
            ("headers.region".into(), region.into()),
        ],
    };
    let source = r#""source":{"table":"orders","lsn":4711,"db":"shop"}"#;
    let output = c.run(&mut [
        event(
            "eu",
            &format!(
                r#"{{"before":null,"after":{{"id":7,"amount":"19.90","ordered_at":1767225600000000,"internal_note":"x"}},{source},"op":"c"}}"#
            ),
        ),
        event(
            "us",
            &format!(
                r#"{{"before":{{"id":8}},"after":{{"id":8,"amount":5,"ordered_at":1767225600000000}},{source},"op":"u"}}"#
            ),
        ),
        event("eu", "null"),
        event(
            "eu",
            &format!(r#"{{"before":{{"id":9,"amount":"1"}},"after":null,{source},"op":"d"}}"#),
        ),
        event(
            "eu",
            &format!(r#"{{"after":{{"id":10,"amount":"lots"}},{source},"op":"c"}}"#),
        ),
    ]);
    let docs: Vec<Value> = output
        .outputs
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert_eq!(
        docs,
        [
            json!({"order_id": "7", "amount": 19.9, "ordered_at": "2026-01-01T01:00:00+01:00",
                   "__deleted": false, "__op": "c", "source_table": "orders", "source_lsn": 4711, "tenant": "acme"}),
            json!({"order_id": "8", "amount": 5.0, "ordered_at": 1767225600000000i64,
                   "__deleted": false, "__op": "u", "source_table": "orders", "source_lsn": 4711, "tenant": "acme"}),
            json!({"order_id": "9", "amount": 1.0, "__deleted": true, "__op": "d",
                   "source_table": "orders", "source_lsn": 4711, "tenant": "acme"}),
        ],
        "rows typed, the EU time converted, the tombstone dropped, the delete marked"
    );
    assert_eq!(output.origins, [0, 1, 3]);
    assert_eq!(output.filtered, 1, "the tombstone is dropped by rule");
    assert_eq!(output.failures.len(), 1, "the amount 'lots' is not a float");
    assert_eq!(output.failures[0].origin, 4);
    assert_eq!(output.failures[0].error_type, ErrorType::InvalidData);
}
