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
        "spec.sink.postgresql.table: required",
        "spec.transformations[1].filter.condition: invalid condition \"a == \": expected a literal after the operator following \"a\"",
        "spec.transformations[2].mask.fields: must not be empty",
        "spec.transformations[3].mask.maskChar: must be exactly one character, got \"ab\"",
        "spec.transformations[4].router.routes[0].sink.file.path: required",
        "spec.transformations[5]: only one router is allowed per DataFlow",
        "spec.transformations[6].wasm: set path (local runs), configMapRef or image (in cluster)",
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

#[test]
fn a_kafka_source_without_consumer_group_is_valid() {
    let p = problems(
        "source: {type: kafka, kafka: {brokers: [k:9092], topic: in}}\nsink: {type: stdout}\n",
    );
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn negative_or_malformed_resource_quantities_are_refused() {
    let p = problems(
        r#"
source: {type: stdin}
sink: {type: stdout}
resources:
  requests: {cpu: "-100m", memory: "2Gi", ephemeral-storage: "10 Mi"}
  limits: {cpu: "1", memory: "1Gi"}
"#,
    );
    assert_eq!(
        p,
        [
            "spec.resources.requests.cpu: \"-100m\" is negative; a quantity must be zero or more",
            "spec.resources.requests.ephemeral-storage: \"10 Mi\" has an unknown suffix (use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent)",
            "spec.resources.requests.memory: is more than limits.memory",
        ]
    );
    let fine = problems(
        "source: {type: stdin}\nsink: {type: stdout}\nresources: {requests: {cpu: 200m, memory: 256Mi}, limits: {cpu: 1000m, memory: 1Gi}}\n",
    );
    assert!(fine.is_empty(), "{fine:?}");
}

#[test]
fn schema_registry_tls_takes_the_full_tls_block() {
    let p = problems(
        r#"
source:
  type: kafka
  kafka:
    brokers: [k:9092]
    topic: t
    format: avro
    schemaRegistry:
      url: https://registry:8081
      tls:
        caSecretRef: {name: tls, key: ca.crt}
        certSecretRef: {name: tls, key: tls.crt}
        keySecretRef: {name: tls, key: tls.key}
sink: {type: stdout}
"#,
    );
    assert!(p.is_empty(), "{p:?}");
    let p = problems(
        "source: {type: kafka, kafka: {brokers: [k:9092], topic: t, format: avro, schemaRegistry: {url: u, tls: {certFile: /c.pem}}}}\nsink: {type: stdout}\n",
    );
    assert_eq!(
        p,
        ["spec.source.kafka.schemaRegistry.tls.keyFile: required with certFile"]
    );
}

#[test]
fn when_is_checked_and_survives_a_round_trip() {
    let p = problems(
        "source: {type: stdin}\nsink: {type: stdout}\ntransformations: [{type: timestamp, when: \"a ==\"}]\n",
    );
    assert_eq!(
        p,
        [
            "spec.transformations[0].when: invalid condition \"a ==\": expected a literal after the operator following \"a\""
        ]
    );
    let spec = spec(
        "source: {type: stdin}\nsink: {type: stdout}\ntransformations: [{type: mask, when: \"metadata.topic == 'x'\", mask: {fields: [a]}}, {type: timestamp}]\n",
    );
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        json["transformations"],
        serde_json::json!([
            {"type": "mask", "when": "metadata.topic == 'x'", "mask": {"fields": ["a"]}},
            {"type": "timestamp", "timestamp": {}}
        ])
    );
    let again: DataFlowSpec = serde_json::from_value(json).unwrap();
    assert_eq!(again, spec);
}

#[test]
fn the_go_originals_config_form_reads_as_the_named_block() {
    let generic = spec(
        r#"
source:
  type: kafka
  config: {brokers: [k:9092], topic: in, consumerGroup: g}
sink:
  type: postgresql
  config: {connectionString: "postgres://x", table: t, autoCreateTable: true}
transformations:
  - type: mask
    when: "metadata.topic == 'in'"
    config: {fields: [card]}
  - type: router
    config: {routes: [{condition: "a", sink: {type: stdout}}]}
"#,
    );
    let named = spec(
        r#"
source: {type: kafka, kafka: {brokers: [k:9092], topic: in, consumerGroup: g}}
sink: {type: postgresql, postgresql: {connectionString: "postgres://x", table: t, autoCreateTable: true}}
transformations:
  - {type: mask, when: "metadata.topic == 'in'", mask: {fields: [card]}}
  - {type: router, router: {routes: [{condition: "a", sink: {type: stdout}}]}}
"#,
    );
    assert_eq!(generic, named);
    assert!(problems("source: {type: stdin, config: {}}\nsink: {type: stdout}\n").is_empty());

    let err = |yaml: &str| {
        serde_path_to_error::deserialize::<_, DataFlowSpec>(serde_norway::Deserializer::from_str(
            yaml,
        ))
        .unwrap_err()
        .to_string()
    };
    let typo =
        err("source: {type: kafka, config: {topic: t, brokerz: [k]}}\nsink: {type: stdout}\n");
    assert!(
        typo.starts_with("source: config.brokerz: unknown field `brokerz`"),
        "{typo}"
    );
    let both =
        err("source: {type: kafka, config: {topic: t}, kafka: {topic: t}}\nsink: {type: stdout}\n");
    assert!(
        both.contains("both config and the kafka block are set"),
        "{both}"
    );
    let stdin = err("source: {type: stdin, config: {x: 1}}\nsink: {type: stdout}\n");
    assert!(stdin.contains("type stdin takes no config"), "{stdin}");
}

