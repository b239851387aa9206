//! Sinks: where a flow's messages, its routes' messages and its error records go.

use crate::connectors::{
    ClickhouseSinkSpec, FileSpec, KafkaSinkSpec, NessieSinkSpec, PostgresqlSinkSpec, TrinoSinkSpec,
};
use crate::tagged::tagged_connector;

/// When a sink's writes let the source move on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub enum AckPolicy {
    /// Once the write is durable.
    #[serde(rename = "afterWrite")]
    AfterWrite,
}

tagged_connector! {
    /// Sink connector types (for the main sink, the error sink and router sinks).
    kind SinkType;
    /// A sink: `type` plus the settings block named after it.
    spec SinkSpec;
    wire SinkSpecWire;
    @common {
        /// The Go original's error-sink acknowledgement policy. Only `afterWrite`
        /// exists here, for every sink: a source position moves only after the
        /// messages before it are durable in their sink or the error sink.
        ack_policy: AckPolicy,
    }
    /// Apache Kafka topic.
    Kafka = "kafka" (kafka: KafkaSinkSpec),
    /// PostgreSQL table.
    Postgresql = "postgresql" (postgresql: PostgresqlSinkSpec),
    /// ClickHouse table.
    Clickhouse = "clickhouse" (clickhouse: ClickhouseSinkSpec),
    /// Trino table.
    Trino = "trino" (trino: TrinoSinkSpec),
    /// Iceberg table through a Nessie catalog.
    Nessie = "nessie" (nessie: NessieSinkSpec),
    /// JSON-lines file, appended (local runs).
    File = "file" (file: FileSpec),
    /// JSON lines on standard output (local runs).
    Stdout = "stdout",
}
