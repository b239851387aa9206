use super::*;

fn spec(yaml: &str) -> DataFlowSpec {
    serde_norway::from_str(yaml).unwrap()
}

fn problems(yaml: &str) -> Vec<String> {
    match validate(&spec(yaml)) {
        Ok(()) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_good_spec_passes() {
    let p = problems(
        r#"
source: {type: kafka, kafka: {brokers: [k:9092], topic: in, consumerGroup: g}}
sink: {type: postgresql, postgresql: {connectionString: "postgres://x", table: t, batchSize: 100}}
errors: {type: file, file: {path: /tmp/errors.jsonl}}
transformations:
  - {type: timestamp}
  - {type: mask, mask: {fields: [user.email, "$.card"], keepLength: true}}
  - type: router
    router:
      routes:
        - condition: "$.level == 'error'"
          sink: {type: stdout}
  - {type: wasm, wasm: {path: x.wasm, limits: {memoryMiB: 32}}}
"#,
    );
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let p = problems(
        r#"
source: {type: kafka, kafka: {topic: in}}
sink: {type: postgresql, postgresql: {connectionString: "postgres://x"}}
transformations:
  - {type: timestamp}
  - {type: filter, filter: {condition: "a == "}}
  - {type: mask, mask: {fields: []}}
  - {type: mask, mask: {fields: [a], maskChar: "ab"}}
  - {type: router, router: {routes: [{condition: "x", sink: {type: file, file: {path: ""}}}]}}
  - {type: router, router: {routes: [{condition: "x", sink: {type: stdout}}]}}
  - {type: wasm, wasm: {sha256: abc}}
"#,
    );
    let expected = [
        "spec.source.kafka.brokers: required",
        "spec.source.kafka.consumerGroup: required",
        "spec.sink.postgresql.table: required",
        "spec.transformations[1].filter.condition: invalid condition \"a == \": expected a literal after the operator following \"a\"",
        "spec.transformations[2].mask.fields: must not be empty",
        "spec.transformations[3].mask.maskChar: must be exactly one character, got \"ab\"",
        "spec.transformations[4].router.routes[0].sink.file.path: required",
        "spec.transformations[5]: only one router is allowed per DataFlow",
        "spec.transformations[6].wasm: set path (local runs) or configMapRef (in cluster)",
        "spec.transformations[6].wasm.sha256: must be 64 hexadecimal characters",
    ];
    assert_eq!(p, expected);
}

#[test]
fn secret_refs_satisfy_required_fields() {
    let p = problems(
        r#"
source:
  type: kafka
  kafka:
    brokersSecretRef: {name: s, key: brokers}
    topicSecretRef: {name: s, key: topic}
    consumerGroupSecretRef: {name: s, key: group}
    sasl: {mechanism: SCRAM-SHA-512, usernameSecretRef: {name: s, key: u}, passwordSecretRef: {name: s, key: p}}
sink:
  type: trino
  trino:
    serverURL: http://trino:8080
    catalog: hive
    schema: default
    tableSecretRef: {name: s, key: t}
    keycloak: {tokenSecretRef: {name: s, key: token}}
"#,
    );
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn unknown_fields_are_rejected_by_name() {
    let err = serde_norway::from_str::<DataFlowSpec>(
        "source: {type: stdin}\nsink: {type: stdout}\ntransformations: [{type: mask, mask: {fields: [a], keepLenght: true}}]\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("keepLenght"), "{err}");
}