#[test]
fn cdc_settings_are_checked_field_by_field() {
    let good = problems(
        r#"
source:
  type: postgresql-cdc
  postgresqlCdc: {connectionString: "postgres://x", tables: [public.users, orders], snapshotMode: initial}
sink: {type: stdout}
"#,
    );
    assert!(good.is_empty(), "{good:?}");
    let p = problems(
        r#"
source:
  type: postgresql-cdc
  postgresqlCdc: {tables: ["a.b.c"], slotName: Bad-Slot, snapshot: false, snapshotMode: initial, heartbeatIntervalSeconds: 0}
sink: {type: stdout}
"#,
    );
    for expected in [
        "spec.source.postgresqlCdc.connectionString: required",
        "spec.source.postgresqlCdc.tables[0]",
        "spec.source.postgresqlCdc.slotName",
        "spec.source.postgresqlCdc.snapshot: contradicts snapshotMode",
        "spec.source.postgresqlCdc.heartbeatIntervalSeconds",
    ] {
        assert!(
            p.iter().any(|e| e.starts_with(expected)),
            "{expected}: {p:?}"
        );
    }
    let empty = problems(
        "source: {type: postgresql-cdc, postgresqlCdc: {connectionString: x}}\nsink: {type: stdout}",
    );
    assert!(
        empty
            .iter()
            .any(|e| e.contains("tables: at least one table")),
        "{empty:?}"
    );
}

#[test]
fn the_go_originals_flow_settings_are_read() {
    let yaml = r#"
ackGranularity: message
checkpointPersistence: false
channelBufferSize: 5000
source:
  type: kafka
  config:
    brokers: [kafka:9092]
    topic: events
    securityProtocol: SASL_SSL
    sasl: {mechanism: scram-sha-512, username: u, password: p}
sink: {type: stdout}
errors:
  type: kafka
  config: {brokers: [kafka:9092], topic: dlq}
  ackPolicy: afterWrite
"#;
    assert!(problems(yaml).is_empty(), "{:?}", problems(yaml));
    let parsed = spec(yaml);
    assert!(!parsed.persists_positions());
    assert_eq!(parsed.channel_buffer_size, Some(5000));

    let p = problems(
        r#"
channelBufferSize: 0
source: {type: kafka, kafka: {brokers: [k:9092], topic: t, securityProtocol: SASL_PLAINTEXT}}
sink: {type: kafka, kafka: {brokers: [k:9092], topic: u, securityProtocol: PLAINTEXT, tls: {insecureSkipVerify: true}}}
"#,
    );
    for expected in [
        "spec.channelBufferSize: must be 1 to 1000000",
        "spec.source.kafka.securityProtocol: needs a sasl block",
        "spec.sink.kafka.securityProtocol: does not use TLS",
    ] {
        assert!(
            p.iter().any(|e| e.starts_with(expected)),
            "{expected}: {p:?}"
        );
    }
    let refused = serde_norway::from_str::<DataFlowSpec>(
        "source: {type: stdin}\nsink: {type: stdout, ackPolicy: beforeWrite}",
    );
    assert!(
        refused.is_err_and(|e| e.to_string().contains("afterWrite")),
        "only afterWrite exists"
    );
}

