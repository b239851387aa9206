//! JSON-lines files: one message per line.

use async_trait::async_trait;
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};

use super::{AckToken, ConnectorError, Rejected, Sink, Source, SourceBatch};
use crate::wasm::Message;

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
        let file = File::open(path)
            .await
            .map_err(|source| ConnectorError::Io {
                connector: name.clone(),
                source,
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

/// Reads up to `max` non-blank lines from `reader` as messages.
pub(super) async fn read_lines<T: tokio::io::AsyncRead + Unpin>(
    reader: &mut BufReader<T>,
    line: &mut Vec<u8>,
    max: usize,
    fill: Fill,
    name: &str,
) -> Result<Option<SourceBatch>, ConnectorError> {
    let mut messages = Vec::with_capacity(max.min(1024));
    while messages.len() < max {
        if fill == Fill::Buffered && !messages.is_empty() && !reader.buffer().contains(&b'\n') {
            break;
        }
        line.clear();
        let read = reader
            .read_until(b'\n', line)
            .await
            .map_err(|source| ConnectorError::Io {
                connector: name.to_owned(),
                source,
            })?;
        if read == 0 {
            break;
        }
        let text = line.trim_ascii();
        if !text.is_empty() {
            messages.push(Message {
                payload: text.to_vec(),
                metadata: Vec::new(),
            });
        }
    }
    Ok((!messages.is_empty()).then(|| SourceBatch::unacked(messages)))
}

#[async_trait]
impl Source for FileSource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<SourceBatch>, ConnectorError> {
        read_lines(
            &mut self.reader,
            &mut self.line,
            max,
            Fill::Full,
            &self.name,
        )
        .await
    }

    async fn commit(&mut self, _token: AckToken) -> Result<(), ConnectorError> {
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
            .map_err(|source| ConnectorError::Io {
                connector: name.clone(),
                source,
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
    let io = |source| ConnectorError::Io {
        connector: name.to_owned(),
        source,
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
            .map_err(|source| ConnectorError::Io {
                connector: self.name.clone(),
                source,
            })?;
        Ok(Vec::new())
    }
}
