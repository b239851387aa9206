//! Connector configurations. Field names and defaults follow the Go original's
//! documentation; every `*SecretRef` field it lists is here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SecretRef;

/// Default poll interval of SQL sources, seconds.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 5;
/// Default poll interval of the Nessie source, seconds.
pub const DEFAULT_NESSIE_POLL_INTERVAL_SECS: u64 = 10;
/// Default batch flush interval of batching sinks, seconds.
pub const DEFAULT_FLUSH_INTERVAL_SECS: u64 = 10;

// ---------------------------------------------------------------- Kafka

/// TLS settings for Kafka. Each of `caFile`, `certFile` and `keyFile` may hold a
/// file path or PEM content (text starting with `-----BEGIN`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaTls {
    /// Skip server certificate verification (testing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// CA certificate: path or PEM content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// CA certificate from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretRef>,
    /// Client certificate: path or PEM content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// Client certificate from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<SecretRef>,
    /// Client private key: path or PEM content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Client private key from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretRef>,
}

/// SASL authentication for Kafka.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaSasl {
    /// `plain`, `scram-sha-256` or `scram-sha-512` (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// User name from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretRef>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Password from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretRef>,
}

/// Basic authentication for the Schema Registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// User name from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretRef>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Password from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretRef>,
}

/// TLS settings for the Schema Registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchemaRegistryTls {
    /// Skip server certificate verification (testing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// CA certificate file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// Confluent Schema Registry (messages carry magic byte + schema id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchemaRegistry {
    /// Registry URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Registry URL from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretRef>,
    /// Basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SchemaRegistryTls>,
}

/// Kafka source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaSourceSpec {
    /// Bootstrap brokers (`host:port`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<String>,
    /// Brokers from a Secret (comma-separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brokers_secret_ref: Option<SecretRef>,
    /// Topic to consume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Topic from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_secret_ref: Option<SecretRef>,
    /// Consumer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<String>,
    /// Consumer group from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group_secret_ref: Option<SecretRef>,
    /// `json` (default) or `avro`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Wrap each message as `{value, _metadata: {topic, partition, offset, timestamp, key}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_mode: Option<bool>,
    /// Static Avro schema (JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avro_schema: Option<String>,
    /// Static Avro schema from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avro_schema_secret_ref: Option<SecretRef>,
    /// Path of a static Avro schema file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avro_schema_file: Option<String>,
    /// Confluent Schema Registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry: Option<SchemaRegistry>,
    /// TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,
    /// SASL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSasl>,
}

/// Kafka sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaSinkSpec {
    /// Bootstrap brokers (`host:port`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<String>,
    /// Brokers from a Secret (comma-separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brokers_secret_ref: Option<SecretRef>,
    /// Topic to produce to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Topic from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_secret_ref: Option<SecretRef>,
    /// Path of a message field whose value becomes the Kafka message key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_field: Option<String>,
    /// TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,
    /// SASL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSasl>,
}

// ---------------------------------------------------------------- SQL databases

/// PostgreSQL source: polls a table or runs a query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresqlSourceSpec {
    /// `postgres://user:password@host:5432/db?sslmode=disable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    /// Connection string from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string_secret_ref: Option<SecretRef>,
    /// Table to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Table name from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_secret_ref: Option<SecretRef>,
    /// Custom query used instead of reading the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Poll interval in seconds (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<u64>,
    /// Wrap each row as `{value, _metadata: {table, id}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_mode: Option<bool>,
}

/// PostgreSQL sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresqlSinkSpec {
    /// `postgres://user:password@host:5432/db?sslmode=disable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    /// Connection string from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string_secret_ref: Option<SecretRef>,
    /// Target table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Table name from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_secret_ref: Option<SecretRef>,
    /// Rows per insert (default 1); 0 flushes on the timer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Flush interval in seconds (default 10); 0 flushes by size only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_flush_interval_seconds: Option<u64>,
    /// Create the table (JSONB `data`, GIN index, `created_at`) when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_create_table: Option<bool>,
    /// Update existing rows on conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsert_mode: Option<bool>,
    /// Conflict column for upserts (default: the primary key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_key: Option<String>,
}

/// ClickHouse source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClickhouseSourceSpec {
    /// `clickhouse://user@host:9000/db` or `http://host:8123/db?username=...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    /// Connection string from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string_secret_ref: Option<SecretRef>,
    /// Table to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Table name from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_secret_ref: Option<SecretRef>,
    /// Custom query used instead of reading the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Poll interval in seconds (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<u64>,
    /// Wrap each row as `{value, _metadata: {table, id}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_mode: Option<bool>,
}

/// ClickHouse sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClickhouseSinkSpec {
    /// `clickhouse://user@host:9000/db` or `http://host:8123/db?username=...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    /// Connection string from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string_secret_ref: Option<SecretRef>,
    /// Target table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Table name from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_secret_ref: Option<SecretRef>,
    /// Rows per insert (default 100); 0 flushes on the timer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Flush interval in seconds (default 10); 0 flushes by size only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_flush_interval_seconds: Option<u64>,
    /// Create a MergeTree table (`data String`, `created_at DateTime`) when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_create_table: Option<bool>,
}

