//! A DataFlow from its spec: opens the connectors the spec names, wires the
//! metrics when they are served, and runs the pipeline.

use std::sync::Arc;

use dataflow_api::{DataFlowSpec, PositionReset, SinkSpec};
use dataflow_telemetry::Exporter;
use dataflow_wasm_host::TransformChain;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::connectors::{FlowHealth, SourceOptions, open_sink, open_source};
use crate::inspect::FlowInspect;
use crate::metrics::{FlowLabels, FlowMetrics};
use crate::pipeline::{
    self, NamedSink, Observer, Observers, Outlets, Parts, PipelineConfig, PipelineError, RouteSink,
    Summary, Unobserved,
};
use crate::progress::Progress;

/// How a flow runs besides its spec.
#[derive(Debug, Default)]
pub struct FlowOptions {
    /// Batching and queues.
    pub pipeline: PipelineConfig,
    /// Where to publish live totals (for the status reporter and metrics).
    pub progress: Option<Arc<Progress>>,
    /// Where to record the flow's metrics; none when nothing serves them.
    pub metrics: Option<Exporter>,
    /// A position reset to apply once, before the first read.
    pub reset: Option<ResetOrder>,
    /// What the flow shows of itself (tap, failures, figures), when served.
    pub inspect: Option<FlowInspect>,
}

/// Moves the source's position before it is read.
#[derive(Debug)]
pub struct ResetOrder {
    /// Where to.
    pub position: PositionReset,
    /// Told what was done once it is durable (the source has committed or
    /// stored the new position).
    pub done: Option<oneshot::Sender<String>>,
    /// Turns `true` when another replica of the flow has applied this very
    /// reset (seen in the DataFlow's status): a source still waiting to apply it
    /// then reads on from where the flow is instead.
    pub applied_elsewhere: Option<watch::Receiver<bool>>,
}

/// The sinks of the spec's router routes, in route order.
fn route_sinks(spec: &DataFlowSpec) -> Vec<SinkSpec> {
    spec.transformations
        .iter()
        .filter_map(|t| t.spec.router())
        .flat_map(|r| r.routes.iter().map(|route| route.sink.clone()))
        .collect()
}

/// Runs the flow `spec` describes until its source is exhausted or `shutdown` is
/// cancelled. `flow` names the DataFlow (`namespace/name`): sources that keep their
/// position in the origin system key it by this name.
pub async fn run(
    spec: &DataFlowSpec,
    flow: &str,
    chain: TransformChain,
    shutdown: CancellationToken,
    options: FlowOptions,
) -> Result<Summary, PipelineError> {
    let routes = route_sinks(spec);
    let health = FlowHealth::new(spec.errors.is_some(), routes.len());
    let progress = options.progress.clone().unwrap_or_default();
    let observer: Arc<dyn Observer> = match &options.metrics {
        Some(exporter) => {
            let (namespace, name) = flow.split_once('/').unwrap_or(("default", flow));
            let labels = FlowLabels {
                namespace,
                name,
                source_type: spec.source.kind().as_str(),
                sink_type: spec.sink.kind().as_str(),
                error_sink_type: spec.errors.as_ref().map(|e| e.kind().as_str()),
                route_types: routes.iter().map(|s| s.kind().as_str()).collect(),
                transformer_types: spec
                    .transformations
                    .iter()
                    .map(|t| t.spec.kind().as_str())
                    .collect(),
            };
            Arc::new(FlowMetrics::new(
                exporter,
                &labels,
                progress.clone(),
                &health,
            ))
        }
        None => Arc::new(Unobserved),
    };
    let observer: Arc<dyn Observer> = match &options.inspect {
        Some(inspect) => Arc::new(Observers(vec![observer, inspect.observer()])),
        None => observer,
    };
    let opened = open_source(
        "spec.source",
        &spec.source,
        flow,
        SourceOptions {
            persist: spec.persists_positions(),
            to_completion: spec.runs_to_completion(),
            reset: options.reset.as_ref().map(|r| &r.position),
            reset_applied_elsewhere: options
                .reset
                .as_ref()
                .and_then(|r| r.applied_elsewhere.as_ref()),
        },
        health.source.clone(),
    )
    .await?;
    let source = opened.source;
    if let (Some(detail), Some(done)) = (opened.reset, options.reset.and_then(|r| r.done)) {
        // Nobody listening (a local run) is fine: the log has it.
        let _ = done.send(detail);
    }
    let main = NamedSink {
        kind: spec.sink.kind(),
        sink: open_sink("spec.sink", &spec.sink, health.sink.clone()).await?,
    };
    let errors = match (&spec.errors, &health.errors) {
        (Some(errors), Some(errors_health)) => Some(NamedSink {
            kind: errors.kind(),
            sink: open_sink("spec.errors", errors, errors_health.clone()).await?,
        }),
        _ => None,
    };
    let routes = routes
        .into_iter()
        .zip(health.routes.iter().cloned())
        .enumerate()
        .map(|(index, (sink, health))| RouteSink {
            kind: sink.kind(),
            open: Box::new(move || {
                Box::pin(async move {
                    open_sink(&format!("router route {index} sink"), &sink, health).await
                })
            }),
        })
        .collect();
    let parts = Parts {
        source,
        outlets: Outlets {
            main,
            errors,
            routes,
        },
        transform: Box::new(chain),
        observer,
        progress,
        watchers: options.inspect.as_ref().map(FlowInspect::watchers),
    };
    pipeline::run(parts, shutdown, options.pipeline).await
}
