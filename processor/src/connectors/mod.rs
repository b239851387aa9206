//! Sources and sinks.
//!
//! A [`Source`] hands out batches with an [`AckToken`] that is committed once every
//! output of the batch is durable. A [`Sink`] accepts messages, may buffer them
//! (`batchSize`, `batchFlushIntervalSeconds`), and reports the messages its
//! destination refused so the pipeline can route them to the error sink.

mod backoff;
mod batching;
pub mod clickhouse;
mod file;
mod generator;
pub mod kafka;
pub mod nessie;
mod polling;
pub mod postgres;
mod retry;
mod settings;
mod stdio;
pub mod trino;

use std::any::Any;
use std::time::Instant;

use async_trait::async_trait;
use dataflow_api::{SinkSpec, SinkType, SourceSpec, SourceType};

pub use backoff::Backoff;
pub use file::{FileSink, FileSource};
pub use generator::GeneratorSource;
pub use stdio::{StdinSource, StdoutSink};

use crate::error_type::ErrorType;
use crate::wasm::Message;

/// A connector failure that stops the flow.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// An I/O error on a local file or stream.
    #[error("{connector}: {source}")]
    Io {
        /// Which connector (`file sink /tmp/out.jsonl`).
        connector: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The spec lacks the connector's settings block (validation prevents this).
    #[error("{path}: required")]
    MissingBlock {
        /// Spec path of the block.
        path: String,
    },
    /// A setting is missing or unusable.
    #[error("{path}: {reason}")]
    Config {
        /// Spec path of the setting.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The destination or origin failed in a way retrying cannot fix.
    #[error("{connector}: {reason}")]
    Failed {
        /// Which connector (`postgresql sink public.orders`).
        connector: String,
        /// Classified type.
        error_type: ErrorType,
        /// What happened.
        reason: String,
    },
}

impl ConnectorError {
    /// The classified type, for metrics.
    pub fn error_type(&self) -> ErrorType {
        match self {
            ConnectorError::Io { .. } => ErrorType::ConnectionError,
            ConnectorError::MissingBlock { .. } | ConnectorError::Config { .. } => {
                ErrorType::InvalidData
            }
            ConnectorError::Failed { error_type, .. } => *error_type,
        }
    }
}

/// Opaque source position, handed back to [`Source::commit`] once every output of
/// the batch it came with has been written.
pub struct AckToken(pub Box<dyn Any + Send>);

/// A message that could not be read or written, and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// The message (for a read failure: its raw bytes and metadata).
    pub message: Message,
    /// Classified type.
    pub error_type: ErrorType,
    /// Readable reason.
    pub reason: String,
}

/// A batch read from a source.
pub struct SourceBatch {
    /// The messages.
    pub messages: Vec<Message>,
    /// Messages the source read but could not decode (they go to the error sink).
    pub rejected: Vec<Rejected>,
    /// Position to commit after the batch is fully written; `None` for sources
    /// without positions (files, stdin, generator).
    pub ack: Option<AckToken>,
}

impl SourceBatch {
    /// A batch of decoded messages without a position.
    pub fn unacked(messages: Vec<Message>) -> Self {
        Self {
            messages,
            rejected: Vec::new(),
            ack: None,
        }
    }
}

/// Where messages come from.
#[async_trait]
pub trait Source: Send {
    /// Reads up to `max` messages, waiting for at least one. `None` once the source
    /// is exhausted (end of file, generator count reached).
    async fn next_batch(&mut self, max: usize) -> Result<Option<SourceBatch>, ConnectorError>;

    /// Commits a position: everything read up to it has been written somewhere.
    async fn commit(&mut self, token: AckToken) -> Result<(), ConnectorError>;

