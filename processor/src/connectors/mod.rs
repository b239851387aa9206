//! Sources and sinks.
//!
//! A [`Source`] hands out batches with an [`Ack`] that is committed once every
//! output of the batch is durable. A [`Sink`] accepts messages, may buffer them
//! (`batchSize`, `batchFlushIntervalSeconds`), and reports the messages its
//! destination refused so the pipeline can route them to the error sink.

mod ack;
mod batching;
pub mod clickhouse;
mod file;
mod generator;
mod health;
pub mod kafka;
mod limits;
pub mod nessie;
mod open;
mod polling;
pub mod postgres;
mod raw_envelope;
pub mod retry;
mod settings;
mod stdio;
pub mod trino;

use std::time::Instant;

use async_trait::async_trait;
use dataflow_api::ErrorType;
use dataflow_core::Message;

pub use ack::{Ack, PositionLog, UnknownAck};
pub use file::{FileSink, FileSource};
pub use generator::GeneratorSource;
pub use health::{FlowHealth, Health};
pub use limits::{BatchLimit, MAX_MESSAGE_BYTES};
pub use open::{OpenedSource, SourceOptions, open_sink, open_source};
pub use retry::{Backoff, Retry};
pub use stdio::{StdinSource, StdoutSink};

/// A connector failure that stops the flow.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// An I/O error on a local file or stream.
    #[error("{connector}: {cause}")]
    Io {
        /// Which connector (`file sink /tmp/out.jsonl`).
        connector: String,
        /// Cause (shown in the message, so not an error `source`).
        cause: std::io::Error,
    },
    /// A setting is missing or unusable.
    #[error("{path}: {reason}")]
    Config {
        /// Spec path of the setting.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A source handed back an ack it does not hold: a bug, reported rather than
    /// committing nothing silently.
    #[error("{connector}: {cause}")]
    Ack {
        /// Which connector.
        connector: String,
        /// The ack (shown in the message, so not an error `source`).
        cause: UnknownAck,
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
            ConnectorError::Config { .. } => ErrorType::InvalidData,
            ConnectorError::Ack { .. } => ErrorType::Failed,
            ConnectorError::Failed { error_type, .. } => *error_type,
        }
    }
}

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
    /// Acknowledged once the batch is fully written; `None` for sources without
    /// positions (files, stdin, generator).
    pub ack: Option<Ack>,
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
    /// Waits until input may be available (a message arrived, a poll is due).
    /// Must be cancel-safe: the pipeline cancels it to commit acks while the
    /// source is idle. By default input is always available.
    async fn wait_for_input(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Reads a batch within `limit`. An empty batch (no messages, no ack) means
    /// nothing was found this time; the pipeline waits for input again. `None`
    /// once the source is exhausted (end of file, generator count reached).
    async fn next_batch(
        &mut self,
        limit: BatchLimit,
    ) -> Result<Option<SourceBatch>, ConnectorError>;

    /// Commits a position: everything read up to `ack`'s batch has been written
    /// somewhere. Acks come back in the order they were handed out.
    async fn commit(&mut self, ack: Ack) -> Result<(), ConnectorError>;

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
