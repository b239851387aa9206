//! PostgreSQL and ClickHouse source and sink settings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SecretRef;

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
