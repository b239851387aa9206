//! The pipeline: `source -> bounded queue -> transform chain -> writers -> acks`.
//!
//! The source and the writers are async tasks; the transform chain runs on its own
//! thread (Wasm calls are synchronous and CPU-bound). Batches move through bounded
//! channels, so a slow sink slows the source instead of filling memory. A source
//! position is committed only after every output of its batch, and every error
//! record, has been written and flushed.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataflow_api::{DataFlowSpec, SinkSpec, TransformType};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::chain::TransformChain;
use crate::connectors::{
    AckToken, ConnectorError, Rejected, Sink, Source, SourceBatch, open_sink, open_source,
};
use crate::error_record::ErrorRecord;
use crate::progress::Progress;
use crate::wasm::Message;

/// Tuning of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Messages per source batch (and per Wasm call).
    pub batch_size: usize,
    /// Batches that may wait in each queue.
    pub queue_depth: usize,
    /// Where to publish live totals (for the status reporter and metrics).
    pub progress: Option<Arc<Progress>>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            queue_depth: 4,
            progress: None,
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
    /// The transform thread stopped unexpectedly.
    #[error("the transform stage stopped unexpectedly")]
    TransformStage,
}

/// A transformed batch, sorted by destination.
struct Processed {
    main: Vec<Message>,
    routes: Vec<Vec<Message>>,
    errors: Vec<Message>,
    read: u64,
    filtered: u64,
    ack: Option<AckToken>,
}