#[test]
fn execution_settings_are_checked() {
    let job = spec(
        "execution: {mode: job}\nsource: {type: generator, generator: {count: 5}}\nsink: {type: stdout}",
    );
    assert!(job.runs_to_completion());
    let scheduled = spec(
        "execution: {schedule: '0 3 * * *'}\nsource: {type: generator, generator: {count: 5}}\nsink: {type: stdout}",
    );
    assert!(scheduled.runs_to_completion(), "a schedule implies job");
    assert!(!spec("source: {type: stdin}\nsink: {type: stdout}").runs_to_completion());

    let p = problems(
        r#"
replicas: 3
execution: {mode: stream, schedule: '61 * * * *', backoffLimit: -1}
source: {type: postgresql-cdc, postgresqlCdc: {connectionString: 'postgres://x', tables: [t]}}
sink: {type: stdout}
"#,
    );
    for expected in [
        "spec.execution.schedule: a schedule starts runs that end",
        "spec.execution.schedule: minute \"61\"",
        "spec.execution.backoffLimit: must be 0 to 100",
        "spec.replicas: a job runs one processor",
        "spec.execution.mode: a postgresql-cdc source has no end",
    ] {
        assert!(
            p.iter().any(|e| e.starts_with(expected)),
            "{expected}: {p:?}"
        );
    }
}

#[test]
fn the_progress_deadline_has_a_default_and_a_range() {
    let base = "source: {type: stdin}\nsink: {type: stdout}\n";
    assert_eq!(spec(base).progress_deadline_seconds(), 600);
    let set = format!("{base}progressDeadlineSeconds: 120\n");
    assert!(problems(&set).is_empty());
    assert_eq!(spec(&set).progress_deadline_seconds(), 120);
    for bad in [0, 59, 86_401] {
        let p = problems(&format!("{base}progressDeadlineSeconds: {bad}\n"));
        assert_eq!(
            p,
            ["spec.progressDeadlineSeconds: must be 60 to 86400"],
            "{bad}"
        );
    }
}

#[test]
fn the_go_originals_sql_settings_are_read_and_checked() {
    let yaml = r#"
source:
  type: postgresql
  postgresql:
    connectionString: "postgres://x"
    query: "SELECT * FROM legacy WHERE migrated = false"
    changeTrackingColumn: created_at
    orderByColumn: id
    readBatchSize: 500
sink:
  type: clickhouse
  config: {connectionString: "clickhouse://c", table: t, upsertMode: true, conflictKey: event_id, rawMode: true}
errors:
  type: postgresql
  postgresql: {connectionString: "postgres://x", table: raw, rawMode: true, autoCreateTable: true}
"#;
    assert!(problems(yaml).is_empty(), "{:?}", problems(yaml));
    let listed = "source: {type: stdin}\nsink: {type: postgresql, postgresql: {connectionString: x, table: t, upsertMode: true, conflictKey: [id, region]}}";
    assert!(problems(listed).is_empty(), "{:?}", problems(listed));

    let p = problems(
        r#"
source: {type: postgresql, postgresql: {connectionString: x, table: t, orderByColumn: id, readBatchSize: 0}}
sink: {type: clickhouse, clickhouse: {connectionString: c, table: t, upsertMode: true}}
errors: {type: trino, trino: {serverURL: "http://t", catalog: c, schema: s, table: t, rawMode: false}}
"#,
    );
    for expected in [
        "spec.source.postgresql.orderByColumn: breaks ties of changeTrackingColumn",
        "spec.source.postgresql.readBatchSize: must be between 1 and 100000",
        "spec.sink.clickhouse.conflictKey: upsertMode needs the columns",
        "spec.errors.trino.rawMode: the Trino sink writes whole messages",
    ] {
        assert!(
            p.iter().any(|e| e.starts_with(expected)),
            "{expected}: {p:?}"
        );
    }
    let p = problems(
        "source: {type: postgresql, postgresql: {connectionString: x, table: t, changeTrackingColumn: id, orderByColumn: id}}\nsink: {type: postgresql, postgresql: {connectionString: x, table: t, rawMode: true, upsertMode: true}}",
    );
    for expected in [
        "spec.source.postgresql.orderByColumn: is changeTrackingColumn itself",
        "spec.sink.postgresql.upsertMode: a rawMode table",
    ] {
        assert!(
            p.iter().any(|e| e.starts_with(expected)),
            "{expected}: {p:?}"
        );
    }
}

