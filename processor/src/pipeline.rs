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
use tracing::Instrument;

use crate::chain::TransformChain;
use crate::connectors::{
    AckToken, ConnectorError, Rejected, Sink, Source, SourceBatch, open_sink, open_source,
};
use crate::error_record::ErrorRecord;
use crate::progress::Progress;
use crate::telemetry::{Exporter, FlowLabels, FlowMetrics, SinkSlot};
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
    /// Where to record the flow's metrics; none when nothing serves them.
    pub metrics: Option<Exporter>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            queue_depth: 4,
            progress: None,
            metrics: None,
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

/// A batch on its way from the source to the transform stage.
struct Queued {
    batch: SourceBatch,
    /// When the source returned it (also when it entered the queue).
    read_at: Instant,
}

/// A transformed batch, sorted by destination.
struct Processed {
    main: Vec<Message>,
    routes: Vec<Vec<Message>>,
    errors: Vec<Message>,
    read: u64,
    filtered: u64,
    ack: Option<AckToken>,
    /// When the source returned the batch.
    read_at: Instant,
    /// When the transform stage took it.
    taken_at: Instant,
    /// When it entered the writers' queue.
    queued_at: Instant,
}

impl Processed {
    fn message_count(&self) -> usize {
        self.main.len() + self.routes.iter().map(Vec::len).sum::<usize>() + self.errors.len()
    }

    fn byte_count(&self) -> usize {
        let bytes = |messages: &[Message]| messages.iter().map(|m| m.payload.len()).sum::<usize>();
        bytes(&self.main)
            + self.routes.iter().map(|r| bytes(r)).sum::<usize>()
            + bytes(&self.errors)
    }
}

/// The sinks of the spec's router routes, in route order.
fn route_sinks(spec: &DataFlowSpec) -> Vec<SinkSpec> {
    spec.transformations
        .iter()
        .filter(|t| t.kind == TransformType::Router)
        .filter_map(|t| t.router.as_ref())
        .flat_map(|r| r.routes.iter().map(|route| route.sink.clone()))
        .collect()
}

