//! The pipeline: `source -> bounded queue -> transform chain -> writers -> acks`.
//!
//! The source and the writers are async tasks; the transform chain runs on its own
//! thread (Wasm calls are synchronous and CPU-bound). Batches move through bounded
//! channels, so a slow sink slows the source instead of filling memory. A source
//! position is committed only after every output of its batch, and every error
//! record, has been written and flushed.

use std::fmt;
use std::time::{Duration, Instant};

use dataflow_api::{DataFlowSpec, SinkSpec, TransformType};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::chain::TransformChain;
use crate::connectors::{AckToken, ConnectorError, Sink, SourceBatch, open_sink, open_source};
use crate::wasm::Message;

/// Tuning of the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    /// Messages per source batch (and per Wasm call).
    pub batch_size: usize,
    /// Batches that may wait in each queue.
    pub queue_depth: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            queue_depth: 4,
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
pub async fn run(
    spec: &DataFlowSpec,
    chain: TransformChain,
    shutdown: CancellationToken,
    config: PipelineConfig,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let mut source = open_source("spec.source", &spec.source).await?;
    let mut main_sink = open_sink("spec.sink", &spec.sink).await?;
    let mut error_sink = match &spec.errors {
        Some(errors) => Some(open_sink("spec.errors", errors).await?),
        None => None,
    };
    let route_specs: Vec<SinkSpec> = spec
        .transformations
        .iter()
        .filter(|t| t.kind == TransformType::Router)
        .filter_map(|t| t.router.as_ref())
        .flat_map(|r| r.routes.iter().map(|route| route.sink.clone()))
        .collect();
    let mut route_sinks: Vec<Option<Box<dyn Sink>>> = route_specs.iter().map(|_| None).collect();

    let (batch_tx, mut batch_rx) = mpsc::channel::<SourceBatch>(config.queue_depth);
    let (out_tx, mut out_rx) = mpsc::channel::<Processed>(config.queue_depth);
    let (ack_tx, mut ack_rx) = mpsc::channel::<AckToken>(config.queue_depth * 2 + 2);

    let batch_size = config.batch_size.max(1);
    let reader = tokio::spawn(async move {
        loop {
            while let Ok(token) = ack_rx.try_recv() {
                source.commit(token).await?;
            }
            let batch = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                batch = source.next_batch(batch_size) => batch?,
            };
            match batch {
                Some(batch) => {
                    if batch_tx.send(batch).await.is_err() {
                        break;
                    }
                }
                None => break,
            }
        }
        drop(batch_tx);
        while let Some(token) = ack_rx.recv().await {
            source.commit(token).await?;
        }
        Ok::<(), ConnectorError>(())
    });

    let original_sink = spec.sink.kind.as_str();
    let route_count = route_specs.len();
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

    let mut summary = Summary::default();
    let mut unreported_errors = 0u64;
    while let Some(processed) = out_rx.recv().await {
        summary.processed += processed.read;
        summary.filtered += processed.filtered;
        summary.errors += processed.errors.len() as u64;
        if !processed.main.is_empty() {
            main_sink.write(&processed.main).await?;
            summary.written += processed.main.len() as u64;
        }
        for (index, messages) in processed.routes.iter().enumerate() {
            if messages.is_empty() {
                continue;
            }
            let sink = match &mut route_sinks[index] {
                Some(sink) => sink,
                slot => {
                    let path = format!("router route {index} sink");
                    slot.insert(open_sink(&path, &route_specs[index]).await?)
                }
            };
            sink.write(messages).await?;
            summary.written += messages.len() as u64;
        }
        if !processed.errors.is_empty() {
            match &mut error_sink {
                Some(sink) => sink.write(&processed.errors).await?,
                None => log_dropped_errors(&processed.errors, &mut unreported_errors),
            }
        }
        main_sink.flush().await?;
        for sink in route_sinks.iter_mut().flatten() {
            sink.flush().await?;
        }
        if let Some(sink) = &mut error_sink {
            sink.flush().await?;
        }
        if let Some(ack) = processed.ack {
            // The reader only stops listening once the run is over.
            let _ = ack_tx.send(ack).await;
        }
    }
    drop(ack_tx);
    if transformer.join().is_err() {
        return Err(PipelineError::TransformStage);
    }
    reader.await.map_err(|_| PipelineError::TransformStage)??;
    summary.elapsed = started.elapsed();
    Ok(summary)
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
    let errors = output
        .failures
        .iter()
        .map(|failure| Message {
            payload: failure.record(&inputs, original_sink).to_json(),
            metadata: inputs[failure.origin].metadata.clone(),
        })
        .collect();
    Processed {
        main,
        routes,
        errors,
        read: inputs.len() as u64,
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
