//! The batching half of a database sink, shared by every connector that writes
//! batches: messages collect until `batchSize` of them are waiting or the oldest
//! has waited `batchFlushIntervalSeconds`; then the batch goes to a
//! [`BatchWriter`]. One batch may be in flight while the next fills, so the
//! destination's work overlaps ours; batches still land one after another, in
//! order, and a message counts as written only when its batch has landed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::task::JoinHandle;

use crate::connectors::{ConnectorError, Rejected, Sink};
use dataflow_api::ErrorType;
use dataflow_core::Message;

/// Messages buffered in timer-only mode (`batchSize: 0`) before a flush is forced,
/// so memory stays bounded.
const TIMER_ONLY_CAP: usize = 50_000;

/// Batch size used when flushing in timer-only mode.
const TIMER_ONLY_CHUNK: usize = 10_000;

/// Writes one batch into the destination.
#[async_trait]
pub trait BatchWriter: Send + Sync + 'static {
    /// Which connector, for errors (`clickhouse sink default.orders`).
    fn name(&self) -> &str;

    /// Writes `batch` in order; returns the messages the destination refused.
    /// Transient failures are retried inside; an error stops the flow.
    async fn write_batch(&self, batch: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError>;
}

/// A [`Sink`] that batches for a [`BatchWriter`].
pub struct BatchingSink<W> {
    writer: Arc<W>,
    batch_size: usize,
    interval: Option<Duration>,
    buffer: Vec<Message>,
    oldest: Option<Instant>,
    in_flight: Option<InFlight>,
}

/// A batch being written in the background.
struct InFlight {
    rows: usize,
    task: JoinHandle<Result<Vec<Rejected>, ConnectorError>>,
}

impl<W: BatchWriter> BatchingSink<W> {
    /// Batches of `batch_size` (0: the timer alone flushes), flushed at the latest
    /// `interval_secs` after the oldest message arrived (0: size alone flushes).
    pub fn new(writer: W, batch_size: usize, interval_secs: u64) -> Self {
        Self {
            writer: Arc::new(writer),
            batch_size,
            interval: (interval_secs > 0).then(|| Duration::from_secs(interval_secs)),
            buffer: Vec::new(),
            oldest: None,
            in_flight: None,
        }
    }

    /// Waits for the batch in flight, if any.
    async fn settle_in_flight(&mut self) -> Result<Vec<Rejected>, ConnectorError> {
        match self.in_flight.take() {
            Some(in_flight) => in_flight.task.await.map_err(|e| ConnectorError::Failed {
                connector: self.writer.name().to_owned(),
                error_type: ErrorType::Failed,
                reason: format!("the batch writer stopped: {e}"),
            })?,
            None => Ok(Vec::new()),
        }
    }

    /// Starts writing `batch` once the previous batch is done; returns what the
    /// previous batch had refused.
    async fn launch(&mut self, batch: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError> {
        let rejected = self.settle_in_flight().await?;
        let writer = self.writer.clone();
        self.in_flight = Some(InFlight {
            rows: batch.len(),
            task: tokio::spawn(async move { writer.write_batch(batch).await }),
        });
        Ok(rejected)
    }
}

#[async_trait]
impl<W: BatchWriter> Sink for BatchingSink<W> {
    async fn write(&mut self, messages: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        if self.buffer.is_empty() {
            self.oldest = Some(Instant::now());
        }
        self.buffer.extend(messages);
        let mut rejected = Vec::new();
        if self.batch_size > 0 {
            while self.buffer.len() >= self.batch_size {
                let rest = self.buffer.split_off(self.batch_size);
                let chunk = std::mem::replace(&mut self.buffer, rest);
                rejected.extend(self.launch(chunk).await?);
            }
            if self.buffer.is_empty() {
                self.oldest = None;
            }
        } else if self.buffer.len() >= TIMER_ONLY_CAP {
            rejected.extend(self.flush().await?);
        }
        Ok(rejected)
    }

    async fn flush(&mut self) -> Result<Vec<Rejected>, ConnectorError> {
        let chunk = if self.batch_size > 0 {
            self.batch_size
        } else {
            TIMER_ONLY_CHUNK
        };
        let mut rejected = Vec::new();
        while !self.buffer.is_empty() {
            let rest = self.buffer.split_off(chunk.min(self.buffer.len()));
            let batch = std::mem::replace(&mut self.buffer, rest);
            rejected.extend(self.launch(batch).await?);
        }
        rejected.extend(self.settle_in_flight().await?);
        self.oldest = None;
        Ok(rejected)
    }

    fn buffered(&self) -> usize {
        self.buffer.len() + self.in_flight.as_ref().map_or(0, |f| f.rows)
    }

    fn flush_deadline(&self) -> Option<Instant> {
        Some(self.oldest? + self.interval?)
    }

    async fn settle(&mut self) -> Result<Vec<Rejected>, ConnectorError> {
        match &self.in_flight {
            Some(in_flight) if in_flight.task.is_finished() => self.settle_in_flight().await,
            _ => Ok(Vec::new()),
        }
    }

    fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }
}

/// Settles a batch the destination was asked to take whole. When it refused the
/// batch for its data, each message is written again on its own with `write_one`,
/// so only the messages refused again are rejected; a refused batch of one is
/// rejected as it is.
/// `write_one` takes the message and hands it back with the outcome.
pub async fn isolate_refused<F, Fut>(
    name: &str,
    whole: Result<(), (ErrorType, String)>,
    messages: Vec<Message>,
    mut write_one: F,
) -> Result<Vec<Rejected>, ConnectorError>
where
    F: FnMut(Message) -> Fut,
    Fut: Future<Output = Result<(Message, Result<(), (ErrorType, String)>), ConnectorError>>,
{
    let mut rejected = Vec::new();
    match whole {
        Ok(()) => return Ok(rejected),
        Err((_, reason)) if messages.len() > 1 => {
            tracing::debug!(connector = %name, %reason, rows = messages.len(), "batch refused; writing row by row");
        }
        Err((error_type, reason)) => {
            rejected.extend(messages.into_iter().map(|message| Rejected {
                message,
                error_type,
                reason: reason.clone(),
            }));
            return Ok(rejected);
        }
    }
    for message in messages {
        if let (message, Err((error_type, reason))) = write_one(message).await? {
            rejected.push(Rejected {
                message,
                error_type,
                reason,
            });
        }
    }
    Ok(rejected)
}