/// The flow's metrics, labelled with its namespace and name (`flow` is
/// `namespace/name`) and its connectors.
fn flow_metrics(
    spec: &DataFlowSpec,
    flow: &str,
    exporter: &Exporter,
    progress: Arc<Progress>,
) -> FlowMetrics {
    let (namespace, name) = flow.split_once('/').unwrap_or(("default", flow));
    let labels = FlowLabels {
        namespace,
        name,
        source_type: spec.source.kind.as_str(),
        sink_type: spec.sink.kind.as_str(),
        error_sink_type: spec.errors.as_ref().map(|e| e.kind.as_str()),
        route_types: route_sinks(spec).iter().map(|s| s.kind.as_str()).collect(),
        transformer_types: spec
            .transformations
            .iter()
            .map(|t| t.kind.as_str())
            .collect(),
    };
    FlowMetrics::new(exporter, &labels, progress)
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
    let progress = config.progress.clone().unwrap_or_default();
    let metrics = config
        .metrics
        .as_ref()
        .map(|exporter| Arc::new(flow_metrics(spec, flow, exporter, progress.clone())));
    let result = run_flow(
        spec,
        flow,
        chain,
        shutdown,
        config,
        progress,
        metrics.clone(),
    )
    .await;
    if let Some(metrics) = &metrics {
        metrics.stopped();
    }
    let mut summary = result?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

async fn run_flow(
    spec: &DataFlowSpec,
    flow: &str,
    chain: TransformChain,
    shutdown: CancellationToken,
    config: PipelineConfig,
    progress: Arc<Progress>,
    metrics: Option<Arc<FlowMetrics>>,
) -> Result<Summary, PipelineError> {
    let mut source = open_source("spec.source", &spec.source, flow).await?;
    let mut writers = Writers::open(spec, progress, metrics.clone()).await?;
    if let Some(metrics) = &metrics {
        metrics.started();
    }

    let (batch_tx, mut batch_rx) = mpsc::channel::<Queued>(config.queue_depth);
    let (out_tx, mut out_rx) = mpsc::channel::<Processed>(config.queue_depth);
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<AckToken>();

    let batch_size = config.batch_size.max(1);
    let read_metrics = metrics.clone();
    let reader = tokio::spawn(
        async move {
            let result = read_loop(
                &mut *source,
                batch_size,
                &batch_tx,
                &mut ack_rx,
                &shutdown,
                read_metrics.as_deref(),
            )
            .await;
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
        }
        .instrument(tracing::info_span!(
            "source",
            connector_type = spec.source.kind.as_str()
        )),
    );

    let original_sink = spec.sink.kind.as_str();
    let route_count = writers.routes.len();
    let transform_metrics = metrics.clone();
    let span = tracing::Span::current();
    let transformer = std::thread::Builder::new()
        .name("transform".into())
        .spawn(move || {
            let _span = span.entered();
            let mut chain = chain;
            while let Some(queued) = batch_rx.blocking_recv() {
                let processed = transform_batch(
                    &mut chain,
                    queued,
                    route_count,
                    original_sink,
                    transform_metrics.as_deref(),
                );
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
    Ok(writers.summary)
}

/// Reads batches until the source ends or shutdown, committing positions as the
/// writers release them.
async fn read_loop(
    source: &mut dyn Source,
    batch_size: usize,
    batch_tx: &mpsc::Sender<Queued>,
    ack_rx: &mut mpsc::UnboundedReceiver<AckToken>,
    shutdown: &CancellationToken,
    metrics: Option<&FlowMetrics>,
) -> Result<(), ConnectorError> {
    loop {
        while let Ok(token) = ack_rx.try_recv() {
            source.commit(token).await?;
        }
        let reading = Instant::now();
        let batch = tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(()),
            batch = source.next_batch(batch_size) => batch,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(err) => {
                if let Some(metrics) = metrics {
                    metrics.read_failed(err.error_type().as_str());
                }
                return Err(err);
            }
        };
        let Some(batch) = batch else { return Ok(()) };
        let read_at = Instant::now();
        if let Some(metrics) = metrics {
            metrics.batch_read(
                batch.messages.len(),
                batch.messages.iter().map(|m| m.payload.len()).sum(),
                batch.rejected.iter().map(|r| r.error_type.as_str()),
                read_at - reading,
            );
        }
        let batch = Queued { batch, read_at };
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
    /// Messages it refused, so far.
    refused: u64,
    /// Messages already reported to the metrics as durably written.
    reported: u64,
}

impl Outlet {
    fn new(sink: Box<dyn Sink>, kind: &'static str) -> Self {
        Self {
            sink,
            kind,
            handed: 0,
            refused: 0,
            reported: 0,
        }
    }

    /// Messages handed over that are now durable (written or refused).
    fn durable(&self) -> u64 {
        self.handed - self.sink.buffered() as u64
    }

    /// Messages written since the last call, for the metrics.
    fn newly_written(&mut self) -> u64 {
        let written = self.durable().saturating_sub(self.refused);
        let new = written.saturating_sub(self.reported);
        self.reported = self.reported.max(written);
        new
    }
}

/// The metrics name of an outlet slot.
fn sink_slot(slot: usize) -> SinkSlot {
    match slot {
        MAIN => SinkSlot::Main,
        ERRORS => SinkSlot::Errors,
        route => SinkSlot::Route(route - ROUTES),
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
    progress: Arc<Progress>,
    metrics: Option<Arc<FlowMetrics>>,
}

impl Writers {
    async fn open(
        spec: &DataFlowSpec,
        progress: Arc<Progress>,
        metrics: Option<Arc<FlowMetrics>>,
    ) -> Result<Self, PipelineError> {
        let main = open_sink("spec.sink", &spec.sink).await?;
        let errors = match &spec.errors {
            Some(errors) => {
                let sink = open_sink("spec.errors", errors).await?;
                if let Some(metrics) = &metrics {
                    metrics.sink_opened(SinkSlot::Errors);
                }
                Some(Outlet::new(sink, errors.kind.as_str()))
            }
            None => None,
        };
        let routes = route_sinks(spec);
        let mut outlets = vec![Some(Outlet::new(main, spec.sink.kind.as_str())), errors];
        outlets.extend(routes.iter().map(|_| None));
        Ok(Self {
            outlets,
            routes,
            original_sink: spec.sink.kind.as_str(),
            pending: VecDeque::new(),
            summary: Summary::default(),
            unreported_errors: 0,
            progress,
            metrics,
        })
    }

    async fn accept(&mut self, processed: Processed) -> Result<(), PipelineError> {
        let accepting = Instant::now();
        if let Some(metrics) = &self.metrics {
            metrics.accepted(processed.message_count(), accepting - processed.queued_at);
        }
        let (read_at, taken_at) = (processed.read_at, processed.taken_at);
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
        if let Some(metrics) = &self.metrics {
            let now = Instant::now();
            metrics.batch_written(now - accepting, now - taken_at, now - read_at);
        }
        self.progress
            .update(self.summary.processed, self.summary.errors);
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
            if let Some(metrics) = &self.metrics {
                metrics.sink_opened(SinkSlot::Route(route));
            }
            self.outlets[slot] = Some(Outlet::new(sink, spec.kind.as_str()));
        }
        let Some(outlet) = self.outlets[slot].as_mut() else {
            return Ok(());
        };
        let count = messages.len() as u64;
        outlet.handed += count;
        let writing = Instant::now();
        let span = tracing::info_span!("sink", connector_type = outlet.kind);
        let rejected = outlet.sink.write(messages).instrument(span).await?;
        if let Some(metrics) = &self.metrics {
            metrics.sink_wrote(sink_slot(slot), writing.elapsed(), rejected.is_empty());
        }
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
        if let Some(outlet) = self.outlets[slot].as_mut() {
            outlet.refused += rejected.len() as u64;
        }
        if let Some(metrics) = &self.metrics {
            metrics.sink_refused(
                sink_slot(slot),
                rejected.iter().map(|r| r.error_type.as_str()),
            );
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
        let writing = Instant::now();
        let refused = errors.sink.write(records).await?;
        errors.refused += refused.len() as u64;
        if let Some(metrics) = &self.metrics {
            metrics.sink_wrote(SinkSlot::Errors, writing.elapsed(), refused.is_empty());
            metrics.sink_refused(
                SinkSlot::Errors,
                refused.iter().map(|r| r.error_type.as_str()),
            );
        }
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
            if let Some(errors) = self.outlets[ERRORS].as_mut() {
                errors.refused += rejected.len() as u64;
            }
            if let Some(metrics) = &self.metrics {
                metrics.sink_refused(
                    SinkSlot::Errors,
                    rejected.iter().map(|r| r.error_type.as_str()),
                );
            }
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

    /// Sends on every ack whose batch is durable in every sink, in order, and
    /// reports newly durable messages to the metrics.
    fn release_acks(&mut self, acks: &mpsc::UnboundedSender<AckToken>) {
        if let Some(metrics) = &self.metrics {
            for (slot, outlet) in self.outlets.iter_mut().enumerate() {
                if let Some(outlet) = outlet {
                    let written = outlet.newly_written();
                    if written > 0 {
                        metrics.durable(sink_slot(slot), written);
                    }
                }
            }
        }
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
    queued: Queued,
    route_count: usize,
    original_sink: &str,
    metrics: Option<&FlowMetrics>,
) -> Processed {
    let taken_at = Instant::now();
    let Queued { batch, read_at } = queued;
    let inputs = batch.messages;
    if let Some(metrics) = metrics {
        metrics.dequeued(inputs.len() + batch.rejected.len(), taken_at - read_at);
    }
    let output = chain.run(&inputs);
    let transformed_at = Instant::now();
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
    let mut processed = Processed {
        main,
        routes,
        errors,
        read: (inputs.len() + unreadable) as u64,
        filtered: output.filtered as u64,
        ack: batch.ack,
        read_at,
        taken_at,
        queued_at: taken_at,
    };
    if let Some(metrics) = metrics {
        metrics.transformed(
            chain.last_runs(),
            &output.failures,
            transformed_at - taken_at,
            processed.message_count(),
            processed.byte_count(),
        );
    }
    processed.queued_at = Instant::now();
    processed
}

fn route_of(message: &Message) -> Option<usize> {
    message
        .metadata
        .iter()
        .find(|(k, _)| k == "route")
        .and_then(|(_, v)| v.parse().ok())
}

/// A message's identity for logs: its source position (`topic/partition/offset`),
/// else its `id` or `key` metadata, else empty.
fn message_id(metadata: &[(String, String)]) -> String {
    let get = |key: &str| {
        metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    match (get("topic"), get("partition"), get("offset")) {
        (Some(topic), Some(partition), Some(offset)) => format!("{topic}/{partition}/{offset}"),
        _ => get("id")
            .or_else(|| get("key"))
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Without an error sink, failures are counted in the summary and logged: the
/// first ten in full, then one in a thousand.
fn log_dropped_errors(errors: &[Message], seen: &mut u64) {
    for error in errors {
        *seen += 1;
        if *seen <= 10 || (*seen).is_multiple_of(1000) {
            tracing::warn!(
                message_id = message_id(&error.metadata),
                errors_so_far = *seen,
                record = %String::from_utf8_lossy(&error.payload),
                "message failed and no error sink is configured"
            );
        }
    }
}
