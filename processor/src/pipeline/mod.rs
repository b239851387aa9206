//! The pipeline: `source -> bounded queue -> transform stage -> writers -> acks`.
//!
//! Built from injected parts (a source, the outlets, a batch transform and an
//! observer), so its delivery rules are tested with in-memory connectors. The
//! source and the writers are async tasks; the transform stage runs on its own
//! thread. Batches move through bounded channels, so a slow sink slows the source
//! instead of filling memory. A source position is committed only after every
//! output of its batch, and every error record, is durable (see [`ledger`]).

mod dropped;
mod ledger;
mod observer;
mod read;
mod transform;
mod watchers;
mod writers;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataflow_api::ErrorType;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use observer::{Observer, Observers, SinkSlot, Unobserved};
pub use transform::BatchTransform;
pub(crate) use transform::route_of;
pub use watchers::Watchers;
pub use writers::{NamedSink, OpenRoute, Outlets, RouteSink};

use crate::connectors::{Ack, BatchLimit, ConnectorError, Source};
use crate::progress::Progress;
use transform::{Processed, Queued, StageOutput};
use writers::Writers;

/// Tuning of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Most messages per source batch.
    pub batch_size: usize,
    /// Most payload bytes per source batch (it holds at least one message).
    pub batch_bytes: usize,
    /// Batches that may wait in each queue.
    pub queue_depth: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            batch_bytes: 8 * 1024 * 1024,
            queue_depth: 4,
        }
    }
}

impl PipelineConfig {
    /// Batches of `batch_size` messages (`batch_bytes` bytes); the queue depth
    /// follows the spec's `channelBufferSize` (messages) when it has one.
    pub fn for_spec(
        spec: &dataflow_api::DataFlowSpec,
        batch_size: usize,
        batch_bytes: usize,
    ) -> Self {
        let default = Self::default();
        let queue_depth = spec
            .channel_buffer_size
            .map_or(default.queue_depth, |messages| {
                usize::try_from(messages)
                    .unwrap_or(usize::MAX)
                    .div_ceil(batch_size.max(1))
                    .max(1)
            });
        Self {
            batch_size,
            batch_bytes,
            queue_depth,
        }
    }
}

/// What a run did, printed as the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages read from the source.
    pub processed: u64,
    /// Messages written to the main and route sinks.
    pub written: u64,
    /// Input messages dropped by filters.
    pub filtered: u64,
    /// Failed messages (sent to the error sink, or counted and logged without one).
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "processed={} written={} filtered={} errors={} elapsed_ms={}",
            self.processed,
            self.written,
            self.filtered,
            self.errors,
            self.elapsed.as_millis()
        )
    }
}

/// A fatal pipeline failure.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A connector failed.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The error sink refused error records; their messages are not acknowledged.
    #[error(
        "the error sink refused {count} error record(s) ({error_type}: {reason}); their messages stay unacknowledged and are read again on the next start"
    )]
    ErrorSinkRefused {
        /// How many records it refused.
        count: usize,
        /// The first refusal's type.
        error_type: ErrorType,
        /// The first refusal's reason.
        reason: String,
    },
    /// The transform thread stopped unexpectedly.
    #[error("the transform stage stopped unexpectedly")]
    TransformStage,
}

/// Everything a pipeline is made of.
pub struct Parts {
    /// Where messages come from.
    pub source: Box<dyn Source>,
    /// Where they go.
    pub outlets: Outlets,
    /// What happens to them in between.
    pub transform: Box<dyn BatchTransform>,
    /// Who is told about it.
    pub observer: Arc<dyn Observer>,
    /// Live totals for the status reporter and metrics.
    pub progress: Arc<Progress>,
    /// The tap and the recent failures, when the flow serves them.
    pub watchers: Option<Watchers>,
}

/// Runs the flow until the source is exhausted or `shutdown` is cancelled; then
/// drains what is in flight, flushes every sink and returns the summary. A writer
/// failure stops reading too, so a fatal sink error ends the run instead of
/// leaving the source waiting.
pub async fn run(
    parts: Parts,
    shutdown: CancellationToken,
    config: PipelineConfig,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let observer = parts.observer.clone();
    observer.started(config.queue_depth.max(1) * config.batch_size.max(1));
    let result = run_parts(parts, shutdown, &config).await;
    observer.stopped();
    let mut summary = result?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

async fn run_parts(
    parts: Parts,
    shutdown: CancellationToken,
    config: &PipelineConfig,
) -> Result<Summary, PipelineError> {
    let Parts {
        mut source,
        outlets,
        mut transform,
        observer,
        progress,
        watchers,
    } = parts;
    let mut writers = Writers::new(
        outlets,
        progress.clone(),
        observer.clone(),
        watchers.clone(),
    );
    let stop_reading = shutdown.child_token();

    let (batch_tx, mut batch_rx) = mpsc::channel::<Queued>(config.queue_depth.max(1));
    let (out_tx, mut out_rx) = mpsc::channel::<Processed>(config.queue_depth.max(1));
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<Ack>();

    let limit = BatchLimit {
        messages: config.batch_size.max(1),
        bytes: config.batch_bytes.max(1),
    };
    let read_observer = observer.clone();
    let read_stop = stop_reading.clone();
    let reader = tokio::spawn(
        async move {
            let read = read::read_loop(
                &mut *source,
                limit,
                &batch_tx,
                &mut ack_rx,
                &read_stop,
                &*read_observer,
                &progress,
            )
            .await;
            drop(batch_tx);
            let drained = read::drain_commits(&mut *source, &mut ack_rx).await;
            read.and(drained)
        }
        .in_current_span(),
    );

    let stage = StageOutput {
        route_count: writers.route_count(),
        original_sink: writers.original_sink(),
        observer: observer.clone(),
        watchers,
    };
    let span = tracing::Span::current();
    let stage_thread = std::thread::Builder::new()
        .name("transform".into())
        .spawn(move || {
            let _span = span.entered();
            transform::run_stage(&mut *transform, &mut batch_rx, &out_tx, &stage);
        })
        .map_err(|_| PipelineError::TransformStage)?;
    let written = write_loop(&mut writers, &mut out_rx, &ack_tx).await;
    if written.is_err() {
        stop_reading.cancel();
    }
    drop(ack_tx);
    drop(out_rx);
    let joined = tokio::task::spawn_blocking(move || stage_thread.join()).await;
    let read = reader.await;
    written?;
    if !matches!(joined, Ok(Ok(()))) {
        return Err(PipelineError::TransformStage);
    }
    read.map_err(|_| PipelineError::TransformStage)??;
    Ok(writers.summary)
}

/// Takes transformed batches until the stage ends, flushing on timers and releasing
/// acks as batches become durable; then flushes everything.
async fn write_loop(
    writers: &mut Writers,
    out_rx: &mut mpsc::Receiver<Processed>,
    ack_tx: &mpsc::UnboundedSender<Ack>,
) -> Result<(), PipelineError> {
    let send = |acks: Vec<Ack>| {
        for ack in acks {
            // The reader stops listening only once the run is over.
            let _ = ack_tx.send(ack);
        }
    };
    loop {
        let deadline = writers.next_deadline();
        tokio::select! {
            processed = out_rx.recv() => match processed {
                Some(processed) => writers.accept(processed).await?,
                None => break,
            },
            () = sleep_until(deadline), if deadline.is_some() => writers.flush_due().await?,
        }
        send(writers.release_acks());
    }
    writers.flush_all().await?;
    send(writers.release_acks());
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}