    /// Makes the last commit durable before the process exits.
    async fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// Where messages go.
#[async_trait]
pub trait Sink: Send {
    /// Accepts messages. A batching sink buffers them and writes each full batch;
    /// other sinks write before returning. Returns the messages the destination
    /// refused (bad data, constraint violations).
    async fn write(&mut self, messages: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError>;

    /// Writes everything buffered; returns the messages the destination refused.
    async fn flush(&mut self) -> Result<Vec<Rejected>, ConnectorError>;

    /// Messages accepted by [`Sink::write`] but not yet durable.
    fn buffered(&self) -> usize {
        0
    }

    /// When the oldest buffered message is due to be flushed by the timer.
    fn flush_deadline(&self) -> Option<Instant> {
        None
    }

    /// Collects background writes that have finished (without waiting for others
    /// or starting new ones); returns what they refused.
    async fn settle(&mut self) -> Result<Vec<Rejected>, ConnectorError> {
        Ok(Vec::new())
    }

    /// Whether writes are running in the background; the pipeline then comes back
    /// shortly to [`Sink::settle`] them, so acknowledgements are not held back.
    fn in_flight(&self) -> bool {
        false
    }
}

/// Opens the source described by `spec` (at spec path `path`) for the DataFlow
/// `flow` (`namespace/name`).
pub async fn open_source(
    path: &str,
    spec: &SourceSpec,
    flow: &str,
) -> Result<Box<dyn Source>, ConnectorError> {
    let missing = |block: &str| ConnectorError::MissingBlock {
        path: format!("{path}.{block}"),
    };
    Ok(match spec.kind {
        SourceType::File => {
            let file = spec.file.as_ref().ok_or_else(|| missing("file"))?;
            Box::new(FileSource::open(&file.path).await?)
        }
        SourceType::Stdin => Box::new(StdinSource::default()),
        SourceType::Generator => {
            let generator = spec.generator.clone().unwrap_or_default();
            Box::new(GeneratorSource::new(&generator))
        }
        SourceType::Kafka => {
            let kafka = spec.kafka.as_ref().ok_or_else(|| missing("kafka"))?;
            Box::new(kafka::KafkaSource::open(&format!("{path}.kafka"), kafka).await?)
        }
        SourceType::Postgresql => {
            let pg = spec
                .postgresql
                .as_ref()
                .ok_or_else(|| missing("postgresql"))?;
            Box::new(postgres::PostgresSource::open(&format!("{path}.postgresql"), pg, flow).await?)
        }
        SourceType::Clickhouse => {
            let ch = spec
                .clickhouse
                .as_ref()
                .ok_or_else(|| missing("clickhouse"))?;
            Box::new(
                clickhouse::ClickhouseSource::open(&format!("{path}.clickhouse"), ch, flow).await?,
            )
        }
        SourceType::Trino => {
            let trino = spec.trino.as_ref().ok_or_else(|| missing("trino"))?;
            Box::new(trino::TrinoSource::open(&format!("{path}.trino"), trino).await?)
        }
        SourceType::Nessie => {
            let nessie = spec.nessie.as_ref().ok_or_else(|| missing("nessie"))?;
            Box::new(nessie::NessieSource::open(&format!("{path}.nessie"), nessie).await?)
        }
    })
}

/// Opens the sink described by `spec` (at spec path `path`).
pub async fn open_sink(path: &str, spec: &SinkSpec) -> Result<Box<dyn Sink>, ConnectorError> {
    let missing = |block: &str| ConnectorError::MissingBlock {
        path: format!("{path}.{block}"),
    };
    Ok(match spec.kind {
        SinkType::File => {
            let file = spec.file.as_ref().ok_or_else(|| missing("file"))?;
            Box::new(FileSink::open(&file.path).await?)
        }
        SinkType::Stdout => Box::new(StdoutSink::default()),
        SinkType::Kafka => {
            let kafka = spec.kafka.as_ref().ok_or_else(|| missing("kafka"))?;
            Box::new(kafka::KafkaSink::open(&format!("{path}.kafka"), kafka)?)
        }
        SinkType::Postgresql => {
            let pg = spec
                .postgresql
                .as_ref()
                .ok_or_else(|| missing("postgresql"))?;
            postgres::open_sink(&format!("{path}.postgresql"), pg).await?
        }
        SinkType::Clickhouse => {
            let ch = spec
                .clickhouse
                .as_ref()
                .ok_or_else(|| missing("clickhouse"))?;
            clickhouse::open_sink(&format!("{path}.clickhouse"), ch).await?
        }
        SinkType::Trino => {
            let trino = spec.trino.as_ref().ok_or_else(|| missing("trino"))?;
            trino::open_sink(&format!("{path}.trino"), trino).await?
        }
        SinkType::Nessie => {
            let nessie = spec.nessie.as_ref().ok_or_else(|| missing("nessie"))?;
            nessie::open_sink(&format!("{path}.nessie"), nessie).await?
        }
    })
}
