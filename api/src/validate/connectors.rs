//! Checks of connector settings beyond their types: required values (given
//! directly or through a SecretRef), choices, and numbers that must be positive.

use crate::connectors::{
    CdcSnapshotMode, ClickhouseSinkSpec, ClickhouseSourceSpec, FileSpec, GENERATOR_TEMPLATES,
    GeneratorSpec, KafkaSasl, KafkaSecurityProtocol, KafkaSinkSpec, KafkaSourceSpec, KafkaTls,
    Keycloak, NessieS3, NessieSinkSpec, NessieSourceSpec, PostgresqlCdcSourceSpec,
    PostgresqlSinkSpec, PostgresqlSourceSpec, TrinoSinkSpec, TrinoSourceSpec, is_cdc_name,
};
use crate::{SecretRef, SinkSpec, SourceSpec};

use super::Validator;

/// Most rows one read of a polling source may ask for.
const MAX_READ_BATCH_SIZE: u32 = 100_000;

impl Validator {
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

    pub(super) fn source(&mut self, path: &str, s: &SourceSpec) {
        let at = |name: &str| format!("{path}.{name}");
        match s {
            SourceSpec::Kafka(c) => self.kafka_source(&at("kafka"), c),
            SourceSpec::Postgresql(c) => self.postgresql_source(&at("postgresql"), c),
            SourceSpec::PostgresqlCdc(c) => self.postgresql_cdc_source(&at("postgresqlCdc"), c),
            SourceSpec::Clickhouse(c) => self.clickhouse_source(&at("clickhouse"), c),
            SourceSpec::Trino(c) => self.trino_source(&at("trino"), c),
            SourceSpec::Nessie(c) => self.nessie_source(&at("nessie"), c),
            SourceSpec::File(c) => self.file(&at("file"), c),
            SourceSpec::Generator(c) => self.generator(&at("generator"), c),
            SourceSpec::Stdin => {}
        }
    }

