//! PostgreSQL and ClickHouse source and sink settings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConflictKey;
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
    /// Column incremental reads follow (any ordered type: integer, numeric,
    /// timestamp, date, text, uuid ...). Default: `id` when it is an integer or
    /// numeric, else `created_at` when it is a timestamp or date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_tracking_column: Option<String>,
    /// Tie-breaker when `changeTrackingColumn` is not unique (e.g. `id` under
    /// `updated_at`): rows are read in the order of both columns and the position
    /// holds both values, so rows sharing a tracking value are not skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by_column: Option<String>,
    /// Rows per read of an incremental source (default 1000, at most 100000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_batch_size: Option<u32>,
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
    /// Store each message in `value JSONB` and its metadata (topic, partition,
    /// key, headers ...) in `_metadata JSONB`; a message already shaped
    /// `{"value": .., "_metadata": {..}}` (a source's `rawMode`) is stored as it
    /// is. `autoCreateTable` makes the table with those two columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_mode: Option<bool>,
    /// Update existing rows on conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsert_mode: Option<bool>,
    /// Columns that identify a row for upserts: a name, `"a, b"`, or a list
    /// (default: the table's primary key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_key: Option<ConflictKey>,
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
    /// Create a MergeTree table (`data String`, `created_at DateTime`) when missing
    /// (a ReplacingMergeTree ordered by the `conflictKey` with `upsertMode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_create_table: Option<bool>,
    /// `true`: whole messages as JSON text in the `data` column (the table must
    /// have one). `false` or unset: the table's columns decide (a `data String`
    /// column takes whole messages, other tables take top-level fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_mode: Option<bool>,
    /// Keep only the newest row per `conflictKey`: the table must be a
    /// ReplacingMergeTree whose sorting key is the conflict key (read with `FINAL`
    /// for deduplicated results); every message must carry the key's fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsert_mode: Option<bool>,
    /// Columns (top-level fields) identifying a row for `upsertMode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_key: Option<ConflictKey>,
}
