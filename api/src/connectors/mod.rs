//! Connector configurations. Field names and defaults follow the Go original's
//! documentation; every `*SecretRef` field it lists is here.

/// Default poll interval of SQL sources, seconds.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 5;
/// Default poll interval of the Nessie source, seconds.
pub const DEFAULT_NESSIE_POLL_INTERVAL_SECS: u64 = 10;
/// Default batch flush interval of batching sinks, seconds.
pub const DEFAULT_FLUSH_INTERVAL_SECS: u64 = 10;

mod cdc;
mod conflict_key;
mod kafka;
mod local;
mod nessie;
mod sql;
mod trino;

pub use cdc::{
    CdcSnapshotMode, DEFAULT_CDC_HEARTBEAT_SECS, DEFAULT_CDC_POLL_INTERVAL_SECS,
    PostgresqlCdcSourceSpec, default_slot_name, is_cdc_name,
};
pub use conflict_key::ConflictKey;
pub use kafka::{
    BasicAuth, KafkaSasl, KafkaSecurityProtocol, KafkaSinkSpec, KafkaSourceSpec, KafkaTls,
    SchemaRegistry, default_consumer_group,
};
pub use local::{FileSpec, GENERATOR_TEMPLATES, GeneratorSpec};
pub use nessie::{NessieBasicAuth, NessieS3, NessieSinkSpec, NessieSourceSpec};
pub use sql::{ClickhouseSinkSpec, ClickhouseSourceSpec, PostgresqlSinkSpec, PostgresqlSourceSpec};
pub use trino::{Keycloak, TrinoSinkSpec, TrinoSourceSpec};