// ---------------------------------------------------------------- Trino

/// Keycloak (OAuth2) authentication for Trino: a direct `token`, the password
/// grant (`username` + `password`) or client credentials (`clientID` + `clientSecret`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Keycloak {
    /// Keycloak base URL.
    #[serde(default, rename = "serverURL", skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    /// Keycloak base URL from a Secret.
    #[serde(
        default,
        rename = "serverURLSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_url_secret_ref: Option<SecretRef>,
    /// Realm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// Realm from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm_secret_ref: Option<SecretRef>,
    /// OAuth2 client id.
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Client id from a Secret.
    #[serde(
        default,
        rename = "clientIDSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_id_secret_ref: Option<SecretRef>,
    /// OAuth2 client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Client secret from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_secret_ref: Option<SecretRef>,
    /// User for the password grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// User from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretRef>,
    /// Password for the password grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Password from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretRef>,
    /// A long-lived access token used as is (never refreshed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Token from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretRef>,
}

/// Trino source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrinoSourceSpec {
    /// Trino URL, e.g. `http://trino:8080`.
    #[serde(default, rename = "serverURL", skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    /// Server URL from a Secret.
    #[serde(
        default,
        rename = "serverURLSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_url_secret_ref: Option<SecretRef>,
    /// Catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// Catalog from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_secret_ref: Option<SecretRef>,
    /// Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Schema from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_secret_ref: Option<SecretRef>,
    /// Table to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Table from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_secret_ref: Option<SecretRef>,
    /// Custom query used instead of reading the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Poll interval in seconds (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<u64>,
    /// Wrap each row as `{value, _metadata: {catalog, schema, table, id}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_mode: Option<bool>,
    /// Keycloak authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keycloak: Option<Keycloak>,
}

/// Trino sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrinoSinkSpec {
    /// Trino URL, e.g. `http://trino:8080`.
    #[serde(default, rename = "serverURL", skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    /// Server URL from a Secret.
    #[serde(
        default,
        rename = "serverURLSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_url_secret_ref: Option<SecretRef>,
    /// Catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// Catalog from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_secret_ref: Option<SecretRef>,
    /// Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Schema from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_secret_ref: Option<SecretRef>,
    /// Target table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Table from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_secret_ref: Option<SecretRef>,
    /// Rows per insert (default 1); 0 flushes on the timer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Flush interval in seconds (default 10); 0 flushes by size only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_flush_interval_seconds: Option<u64>,
    /// Create the table (one VARCHAR column for the JSON) when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_create_table: Option<bool>,
    /// Keycloak authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keycloak: Option<Keycloak>,
}

// ---------------------------------------------------------------- Nessie / Iceberg

/// Basic authentication for Nessie.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NessieBasicAuth {
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// Nessie (Iceberg REST catalog) source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NessieSourceSpec {
    /// Nessie base URL, e.g. `http://nessie:19120`.
    #[serde(default, rename = "baseURL", skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Base URL from a Secret.
    #[serde(
        default,
        rename = "baseURLSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub base_url_secret_ref: Option<SecretRef>,
    /// Branch (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Warehouse name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
    /// Iceberg namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Namespace from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_secret_ref: Option<SecretRef>,
    /// Table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Table from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_secret_ref: Option<SecretRef>,
    /// Poll interval in seconds (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<u64>,
    /// Wrap each row as `{value, _metadata: {namespace, table}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_mode: Option<bool>,
    /// Bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// Bearer token from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretRef>,
    /// Basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<NessieBasicAuth>,
}

/// Nessie (Iceberg REST catalog) sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NessieSinkSpec {
    /// Nessie base URL, e.g. `http://nessie:19120`.
    #[serde(default, rename = "baseURL", skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Base URL from a Secret.
    #[serde(
        default,
        rename = "baseURLSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub base_url_secret_ref: Option<SecretRef>,
    /// Branch (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Warehouse name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
    /// Iceberg namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Namespace from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_secret_ref: Option<SecretRef>,
    /// Table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Table from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_secret_ref: Option<SecretRef>,
    /// Rows per append commit (default 100); 0 flushes on the timer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Flush interval in seconds (default 10); 0 flushes by size only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_flush_interval_seconds: Option<u64>,
    /// Create the table (one `data` string column) when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_create_table: Option<bool>,
    /// Bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// Bearer token from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretRef>,
    /// Basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<NessieBasicAuth>,
}

// ---------------------------------------------------------------- embedded

/// A JSON-lines file: one message per line. As a sink it appends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSpec {
    /// File path.
    pub path: String,
}

/// Synthetic messages for demos and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratorSpec {
    /// Number of messages; 0 (default) generates until stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Message template: `orders` (default; the benchmark corpus shape) or `counter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Messages per second; 0 or unset means as fast as possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u64>,
}

/// Generator templates.
pub const GENERATOR_TEMPLATES: [&str; 2] = ["orders", "counter"];
