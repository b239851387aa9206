//! Sources: where a flow's messages come from.

use crate::connectors::{
    ClickhouseSourceSpec, FileSpec, GeneratorSpec, KafkaSourceSpec, NessieSourceSpec,
    PostgresqlCdcSourceSpec, PostgresqlSourceSpec, TrinoSourceSpec,
};
use crate::tagged::tagged_connector;

tagged_connector! {
    /// Source connector types.
    kind SourceType;
    /// A source: `type` plus the settings block named after it.
    spec SourceSpec;
    wire SourceSpecWire;
    /// Apache Kafka topic.
    Kafka = "kafka" (kafka: KafkaSourceSpec),
    /// PostgreSQL table or query.
    Postgresql = "postgresql" (postgresql: PostgresqlSourceSpec),
    /// PostgreSQL row changes over logical replication.
    PostgresqlCdc = "postgresql-cdc" (postgresql_cdc: PostgresqlCdcSourceSpec),
    /// ClickHouse table or query.
    Clickhouse = "clickhouse" (clickhouse: ClickhouseSourceSpec),
    /// Trino table or query.
    Trino = "trino" (trino: TrinoSourceSpec),
    /// Iceberg table through a Nessie catalog.
    Nessie = "nessie" (nessie: NessieSourceSpec),
    /// JSON-lines file (local runs).
    File = "file" (file: FileSpec),
    /// JSON lines on standard input (local runs).
    Stdin = "stdin",
    /// Synthetic messages.
    Generator = "generator" (generator: GeneratorSpec),
}
