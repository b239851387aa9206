use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::connectors::{
    ClickhouseSinkSpec, FileSpec, KafkaSinkSpec, NessieSinkSpec, PostgresqlSinkSpec, TrinoSinkSpec,
};

/// Sink connector types (for the main sink, the error sink and router sinks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SinkType {
    /// Apache Kafka topic.
    Kafka,
    /// PostgreSQL table.
    Postgresql,
    /// ClickHouse table.
    Clickhouse,
    /// Trino table.
    Trino,
    /// Iceberg table through a Nessie catalog.
    Nessie,
    /// JSON-lines file, appended (local runs).
    File,
    /// JSON lines on standard output (local runs).
    Stdout,
}

impl SinkType {
    /// The name used in specs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkType::Kafka => "kafka",
            SinkType::Postgresql => "postgresql",
            SinkType::Clickhouse => "clickhouse",
            SinkType::Trino => "trino",
            SinkType::Nessie => "nessie",
            SinkType::File => "file",
            SinkType::Stdout => "stdout",
        }
    }
}

/// A sink: `type` plus the block named after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SinkSpec {
    /// Connector type.
    #[serde(rename = "type")]
    pub kind: SinkType,
    /// Kafka settings (type `kafka`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSinkSpec>,
    /// PostgreSQL settings (type `postgresql`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<PostgresqlSinkSpec>,
    /// ClickHouse settings (type `clickhouse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clickhouse: Option<ClickhouseSinkSpec>,
    /// Trino settings (type `trino`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trino: Option<TrinoSinkSpec>,
    /// Nessie settings (type `nessie`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nessie: Option<NessieSinkSpec>,
    /// File settings (type `file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSpec>,
}
