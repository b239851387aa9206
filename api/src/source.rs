use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::connectors::{
    ClickhouseSourceSpec, FileSpec, GeneratorSpec, KafkaSourceSpec, NessieSourceSpec,
    PostgresqlSourceSpec, TrinoSourceSpec,
};

/// Source connector types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    /// Apache Kafka topic.
    Kafka,
    /// PostgreSQL table or query.
    Postgresql,
    /// ClickHouse table or query.
    Clickhouse,
    /// Trino table or query.
    Trino,
    /// Iceberg table through a Nessie catalog.
    Nessie,
    /// JSON-lines file (local runs).
    File,
    /// JSON lines on standard input (local runs).
    Stdin,
    /// Synthetic messages.
    Generator,
}

impl SourceType {
    /// The name used in specs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Kafka => "kafka",
            SourceType::Postgresql => "postgresql",
            SourceType::Clickhouse => "clickhouse",
            SourceType::Trino => "trino",
            SourceType::Nessie => "nessie",
            SourceType::File => "file",
            SourceType::Stdin => "stdin",
            SourceType::Generator => "generator",
        }
    }
}

/// A source: `type` plus the block named after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceSpec {
    /// Connector type.
    #[serde(rename = "type")]
    pub kind: SourceType,
    /// Kafka settings (type `kafka`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSourceSpec>,
    /// PostgreSQL settings (type `postgresql`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<PostgresqlSourceSpec>,
    /// ClickHouse settings (type `clickhouse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clickhouse: Option<ClickhouseSourceSpec>,
    /// Trino settings (type `trino`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trino: Option<TrinoSourceSpec>,
    /// Nessie settings (type `nessie`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nessie: Option<NessieSourceSpec>,
    /// File settings (type `file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSpec>,
    /// Generator settings (type `generator`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<GeneratorSpec>,
}
