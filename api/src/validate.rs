//! Spec validation: every problem is reported with its field path.

use std::fmt;

use dataflow_builtins::Step;

use crate::connectors::{
    ClickhouseSinkSpec, ClickhouseSourceSpec, FileSpec, GENERATOR_TEMPLATES, GeneratorSpec,
    KafkaSasl, KafkaSinkSpec, KafkaSourceSpec, Keycloak, NessieSinkSpec, NessieSourceSpec,
    PostgresqlSinkSpec, PostgresqlSourceSpec, TrinoSinkSpec, TrinoSourceSpec,
};
use crate::{
    DataFlowSpec, SecretRef, SinkSpec, SinkType, SourceSpec, SourceType, TransformType,
    TransformationSpec, WasmTransformSpec,
};

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where, e.g. `spec.transformations[2].mask.fields`.
    pub path: String,
    /// What is wrong, e.g. `must not be empty`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a spec (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Validates a spec. Paths start at `spec.`.
pub fn validate(spec: &DataFlowSpec) -> Result<(), ValidationErrors> {
    let mut v = Validator::default();
    v.source("spec.source", &spec.source);
    v.sink("spec.sink", &spec.sink);
    if let Some(errors) = &spec.errors {
        v.sink("spec.errors", errors);
    }
    let mut routers = 0;
    for (i, t) in spec.transformations.iter().enumerate() {
        let path = format!("spec.transformations[{i}]");
        if t.kind == TransformType::Router {
            routers += 1;
            if routers > 1 {
                v.fail(&path, "only one router is allowed per DataFlow");
            }
        }
        v.transformation(&path, t);
    }
    if let Some(replicas) = spec.replicas
        && replicas < 1
    {
        v.fail("spec.replicas", "must be at least 1");
    }
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(v.errors))
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// A field that may be given directly or through a SecretRef.
    fn required(
        &mut self,
        path: &str,
        field: &str,
        value: Option<&String>,
        secret: Option<&SecretRef>,
    ) {
        let given = value.is_some_and(|v| !v.trim().is_empty()) || secret.is_some();
        if !given {
            self.fail(&format!("{path}.{field}"), "required");
        }
    }

    /// Checks that exactly the block named by `kind` is set among `blocks`.
    fn blocks(&mut self, path: &str, kind: &str, needs_block: bool, blocks: &[(&str, bool)]) {
        for (name, present) in blocks {
            if *name == kind {
                if needs_block && !present {
                    self.fail(
                        &format!("{path}.{name}"),
                        format!("required when type is {kind}"),
                    );
                }
            } else if *present {
                self.fail(
                    &format!("{path}.{name}"),
                    format!("set, but type is {kind}"),
                );
            }
        }
    }

    fn source(&mut self, path: &str, s: &SourceSpec) {
        let kind = s.kind.as_str();
        self.blocks(
            path,
            kind,
            s.kind != SourceType::Stdin,
            &[
                ("kafka", s.kafka.is_some()),
                ("postgresql", s.postgresql.is_some()),
                ("clickhouse", s.clickhouse.is_some()),
                ("trino", s.trino.is_some()),
                ("nessie", s.nessie.is_some()),
                ("file", s.file.is_some()),
                ("generator", s.generator.is_some()),
                ("stdin", false),
            ],
        );
        let at = |name: &str| format!("{path}.{name}");
        if let Some(c) = s.kafka.as_ref().filter(|_| s.kind == SourceType::Kafka) {
            self.kafka_source(&at("kafka"), c);
        }
        if let Some(c) = s
            .postgresql
            .as_ref()
            .filter(|_| s.kind == SourceType::Postgresql)
        {
            self.postgresql_source(&at("postgresql"), c);
        }
        if let Some(c) = s
            .clickhouse
            .as_ref()
            .filter(|_| s.kind == SourceType::Clickhouse)
        {
            self.clickhouse_source(&at("clickhouse"), c);
        }
        if let Some(c) = s.trino.as_ref().filter(|_| s.kind == SourceType::Trino) {
            self.trino_source(&at("trino"), c);
        }
        if let Some(c) = s.nessie.as_ref().filter(|_| s.kind == SourceType::Nessie) {
            self.nessie_source(&at("nessie"), c);
        }
        if let Some(c) = s.file.as_ref().filter(|_| s.kind == SourceType::File) {
            self.file(&at("file"), c);
        }
        if let Some(c) = s
            .generator
            .as_ref()
            .filter(|_| s.kind == SourceType::Generator)
        {
            self.generator(&at("generator"), c);
        }
    }

    fn sink(&mut self, path: &str, s: &SinkSpec) {
        let kind = s.kind.as_str();
        self.blocks(
            path,
            kind,
            s.kind != SinkType::Stdout,
            &[
                ("kafka", s.kafka.is_some()),
                ("postgresql", s.postgresql.is_some()),
                ("clickhouse", s.clickhouse.is_some()),
                ("trino", s.trino.is_some()),
                ("nessie", s.nessie.is_some()),
                ("file", s.file.is_some()),
                ("stdout", false),
            ],
        );
        let at = |name: &str| format!("{path}.{name}");
        if let Some(c) = s.kafka.as_ref().filter(|_| s.kind == SinkType::Kafka) {
            self.kafka_sink(&at("kafka"), c);
        }
        if let Some(c) = s
            .postgresql
            .as_ref()
            .filter(|_| s.kind == SinkType::Postgresql)
        {
            self.postgresql_sink(&at("postgresql"), c);
        }
        if let Some(c) = s
            .clickhouse
            .as_ref()
            .filter(|_| s.kind == SinkType::Clickhouse)
        {
            self.clickhouse_sink(&at("clickhouse"), c);
        }
        if let Some(c) = s.trino.as_ref().filter(|_| s.kind == SinkType::Trino) {
            self.trino_sink(&at("trino"), c);
        }
        if let Some(c) = s.nessie.as_ref().filter(|_| s.kind == SinkType::Nessie) {
            self.nessie_sink(&at("nessie"), c);
        }
        if let Some(c) = s.file.as_ref().filter(|_| s.kind == SinkType::File) {
            self.file(&at("file"), c);
        }
    }

    fn kafka_brokers(&mut self, path: &str, brokers: &[String], secret: Option<&SecretRef>) {
        if brokers.is_empty() && secret.is_none() {
            self.fail(&format!("{path}.brokers"), "required");
        }
        for (i, broker) in brokers.iter().enumerate() {
            if broker.trim().is_empty() {
                self.fail(&format!("{path}.brokers[{i}]"), "must not be empty");
            }
        }
    }

    fn kafka_sasl(&mut self, path: &str, sasl: Option<&KafkaSasl>) {
        let Some(sasl) = sasl else { return };
        let path = format!("{path}.sasl");
        match sasl
            .mechanism
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("plain" | "scram-sha-256" | "scram-sha-512") => {}
            Some(other) => self.fail(
                &format!("{path}.mechanism"),
                format!("{other:?} is not one of plain, scram-sha-256, scram-sha-512"),
            ),
            None => self.fail(&format!("{path}.mechanism"), "required"),
        }
        self.required(
            &path,
            "username",
            sasl.username.as_ref(),
            sasl.username_secret_ref.as_ref(),
        );
        self.required(
            &path,
            "password",
            sasl.password.as_ref(),
            sasl.password_secret_ref.as_ref(),
        );
    }

    fn kafka_source(&mut self, path: &str, c: &KafkaSourceSpec) {
        self.kafka_brokers(path, &c.brokers, c.brokers_secret_ref.as_ref());
        self.required(path, "topic", c.topic.as_ref(), c.topic_secret_ref.as_ref());
        self.required(
            path,
            "consumerGroup",
            c.consumer_group.as_ref(),
            c.consumer_group_secret_ref.as_ref(),
        );
        match c.format.as_deref() {
            None | Some("json") => {}
            Some("avro") => {
                let has_schema = c.avro_schema.is_some()
                    || c.avro_schema_secret_ref.is_some()
                    || c.avro_schema_file.is_some()
                    || c.schema_registry.is_some();
                if !has_schema {
                    self.fail(
                        &format!("{path}.format"),
                        "avro needs avroSchema, avroSchemaSecretRef, avroSchemaFile or schemaRegistry",
                    );
                }
            }
            Some(other) => self.fail(
                &format!("{path}.format"),
                format!("{other:?} is not one of json, avro"),
            ),
        }
        if let Some(registry) = &c.schema_registry {
            self.required(
                &format!("{path}.schemaRegistry"),
                "url",
                registry.url.as_ref(),
                registry.url_secret_ref.as_ref(),
            );
        }
        self.kafka_sasl(path, c.sasl.as_ref());
    }

    fn kafka_sink(&mut self, path: &str, c: &KafkaSinkSpec) {
        self.kafka_brokers(path, &c.brokers, c.brokers_secret_ref.as_ref());
        self.required(path, "topic", c.topic.as_ref(), c.topic_secret_ref.as_ref());
        if let Some(key) = &c.key_field {
            self.path(&format!("{path}.keyField"), key);
        }
        self.kafka_sasl(path, c.sasl.as_ref());
    }

    fn table_or_query(
        &mut self,
        path: &str,
        table: Option<&String>,
        secret: Option<&SecretRef>,
        query: Option<&String>,
    ) {
        if query.is_none_or(|q| q.trim().is_empty()) {
            self.required(path, "table", table, secret);
        }
    }

    fn postgresql_source(&mut self, path: &str, c: &PostgresqlSourceSpec) {
        self.required(
            path,
            "connectionString",
            c.connection_string.as_ref(),
            c.connection_string_secret_ref.as_ref(),
        );
        self.table_or_query(
            path,
            c.table.as_ref(),
            c.table_secret_ref.as_ref(),
            c.query.as_ref(),
        );
        self.poll_interval(path, c.poll_interval);
    }

    fn postgresql_sink(&mut self, path: &str, c: &PostgresqlSinkSpec) {
        self.required(
            path,
            "connectionString",
            c.connection_string.as_ref(),
            c.connection_string_secret_ref.as_ref(),
        );
        self.required(path, "table", c.table.as_ref(), c.table_secret_ref.as_ref());
        self.batching(path, c.batch_size, c.batch_flush_interval_seconds);
        if c.conflict_key.is_some() && c.upsert_mode != Some(true) {
            self.fail(
                &format!("{path}.conflictKey"),
                "only used with upsertMode: true",
            );
        }
    }

    fn clickhouse_source(&mut self, path: &str, c: &ClickhouseSourceSpec) {
        self.required(
            path,
            "connectionString",
            c.connection_string.as_ref(),
            c.connection_string_secret_ref.as_ref(),
        );
        self.table_or_query(
            path,
            c.table.as_ref(),
            c.table_secret_ref.as_ref(),
            c.query.as_ref(),
        );
        self.poll_interval(path, c.poll_interval);
    }

    fn clickhouse_sink(&mut self, path: &str, c: &ClickhouseSinkSpec) {
        self.required(
            path,
            "connectionString",
            c.connection_string.as_ref(),
            c.connection_string_secret_ref.as_ref(),
        );
        self.required(path, "table", c.table.as_ref(), c.table_secret_ref.as_ref());
        self.batching(path, c.batch_size, c.batch_flush_interval_seconds);
    }

    fn keycloak(&mut self, path: &str, k: Option<&Keycloak>) {
        let Some(k) = k else { return };
        let path = format!("{path}.keycloak");
        if k.token.is_some() || k.token_secret_ref.is_some() {
            return;
        }
        self.required(
            &path,
            "serverURL",
            k.server_url.as_ref(),
            k.server_url_secret_ref.as_ref(),
        );
        self.required(
            &path,
            "realm",
            k.realm.as_ref(),
            k.realm_secret_ref.as_ref(),
        );
        self.required(
            &path,
            "clientID",
            k.client_id.as_ref(),
            k.client_id_secret_ref.as_ref(),
        );
        let has_user = k.username.is_some() || k.username_secret_ref.is_some();
        let has_password = k.password.is_some() || k.password_secret_ref.is_some();
        if has_user != has_password {
            self.fail(&path, "the password grant needs both username and password");
        }
        if !has_user && k.client_secret.is_none() && k.client_secret_secret_ref.is_none() {
            self.fail(
                &path,
                "set token, username and password (password grant), or clientSecret (client credentials)",
            );
        }
    }

    fn trino_common(
        &mut self,
        path: &str,
        url: (Option<&String>, Option<&SecretRef>),
        catalog: (Option<&String>, Option<&SecretRef>),
        schema: (Option<&String>, Option<&SecretRef>),
    ) {
        self.required(path, "serverURL", url.0, url.1);
        self.required(path, "catalog", catalog.0, catalog.1);
        self.required(path, "schema", schema.0, schema.1);
    }

    fn trino_source(&mut self, path: &str, c: &TrinoSourceSpec) {
        self.trino_common(
            path,
            (c.server_url.as_ref(), c.server_url_secret_ref.as_ref()),
            (c.catalog.as_ref(), c.catalog_secret_ref.as_ref()),
            (c.schema.as_ref(), c.schema_secret_ref.as_ref()),
        );
        self.table_or_query(
            path,
            c.table.as_ref(),
            c.table_secret_ref.as_ref(),
            c.query.as_ref(),
        );
        self.poll_interval(path, c.poll_interval);
        self.keycloak(path, c.keycloak.as_ref());
    }

    fn trino_sink(&mut self, path: &str, c: &TrinoSinkSpec) {
        self.trino_common(
            path,
            (c.server_url.as_ref(), c.server_url_secret_ref.as_ref()),
            (c.catalog.as_ref(), c.catalog_secret_ref.as_ref()),
            (c.schema.as_ref(), c.schema_secret_ref.as_ref()),
        );
        self.required(path, "table", c.table.as_ref(), c.table_secret_ref.as_ref());
        self.batching(path, c.batch_size, c.batch_flush_interval_seconds);
        self.keycloak(path, c.keycloak.as_ref());
    }

    fn nessie_source(&mut self, path: &str, c: &NessieSourceSpec) {
        self.required(
            path,
            "baseURL",
            c.base_url.as_ref(),
            c.base_url_secret_ref.as_ref(),
        );
        self.required(
            path,
            "namespace",
            c.namespace.as_ref(),
            c.namespace_secret_ref.as_ref(),
        );
        self.required(path, "table", c.table.as_ref(), c.table_secret_ref.as_ref());
        self.poll_interval(path, c.poll_interval);
    }

    fn nessie_sink(&mut self, path: &str, c: &NessieSinkSpec) {
        self.required(
            path,
            "baseURL",
            c.base_url.as_ref(),
            c.base_url_secret_ref.as_ref(),
        );
        self.required(
            path,
            "namespace",
            c.namespace.as_ref(),
            c.namespace_secret_ref.as_ref(),
        );
        self.required(path, "table", c.table.as_ref(), c.table_secret_ref.as_ref());
        self.batching(path, c.batch_size, c.batch_flush_interval_seconds);
    }

    fn file(&mut self, path: &str, c: &FileSpec) {
        if c.path.trim().is_empty() {
            self.fail(&format!("{path}.path"), "required");
        }
    }

    fn generator(&mut self, path: &str, c: &GeneratorSpec) {
        if let Some(template) = &c.template
            && !GENERATOR_TEMPLATES.contains(&template.as_str())
        {
            self.fail(
                &format!("{path}.template"),
                format!(
                    "{template:?} is not one of {}",
                    GENERATOR_TEMPLATES.join(", ")
                ),
            );
        }
    }

    fn poll_interval(&mut self, path: &str, interval: Option<u64>) {
        if interval == Some(0) {
            self.fail(&format!("{path}.pollInterval"), "must be at least 1 second");
        }
    }

    fn batching(&mut self, path: &str, size: Option<u32>, interval: Option<u64>) {
        if size == Some(0) && interval == Some(0) {
            self.fail(
                path,
                "batchSize and batchFlushIntervalSeconds cannot both be 0: nothing would ever be written",
            );
        }
    }

    fn path(&mut self, path: &str, text: &str) {
        if let Err(e) = dataflow_transform_sdk::path::FieldPath::parse(text) {
            self.fail(path, e.to_string());
        }
    }

    fn transformation(&mut self, path: &str, t: &TransformationSpec) {
        let kind = t.kind.as_str();
        let needs_block = !matches!(
            t.kind,
            TransformType::Timestamp | TransformType::SnakeCase | TransformType::CamelCase
        );
        self.blocks(
            path,
            kind,
            needs_block,
            &[
                ("timestamp", t.timestamp.is_some()),
                ("flatten", t.flatten.is_some()),
                ("filter", t.filter.is_some()),
                ("mask", t.mask.is_some()),
                ("router", t.router.is_some()),
                ("select", t.select.is_some()),
                ("remove", t.remove.is_some()),
                ("snakeCase", t.snake_case.is_some()),
                ("camelCase", t.camel_case.is_some()),
                ("wasm", t.wasm.is_some()),
            ],
        );
        if let Some(router) = t
            .router
            .as_ref()
            .filter(|_| t.kind == TransformType::Router)
        {
            for (j, route) in router.routes.iter().enumerate() {
                self.sink(&format!("{path}.router.routes[{j}].sink"), &route.sink);
            }
        }
        if t.kind == TransformType::Wasm {
            if let Some(wasm) = &t.wasm {
                self.wasm(&format!("{path}.wasm"), wasm);
            }
            return;
        }
        // Built-ins: run the transform's own constructor, natively, so the spec is
        // checked by exactly the code that will run it.
        if let Some(config) = t.component_config()
            && let Err(e) = Step::new(kind, &config.to_string())
        {
            let at = match e.key() {
                Some(key) => format!("{path}.{kind}.{key}"),
                None => format!("{path}.{kind}"),
            };
            self.fail(&at, e.reason());
        }
    }

    fn wasm(&mut self, path: &str, w: &WasmTransformSpec) {
        match (&w.path, &w.config_map_ref) {
            (None, None) => self.fail(path, "set path (local runs) or configMapRef (in cluster)"),
            (Some(p), _) if p.trim().is_empty() => {
                self.fail(&format!("{path}.path"), "must not be empty")
            }
            _ => {}
        }
        if let Some(sha) = &w.sha256
            && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            self.fail(
                &format!("{path}.sha256"),
                "must be 64 hexadecimal characters",
            );
        }
        if let Some(limits) = &w.limits {
            if limits.memory_mib == Some(0) {
                self.fail(&format!("{path}.limits.memoryMiB"), "must be at least 1");
            }
            if limits.timeout_ms == Some(0) {
                self.fail(&format!("{path}.limits.timeoutMs"), "must be at least 1");
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
sink: {type: postgresql, postgresql: {connectionString: "postgres://x"}, file: {path: x}}
transformations:
  - {type: timestamp}
  - {type: filter, filter: {condition: "a == "}}
  - {type: mask, mask: {fields: []}}
  - {type: mask, mask: {fields: [a], maskChar: "ab"}}
  - {type: flatten}
  - {type: router, router: {routes: [{condition: "x", sink: {type: file}}]}}
  - {type: router, router: {routes: [{condition: "x", sink: {type: stdout}}]}}
  - {type: wasm, wasm: {sha256: abc}}
"#,
        );
        let expected = [
            "spec.source.kafka.brokers: required",
            "spec.source.kafka.consumerGroup: required",
            "spec.sink.file: set, but type is postgresql",
            "spec.sink.postgresql.table: required",
            "spec.transformations[1].filter.condition: invalid condition \"a == \": expected a literal after the operator following \"a\"",
            "spec.transformations[2].mask.fields: must not be empty",
            "spec.transformations[3].mask.maskChar: must be exactly one character, got \"ab\"",
            "spec.transformations[4].flatten: required when type is flatten",
            "spec.transformations[5].router.routes[0].sink.file: required when type is file",
            "spec.transformations[6]: only one router is allowed per DataFlow",
            "spec.transformations[7].wasm: set path (local runs) or configMapRef (in cluster)",
            "spec.transformations[7].wasm.sha256: must be 64 hexadecimal characters",
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
}
