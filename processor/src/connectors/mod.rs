//! Sources and sinks.

mod file;
mod generator;
mod stdio;

use std::any::Any;

use async_trait::async_trait;
use dataflow_api::{SinkSpec, SinkType, SourceSpec, SourceType};

pub use file::{FileSink, FileSource};
pub use generator::GeneratorSource;
pub use stdio::{StdinSource, StdoutSink};

use crate::wasm::Message;

/// A connector failure.
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
    /// The spec names a connector this build cannot run.
    #[error("{path}: the {kind} connector is not available in this build yet")]
    Unsupported {
        /// Spec path of the connector's `type`.
        path: String,
        /// Connector type.
        kind: &'static str,
    },
    /// The spec lacks the connector's settings block (validation prevents this).
    #[error("{path}: required")]
    MissingBlock {
        /// Spec path of the block.
        path: String,
    },
}

/// Opaque source position, handed back to [`Source::commit`] once every output of
/// the batch it came with has been written.
pub struct AckToken(pub Box<dyn Any + Send>);

/// A batch read from a source.
pub struct SourceBatch {
    /// The messages.
    pub messages: Vec<Message>,
    /// Position to commit after the batch is fully written; `None` for sources
    /// without positions (files, stdin, generator).
    pub ack: Option<AckToken>,
}

/// Where messages come from.
#[async_trait]
pub trait Source: Send {
    /// Reads up to `max` messages, waiting for at least one. `None` once the source
    /// is exhausted (end of file, generator count reached).
    async fn next_batch(&mut self, max: usize) -> Result<Option<SourceBatch>, ConnectorError>;

    /// Commits a position: everything read up to it has been written somewhere.
    async fn commit(&mut self, token: AckToken) -> Result<(), ConnectorError>;
}

/// Where messages go.
#[async_trait]
pub trait Sink: Send {
    /// Writes messages (possibly into a buffer).
    async fn write(&mut self, messages: &[Message]) -> Result<(), ConnectorError>;

    /// Makes everything written so far durable; called before acknowledging.
    async fn flush(&mut self) -> Result<(), ConnectorError>;
}

/// Opens the source described by `spec` (at spec path `path`).
pub async fn open_source(path: &str, spec: &SourceSpec) -> Result<Box<dyn Source>, ConnectorError> {
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
        other => {
            return Err(ConnectorError::Unsupported {
                path: format!("{path}.type"),
                kind: other.as_str(),
            });
        }
    })
}

/// Opens the sink described by `spec` (at spec path `path`).
pub async fn open_sink(path: &str, spec: &SinkSpec) -> Result<Box<dyn Sink>, ConnectorError> {
    Ok(match spec.kind {
        SinkType::File => {
            let file = spec
                .file
                .as_ref()
                .ok_or_else(|| ConnectorError::MissingBlock {
                    path: format!("{path}.file"),
                })?;
            Box::new(FileSink::open(&file.path).await?)
        }
        SinkType::Stdout => Box::new(StdoutSink::default()),
        other => {
            return Err(ConnectorError::Unsupported {
                path: format!("{path}.type"),
                kind: other.as_str(),
            });
        }
    })
}
