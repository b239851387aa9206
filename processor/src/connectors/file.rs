//! JSON-lines files: one message per line.

use async_trait::async_trait;
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};

use super::limits::oversized;
use super::{
    Ack, BatchLimit, ConnectorError, MAX_MESSAGE_BYTES, Rejected, Sink, Source, SourceBatch,
};
use dataflow_core::Message;

const BUFFER: usize = 1 << 20;

/// Reads a JSON-lines file from the start; blank lines are skipped.
pub struct FileSource {
    name: String,
    reader: BufReader<File>,
    line: Vec<u8>,
}

impl FileSource {
    /// Opens `path` for reading.
    pub async fn open(path: &str) -> Result<Self, ConnectorError> {
        let name = format!("file source {path}");
        let file = File::open(path).await.map_err(|cause| ConnectorError::Io {
            connector: name.clone(),
            cause,
        })?;
        Ok(Self {
            name,
            reader: BufReader::with_capacity(BUFFER, file),
            line: Vec::with_capacity(4096),
        })
    }
}

/// How [`read_lines`] decides a batch is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fill {
    /// Wait for `max` lines or the end of the input (files).
    Full,
    /// Stop at the first line not yet in the buffer, so interactive input flows
    /// as it arrives (standard input).
    Buffered,
}

/// Reads non-blank lines from `reader` as messages, within `limit`. A line longer
/// than [`MAX_MESSAGE_BYTES`] is not held in memory: its start goes to the error
/// sink and the rest is skipped.
pub(super) async fn read_lines<T: tokio::io::AsyncRead + Unpin>(
    reader: &mut BufReader<T>,
    line: &mut Vec<u8>,
    limit: BatchLimit,
    fill: Fill,
    name: &str,
) -> Result<Option<SourceBatch>, ConnectorError> {
    let mut batch = SourceBatch::unacked(Vec::with_capacity(limit.messages.clamp(1, 1024)));
    let mut bytes = 0;
    let io = |cause| ConnectorError::Io {
        connector: name.to_owned(),
        cause,
    };
    while !limit.reached(batch.messages.len() + batch.rejected.len(), bytes) {
        let started = !batch.messages.is_empty() || !batch.rejected.is_empty();
        if fill == Fill::Buffered && started && !reader.buffer().contains(&b'\n') {
            break;
        }
        line.clear();
        let mut size = 0;
        let complete = loop {
            let available = reader.fill_buf().await.map_err(io)?;
            if available.is_empty() {
                break size > 0;
            }
            let (chunk, newline) = match available.iter().position(|&b| b == b'\n') {
                Some(at) => (&available[..at], true),
                None => (available, false),
            };
            if line.len() + chunk.len() <= MAX_MESSAGE_BYTES {
                line.extend_from_slice(chunk);
            } else if line.len() < MAX_MESSAGE_BYTES {
                let room = MAX_MESSAGE_BYTES - line.len();
                line.extend_from_slice(&chunk[..room]);
            }
            size += chunk.len();
            let used = chunk.len() + usize::from(newline);
            reader.consume(used);
            if newline {
                break true;
            }
        };
        if size == 0 && !complete {
            break;
        }
        let text = line.trim_ascii();
        if size > MAX_MESSAGE_BYTES {
            batch
                .rejected
                .push(oversized(text, size, Vec::new(), "a line"));
        } else if !text.is_empty() {
            bytes += text.len();
            batch.messages.push(Message {
                payload: text.to_vec(),
                metadata: Vec::new(),
            });
        }
        if !complete {
            break;
        }
    }
    // Nothing at all means the input has ended.
    let empty = batch.messages.is_empty() && batch.rejected.is_empty();
    Ok((!empty).then_some(batch))
}

#[async_trait]
impl Source for FileSource {
    async fn next_batch(
        &mut self,
        limit: BatchLimit,
    ) -> Result<Option<SourceBatch>, ConnectorError> {
        read_lines(
            &mut self.reader,
            &mut self.line,
            limit,
            Fill::Full,
            &self.name,
        )
        .await
    }

    async fn commit(&mut self, _ack: Ack) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// Appends messages to a file, one per line.
pub struct FileSink {
    name: String,
    writer: BufWriter<File>,
}

impl FileSink {
    /// Opens (creating if needed) `path` for appending.
    pub async fn open(path: &str) -> Result<Self, ConnectorError> {
        let name = format!("file sink {path}");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(|cause| ConnectorError::Io {
                connector: name.clone(),
                cause,
            })?;
        Ok(Self {
            name,
            writer: BufWriter::with_capacity(BUFFER, file),
        })
    }
}

/// Writes each payload followed by a newline.
pub(super) async fn write_lines<W: AsyncWriteExt + Unpin>(
    writer: &mut W,
    messages: &[Message],
    name: &str,
) -> Result<(), ConnectorError> {
    let io = |cause| ConnectorError::Io {
        connector: name.to_owned(),
        cause,
    };
    for message in messages {
        writer.write_all(&message.payload).await.map_err(io)?;
        writer.write_all(b"\n").await.map_err(io)?;
    }
    Ok(())
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&mut self, messages: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError> {
        write_lines(&mut self.writer, &messages, &self.name).await?;
        self.flush().await
    }

    async fn flush(&mut self) -> Result<Vec<Rejected>, ConnectorError> {
        self.writer
            .flush()
            .await
            .map_err(|cause| ConnectorError::Io {
                connector: self.name.clone(),
                cause,
            })?;
        Ok(Vec::new())
    }
}