/// Runs the flow until the source is exhausted or `shutdown` is cancelled; then
/// drains what is in flight, flushes every sink and returns the summary.
///
/// `flow` names the DataFlow (`namespace/name`); sources that keep their position
/// in the origin system key it by this name.
pub async fn run(
    spec: &DataFlowSpec,
    flow: &str,
    chain: TransformChain,
    shutdown: CancellationToken,
    config: PipelineConfig,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let mut source = open_source("spec.source", &spec.source, flow).await?;
    let mut writers = Writers::open(spec, config.progress.clone()).await?;

    let (batch_tx, mut batch_rx) = mpsc::channel::<SourceBatch>(config.queue_depth);
    let (out_tx, mut out_rx) = mpsc::channel::<Processed>(config.queue_depth);
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<AckToken>();

    let batch_size = config.batch_size.max(1);
    let reader = tokio::spawn(async move {
        let result = read_loop(&mut *source, batch_size, &batch_tx, &mut ack_rx, &shutdown).await;
        drop(batch_tx);
        // Commit whatever the writers finish, then make the last commit durable.
        let drained = async {
            while let Some(token) = ack_rx.recv().await {
                source.commit(token).await?;
            }
            source.close().await
        }
        .await;
        result.and(drained)
    });

    let original_sink = spec.sink.kind.as_str();
    let route_count = writers.routes.len();
    let transformer = std::thread::Builder::new()
        .name("transform".into())
        .spawn(move || {
            let mut chain = chain;
            while let Some(batch) = batch_rx.blocking_recv() {
                let processed = transform_batch(&mut chain, batch, route_count, original_sink);
                if out_tx.blocking_send(processed).is_err() {
                    break;
                }
            }
        })
        .map_err(|_| PipelineError::TransformStage)?;

    let written = async {
        loop {
            let deadline = writers.next_deadline();
            tokio::select! {
                processed = out_rx.recv() => match processed {
                    Some(processed) => writers.accept(processed).await?,
                    None => break,
                },
                () = sleep_until(deadline), if deadline.is_some() => writers.flush_due().await?,
            }
            writers.release_acks(&ack_tx);
        }
        writers.flush_all().await?;
        writers.release_acks(&ack_tx);
        Ok::<(), PipelineError>(())
    }
    .await;
    drop(ack_tx);
    drop(out_rx);
    let transformed = transformer.join();
    let read = reader.await;
    written?;
    if transformed.is_err() {
        return Err(PipelineError::TransformStage);
    }
    read.map_err(|_| PipelineError::TransformStage)??;
    let mut summary = writers.summary;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Reads batches until the source ends or shutdown, committing positions as the
/// writers release them.
async fn read_loop(
    source: &mut dyn Source,
    batch_size: usize,
    batch_tx: &mpsc::Sender<SourceBatch>,
    ack_rx: &mut mpsc::UnboundedReceiver<AckToken>,
    shutdown: &CancellationToken,
) -> Result<(), ConnectorError> {
    loop {
        while let Ok(token) = ack_rx.try_recv() {
            source.commit(token).await?;
        }
        let batch = tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(()),
            batch = source.next_batch(batch_size) => batch?,
        };
        let Some(batch) = batch else { return Ok(()) };
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                // Not yet handed on: the batch is dropped uncommitted and read again
                // on the next start.
                return Ok(());
            }
            sent = batch_tx.send(batch) => if sent.is_err() { return Ok(()) },
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// How often background sink writes are checked for completion.
const SETTLE_INTERVAL: Duration = Duration::from_millis(10);

/// Slot of the main sink in [`Writers::outlets`].
const MAIN: usize = 0;
/// Slot of the error sink.
const ERRORS: usize = 1;
/// First route slot.
const ROUTES: usize = 2;

/// One sink and how many messages it has been handed.
struct Outlet {
    sink: Box<dyn Sink>,
    kind: &'static str,
    handed: u64,
}

impl Outlet {
    /// Messages handed over that are now durable.
    fn durable(&self) -> u64 {
        self.handed - self.sink.buffered() as u64
    }
}

/// The writing side: main, error and route sinks, and the acknowledgements that
/// wait until everything their batch produced is durable.
struct Writers {
    /// `[main, errors, route 0, route 1, ...]`; routes open on first use.
    outlets: Vec<Option<Outlet>>,
    routes: Vec<SinkSpec>,
    original_sink: &'static str,
    /// Acks in batch order, each with the handed count every outlet must reach.
    pending: VecDeque<(AckToken, Vec<u64>)>,
    summary: Summary,
    unreported_errors: u64,
    progress: Option<Arc<Progress>>,
}

impl Writers {
    async fn open(
        spec: &DataFlowSpec,
        progress: Option<Arc<Progress>>,
    ) -> Result<Self, PipelineError> {
        let main = open_sink("spec.sink", &spec.sink).await?;
        let errors = match &spec.errors {
            Some(errors) => Some(Outlet {
                sink: open_sink("spec.errors", errors).await?,
                kind: errors.kind.as_str(),
                handed: 0,
            }),
            None => None,
        };
        let routes: Vec<SinkSpec> = spec
            .transformations
            .iter()
            .filter(|t| t.kind == TransformType::Router)
            .filter_map(|t| t.router.as_ref())
            .flat_map(|r| r.routes.iter().map(|route| route.sink.clone()))
            .collect();
        let mut outlets = vec![
            Some(Outlet {
                sink: main,
                kind: spec.sink.kind.as_str(),
                handed: 0,
            }),
            errors,
        ];
        outlets.extend(routes.iter().map(|_| None));
        Ok(Self {
            outlets,
            routes,
            original_sink: spec.sink.kind.as_str(),
            pending: VecDeque::new(),
            summary: Summary::default(),
            unreported_errors: 0,
            progress,
        })
    }

    async fn accept(&mut self, processed: Processed) -> Result<(), PipelineError> {
        self.summary.processed += processed.read;
        self.summary.filtered += processed.filtered;
        self.write(MAIN, processed.main).await?;
        for (index, messages) in processed.routes.into_iter().enumerate() {
            if !messages.is_empty() {
                self.write(ROUTES + index, messages).await?;
            }
        }
        self.summary.errors += processed.errors.len() as u64;
        self.write_errors(processed.errors).await?;
        if let Some(progress) = &self.progress {
            progress.update(self.summary.processed, self.summary.errors);
        }
        if let Some(ack) = processed.ack {
            let required = self
                .outlets
                .iter()
                .map(|o| o.as_ref().map_or(0, |o| o.handed))
                .collect();
            self.pending.push_back((ack, required));
        }
        Ok(())
    }

    /// Hands `messages` to the outlet in `slot` (opening a route sink on first use);
    /// what it refuses goes to the error sink.
    async fn write(&mut self, slot: usize, messages: Vec<Message>) -> Result<(), PipelineError> {
        if messages.is_empty() {
            return Ok(());
        }
        if self.outlets[slot].is_none() {
            let route = slot - ROUTES;
            let spec = &self.routes[route];
            let sink = open_sink(&format!("router route {route} sink"), spec).await?;
            self.outlets[slot] = Some(Outlet {
                sink,
                kind: spec.kind.as_str(),
                handed: 0,
            });
        }
        let Some(outlet) = self.outlets[slot].as_mut() else {
            return Ok(());
        };
        let count = messages.len() as u64;
        outlet.handed += count;
        let rejected = outlet.sink.write(messages).await?;
        // What comes back may include messages of earlier writes (a sink writing in
        // the background reports them late); all were counted as written once.
        self.summary.written += count;
        self.summary.written -= rejected.len() as u64;
        self.reject(slot, rejected).await
    }

    /// Turns refused messages into error records for the error sink.
    async fn reject(&mut self, slot: usize, rejected: Vec<Rejected>) -> Result<(), PipelineError> {
        if rejected.is_empty() {
            return Ok(());
        }
        self.summary.errors += rejected.len() as u64;
        let kind = self.outlets[slot]
            .as_ref()
            .map_or(self.original_sink, |o| o.kind);
        let records = rejected
            .iter()
            .map(|r| Message {
                payload: ErrorRecord {
                    message: &r.reason,
                    error_type: r.error_type.as_str(),
                    stage: "sink_write",
                    original_sink: kind,
                    transformer_index: None,
                    metadata: &r.message.metadata,
                    original: &r.message.payload,
                }
                .to_json(),
                metadata: r.message.metadata.clone(),
            })
            .collect();
        self.write_errors(records).await?;
        // These records belong to batches whose acks may be pending: those acks now
        // also wait for the error sink to make them durable.
        if let Some(errors) = &self.outlets[ERRORS] {
            for (_, required) in &mut self.pending {
                required[ERRORS] = errors.handed;
            }
        }
        Ok(())
    }

    /// Error records to the error sink, or counted and logged without one.
    async fn write_errors(&mut self, records: Vec<Message>) -> Result<(), PipelineError> {
        if records.is_empty() {
            return Ok(());
        }
        let Some(errors) = self.outlets[ERRORS].as_mut() else {
            log_dropped_errors(&records, &mut self.unreported_errors);
            return Ok(());
        };
        errors.handed += records.len() as u64;
        let refused = errors.sink.write(records).await?;
        for r in &refused {
            tracing::error!(
                error_type = %r.error_type,
                reason = %r.reason,
                record = %String::from_utf8_lossy(&r.message.payload),
                "the error sink refused an error record; it is lost"
            );
        }
        Ok(())
    }

    /// The earliest time a buffering sink wants its timer flush, or background
    /// writes want collecting.
    fn next_deadline(&self) -> Option<Instant> {
        let settle = self
            .outlets
            .iter()
            .flatten()
            .any(|o| o.sink.in_flight())
            .then(|| Instant::now() + SETTLE_INTERVAL);
        self.outlets
            .iter()
            .flatten()
            .filter_map(|o| o.sink.flush_deadline())
            .chain(settle)
            .min()
    }

    async fn flush_due(&mut self) -> Result<(), PipelineError> {
        for slot in 0..self.outlets.len() {
            let rejected = match self.outlets[slot].as_mut() {
                Some(outlet) if outlet.sink.in_flight() => outlet.sink.settle().await?,
                _ => continue,
            };
            self.account_late_rejections(slot, rejected).await?;
        }
        let now = Instant::now();
        for slot in 0..self.outlets.len() {
            let due = self.outlets[slot]
                .as_ref()
                .and_then(|o| o.sink.flush_deadline())
                .is_some_and(|at| at <= now);
            if due {
                self.flush_slot(slot).await?;
            }
        }
        Ok(())
    }

    async fn flush_slot(&mut self, slot: usize) -> Result<(), PipelineError> {
        let rejected = match self.outlets[slot].as_mut() {
            Some(outlet) => outlet.sink.flush().await?,
            None => return Ok(()),
        };
        self.account_late_rejections(slot, rejected).await
    }

    /// Messages refused after `write` returned (by a flush or a background write):
    /// they were counted as written, so move them to the error count.
    async fn account_late_rejections(
        &mut self,
        slot: usize,
        rejected: Vec<Rejected>,
    ) -> Result<(), PipelineError> {
        if slot == ERRORS {
            for r in &rejected {
                tracing::error!(reason = %r.reason, "the error sink refused an error record; it is lost");
            }
            return Ok(());
        }
        self.summary.written -= rejected.len() as u64;
        self.reject(slot, rejected).await
    }

    /// Flushes every sink; the error sink last, as flushing the others may add to it.
    async fn flush_all(&mut self) -> Result<(), PipelineError> {
        for slot in (0..self.outlets.len()).filter(|&s| s != ERRORS) {
            self.flush_slot(slot).await?;
        }
        self.flush_slot(ERRORS).await
    }

    /// Sends on every ack whose batch is durable in every sink, in order.
    fn release_acks(&mut self, acks: &mpsc::UnboundedSender<AckToken>) {
        while let Some((_, required)) = self.pending.front() {
            let durable = self
                .outlets
                .iter()
                .zip(required)
                .all(|(outlet, &need)| outlet.as_ref().map_or(0, Outlet::durable) >= need);
            if !durable {
                break;
            }
            if let Some((ack, _)) = self.pending.pop_front() {
                // The reader stops listening only once the run is over.
                let _ = acks.send(ack);
            }
        }
    }
}

/// Runs the chain over a batch and sorts the results by destination.
fn transform_batch(
    chain: &mut TransformChain,
    batch: SourceBatch,
    route_count: usize,
    original_sink: &str,
) -> Processed {
    let inputs = batch.messages;
    let output = chain.run(&inputs);
    let mut main = Vec::with_capacity(output.outputs.len());
    let mut routes: Vec<Vec<Message>> = (0..route_count).map(|_| Vec::new()).collect();
    for message in output.outputs {
        match route_of(&message).filter(|&r| r < route_count) {
            Some(route) => routes[route].push(message),
            None => main.push(message),
        }
    }
    let unreadable = batch.rejected.len();
    let errors = batch
        .rejected
        .into_iter()
        .map(|rejected| Message {
            payload: ErrorRecord {
                message: &rejected.reason,
                error_type: rejected.error_type.as_str(),
                stage: "read",
                original_sink,
                transformer_index: None,
                metadata: &rejected.message.metadata,
                original: &rejected.message.payload,
            }
            .to_json(),
            metadata: rejected.message.metadata,
        })
        .chain(output.failures.iter().map(|failure| Message {
            payload: failure.record(&inputs, original_sink).to_json(),
            metadata: inputs[failure.origin].metadata.clone(),
        }))
        .collect();
    Processed {
        main,
        routes,
        errors,
        read: (inputs.len() + unreadable) as u64,
        filtered: output.filtered as u64,
        ack: batch.ack,
    }
}

fn route_of(message: &Message) -> Option<usize> {
    message
        .metadata
        .iter()
        .find(|(k, _)| k == "route")
        .and_then(|(_, v)| v.parse().ok())
}

/// Without an error sink, failures are counted in the summary and logged: the
/// first ten in full, then one in a thousand.
fn log_dropped_errors(errors: &[Message], seen: &mut u64) {
    for error in errors {
        *seen += 1;
        if *seen <= 10 || (*seen).is_multiple_of(1000) {
            tracing::warn!(
                errors_so_far = *seen,
                record = %String::from_utf8_lossy(&error.payload),
                "message failed and no error sink is configured"
            );
        }
    }
}