    pub(super) fn sink(&mut self, path: &str, s: &SinkSpec) {
        let at = |name: &str| format!("{path}.{name}");
        match s {
            SinkSpec::Kafka(c) => self.kafka_sink(&at("kafka"), c),
            SinkSpec::Postgresql(c) => self.postgresql_sink(&at("postgresql"), c),
            SinkSpec::Clickhouse(c) => self.clickhouse_sink(&at("clickhouse"), c),
            SinkSpec::Trino(c) => self.trino_sink(&at("trino"), c),
            SinkSpec::Nessie(c) => self.nessie_sink(&at("nessie"), c),
            SinkSpec::File(c) => self.file(&at("file"), c),
            SinkSpec::Stdout => {}
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

    /// A client certificate needs its key, and a key its certificate.
    fn tls(&mut self, path: &str, tls: Option<&KafkaTls>) {
        let Some(tls) = tls else { return };
        let cert = tls.cert_file.is_some() || tls.cert_secret_ref.is_some();
        let key = tls.key_file.is_some() || tls.key_secret_ref.is_some();
        if cert && !key {
            self.fail(&format!("{path}.tls.keyFile"), "required with certFile");
        }
        if key && !cert {
            self.fail(&format!("{path}.tls.certFile"), "required with keyFile");
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

    fn security_protocol(
        &mut self,
        path: &str,
        protocol: Option<KafkaSecurityProtocol>,
        tls: bool,
        sasl: bool,
    ) {
        if let Some(protocol) = protocol
            && let Err(reason) = protocol.agrees_with(tls, sasl)
        {
            self.fail(&format!("{path}.securityProtocol"), reason);
        }
    }

    fn kafka_source(&mut self, path: &str, c: &KafkaSourceSpec) {
        self.kafka_brokers(path, &c.brokers, c.brokers_secret_ref.as_ref());
        self.security_protocol(path, c.security_protocol, c.tls.is_some(), c.sasl.is_some());
        self.required(path, "topic", c.topic.as_ref(), c.topic_secret_ref.as_ref());
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
            self.tls(&format!("{path}.schemaRegistry"), registry.tls.as_ref());
        }
        self.tls(path, c.tls.as_ref());
        self.kafka_sasl(path, c.sasl.as_ref());
    }

    fn kafka_sink(&mut self, path: &str, c: &KafkaSinkSpec) {
        self.kafka_brokers(path, &c.brokers, c.brokers_secret_ref.as_ref());
        self.security_protocol(path, c.security_protocol, c.tls.is_some(), c.sasl.is_some());
        self.required(path, "topic", c.topic.as_ref(), c.topic_secret_ref.as_ref());
        if let Some(key) = &c.key_field {
            self.path(&format!("{path}.keyField"), key);
        }
        for (name, from) in c.headers.iter().flatten() {
            let at = format!("{path}.headers.{name}");
            if name.is_empty() {
                self.fail(&at, "a header needs a name");
            }
            match from.strip_prefix("metadata.") {
                Some("") => self.fail(&at, "metadata. needs a key after it"),
                Some(_) => {}
                None => self.path(&at, from),
            }
        }
        self.tls(path, c.tls.as_ref());
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
        for (field, column) in [
            ("changeTrackingColumn", &c.change_tracking_column),
            ("orderByColumn", &c.order_by_column),
        ] {
            if let Some(column) = column {
                self.column_name(&format!("{path}.{field}"), column);
            }
        }
        if c.order_by_column.is_some() && c.change_tracking_column.is_none() {
            self.fail(
                &format!("{path}.orderByColumn"),
                "breaks ties of changeTrackingColumn; set that column too",
            );
        }
        if c.order_by_column.is_some() && c.order_by_column == c.change_tracking_column {
            self.fail(
                &format!("{path}.orderByColumn"),
                "is changeTrackingColumn itself; name another column or leave it out",
            );
        }
        if let Some(size) = c.read_batch_size
            && !(1..=MAX_READ_BATCH_SIZE).contains(&size)
        {
            self.fail(
                &format!("{path}.readBatchSize"),
                format!("must be between 1 and {MAX_READ_BATCH_SIZE}"),
            );
        }
    }

    /// A PostgreSQL column name as written in a spec (at most 63 bytes).
    fn column_name(&mut self, path: &str, name: &str) {
        if name.trim().is_empty() {
            self.fail(path, "must name a column");
        } else if name.len() > 63 {
            self.fail(path, "is longer than PostgreSQL's 63-byte name limit");
        }
    }

    fn postgresql_cdc_source(&mut self, path: &str, c: &PostgresqlCdcSourceSpec) {
        self.required(
            path,
            "connectionString",
            c.connection_string.as_ref(),
            c.connection_string_secret_ref.as_ref(),
        );
        if c.tables.is_empty() {
            self.fail(&format!("{path}.tables"), "at least one table is required");
        }
        for (i, table) in c.tables.iter().enumerate() {
            let parts: Vec<&str> = table.split('.').collect();
            if parts.len() > 2 || parts.iter().any(|p| p.trim().is_empty()) {
                self.fail(
                    &format!("{path}.tables[{i}]"),
                    format!("{table:?} is not `table` or `schema.table`"),
                );
            }
        }
        for (field, name) in [
            ("slotName", &c.slot_name),
            ("publicationName", &c.publication_name),
        ] {
            if let Some(name) = name
                && !is_cdc_name(name)
            {
                self.fail(
                    &format!("{path}.{field}"),
                    format!("{name:?}: use 1 to 63 lower-case letters, digits and underscores"),
                );
            }
        }
        if let (Some(snapshot), Some(mode)) = (c.snapshot, c.snapshot_mode)
            && snapshot != (mode == CdcSnapshotMode::Initial)
        {
            self.fail(
                &format!("{path}.snapshot"),
                "contradicts snapshotMode; set one of them",
            );
        }
        self.poll_interval(path, c.poll_interval);
        if c.heartbeat_interval_seconds == Some(0) {
            self.fail(
                &format!("{path}.heartbeatIntervalSeconds"),
                "must be at least 1 second",
            );
        }
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
        if c.raw_mode == Some(true) && c.upsert_mode == Some(true) {
            self.fail(
                &format!("{path}.upsertMode"),
                "a rawMode table (value, _metadata) has no key to upsert on; use one of them",
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
        if c.upsert_mode == Some(true) && c.conflict_key.is_none() {
            self.fail(
                &format!("{path}.conflictKey"),
                "upsertMode needs the columns that identify a row (ClickHouse has no primary key to default to)",
            );
        }
        if c.conflict_key.is_some() && c.upsert_mode != Some(true) {
            self.fail(
                &format!("{path}.conflictKey"),
                "only used with upsertMode: true",
            );
        }
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
        if c.raw_mode == Some(false) {
            self.fail(
                &format!("{path}.rawMode"),
                "the Trino sink writes whole messages into a data VARCHAR column only; remove rawMode or set it to true",
            );
        }
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
        self.nessie_s3(path, c.s3.as_ref());
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
        self.nessie_s3(path, c.s3.as_ref());
    }

    /// An access key needs its secret and the other way round.
    fn nessie_s3(&mut self, path: &str, s3: Option<&NessieS3>) {
        let Some(s3) = s3 else { return };
        let id = s3.access_key_id.is_some() || s3.access_key_id_secret_ref.is_some();
        let secret = s3.secret_access_key.is_some() || s3.secret_access_key_secret_ref.is_some();
        if id != secret {
            self.fail(
                &format!("{path}.s3"),
                "set accessKeyId and secretAccessKey together (or their SecretRefs)",
            );
        }
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
}
