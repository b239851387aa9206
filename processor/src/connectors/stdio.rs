//! Standard input and output as JSON-lines streams.

use async_trait::async_trait;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter, Stdin, Stdout};

use super::file::{Fill, read_lines, write_lines};
use super::{Ack, BatchLimit, ConnectorError, Rejected, Sink, Source, SourceBatch};
use dataflow_core::Message;

/// Reads JSON lines from standard input until it closes.
pub struct StdinSource {
    reader: BufReader<Stdin>,
    line: Vec<u8>,
}

impl Default for StdinSource {
    /// Standard input of this process.
    fn default() -> Self {
        Self {
            reader: BufReader::new(tokio::io::stdin()),
            line: Vec::new(),
        }
    }
}

#[async_trait]
impl Source for StdinSource {
    async fn next_batch(
        &mut self,
        limit: BatchLimit,
    ) -> Result<Option<SourceBatch>, ConnectorError> {
        // Interactive input flows as it arrives: a batch is what is already
        // buffered (at least one line), not the limit's count.
        read_lines(
            &mut self.reader,
            &mut self.line,
            limit,
            Fill::Buffered,
            "stdin source",
        )
        .await
    }

    async fn commit(&mut self, _ack: Ack) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// Writes messages to standard output, one per line.
pub struct StdoutSink {
    writer: BufWriter<Stdout>,
}

impl Default for StdoutSink {
    /// Standard output of this process.
    fn default() -> Self {
        Self {
            writer: BufWriter::new(tokio::io::stdout()),
        }
    }
}

#[async_trait]
impl Sink for StdoutSink {
    async fn write(&mut self, messages: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError> {
        write_lines(&mut self.writer, &messages, "stdout sink").await?;
        self.flush().await
    }

    async fn flush(&mut self) -> Result<Vec<Rejected>, ConnectorError> {
        self.writer
            .flush()
            .await
            .map_err(|cause| ConnectorError::Io {
                connector: "stdout sink".into(),
                cause,
            })?;
        Ok(Vec::new())
    }
}