#[test]
fn python_steps_need_one_source_of_bounded_size() {
    let big = format!(
        "{}def transform(doc, ctx): return doc",
        "#".repeat(MAX_SCRIPT_BYTES)
    );
    let p = problems(&format!(
        r#"
source: {{type: stdin}}
sink: {{type: stdout}}
transformations:
  - {{type: python, python: {{code: "def transform(doc, ctx): return doc", config: {{a: [1]}}}}}}
  - {{type: python, python: {{codeConfigMapRef: {{name: code, key: t.py}}, limits: {{memoryMiB: 0}}}}}}
  - {{type: python, python: {{}}}}
  - {{type: python, python: {{code: "x = 1", codeConfigMapRef: {{name: code, key: t.py}}}}}}
  - {{type: python, python: {{code: "x = 1"}}}}
  - {{type: python, python: {{code: "{big}"}}}}
  - {{type: javascript, javascript: {{codeConfigMapRef: {{name: code, key: t.ts}}}}}}
  - {{type: javascript, javascript: {{config: {{a: 1}}}}}}
"#
    ));
    assert_eq!(
        p,
        [
            "spec.transformations[1].python.limits.memoryMiB: must be at least 1",
            "spec.transformations[2].python: set code (the source inline) or codeConfigMapRef",
            "spec.transformations[3].python: set code or codeConfigMapRef, not both",
            "spec.transformations[4].python.code: defines no function transform(doc, ctx)",
            &format!(
                "spec.transformations[5].python.code: is {} bytes; at most {MAX_SCRIPT_BYTES} are accepted",
                big.len()
            ),
            "spec.transformations[7].javascript: set code (the source inline) or codeConfigMapRef",
        ]
    );
}

#[test]
fn a_pinned_script_digest_must_match_the_inline_source() {
    let code = "def transform(doc, ctx): return doc";
    // The digest of some other source.
    let other = "0a4b5ed5e0d7b3c1d2e8c8a3de0bd5f3fa1bfd4b5cc8a0e1d3c9b5e34c3c9f15";
    let flow = |sha: &str| {
        format!(
            "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: python, python: {{code: \"{code}\", sha256: \"{sha}\"}}}}\n"
        )
    };
    let actual = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(code.as_bytes()))
    };
    assert_eq!(problems(&flow(&actual)), Vec::<String>::new());
    assert_eq!(
        problems(&flow(other)),
        [format!(
            "spec.transformations[0].python.sha256: the source has sha256 {actual}, expected {other}"
        )]
    );
    assert_eq!(
        problems(&flow("abc")),
        ["spec.transformations[0].python.sha256: must be 64 hexadecimal characters"]
    );
}

#[test]
fn a_nessie_s3_key_needs_its_secret() {
    let flow = |s3: &str| {
        format!(
            "source: {{type: stdin}}\nsink: {{type: nessie, nessie: {{baseURL: \"http://n:19120\", namespace: a, table: t, s3: {s3}}}}}\n"
        )
    };
    assert_eq!(
        problems(&flow("{accessKeyId: AKIA, region: us-east-1}")),
        ["spec.sink.nessie.s3: set accessKeyId and secretAccessKey together (or their SecretRefs)"]
    );
    assert!(
        problems(&flow(
            "{accessKeyId: AKIA, secretAccessKeySecretRef: {name: s3, key: secret}}"
        ))
        .is_empty()
    );
    assert!(
        problems(&flow(
            "{endpoint: \"http://minio:9000\", pathStyleAccess: true}"
        ))
        .is_empty()
    );
}

#[test]
fn an_image_component_is_pinned_by_sha256() {
    let p = problems(
        r#"
source: {type: stdin}
sink: {type: stdout}
transformations:
  - {type: wasm, wasm: {image: {reference: "registry.example.com/transforms/pii:1.0"}}}
  - {type: wasm, wasm: {image: {reference: "pii"}, sha256: "00"}}
  - {type: wasm, wasm: {image: {reference: "r.io/a/b:1"}, configMapRef: {name: c, key: k}, sha256: "0000000000000000000000000000000000000000000000000000000000000000"}}
  - type: wasm
    wasm:
      image: {reference: "r.io/a/b:1", plainHttp: true, username: u, passwordSecretRef: {name: s, key: p}}
      sha256: "0000000000000000000000000000000000000000000000000000000000000000"
  - type: wasm
    wasm:
      image: {reference: "r.io/a/b:1", dockerConfigSecretRef: {name: regcred, key: .dockerconfigjson}}
      sha256: "0000000000000000000000000000000000000000000000000000000000000000"
  - type: wasm
    wasm:
      image: {reference: "r.io/a/b:1", username: u, dockerConfigSecretRef: {name: regcred, key: .dockerconfigjson}}
      sha256: "0000000000000000000000000000000000000000000000000000000000000000"
"#,
    );
    let expected = [
        "spec.transformations[0].wasm.sha256: is required with image: the digest of the component layer pins what runs, whatever the tag points at later",
        "spec.transformations[1].wasm.sha256: must be 64 hexadecimal characters",
        "spec.transformations[1].wasm.image.reference: must name the registry and the repository, e.g. registry.example.com/transforms/pii:1.0",
        "spec.transformations[2].wasm: set configMapRef or image, not both",
        "spec.transformations[5].wasm.image: set username/password or dockerConfigSecretRef, not both",
    ];
    assert_eq!(p, expected);
}
