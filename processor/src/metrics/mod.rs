//! The metrics of one running DataFlow, with the names, kinds and labels of the
//! original project (`spec/metrics.md`) plus the Wasm host's own.
//!
//! Everything is recorded once per batch (counters add the batch's count,
//! histograms observe the batch's time), never per message. Label sets are built
//! once at start; only error labels are built when errors happen.

mod gauges;
mod observe;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use dataflow_telemetry::Exporter;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};

use crate::connectors::FlowHealth;
use crate::pipeline::SinkSlot;
use crate::progress::Progress;

/// Seconds buckets for stage, processing and latency histograms.
const SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bytes buckets for message sizes.
const BYTES: [f64; 10] = [
    64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 16384.0, 65536.0, 262144.0,
];

/// Label sets of one sink.
struct SinkLabels {
    /// namespace, name, sink_type, route
    sent: Vec<KeyValue>,
    /// namespace, name, connector_type, connector_name
    connector: Vec<KeyValue>,
    /// namespace, name, connector_type, connector_name, route
    written: Vec<KeyValue>,
    kind: &'static str,
    name: String,
}

/// Label sets of one transformation.
struct TransformerLabels {
    /// namespace, name, transformer_type, transformer_index
    attrs: Vec<KeyValue>,
    kind: &'static str,
}

/// Counters read by the observable gauges at scrape time.
#[derive(Default)]
struct Shared {
    /// Messages read and not yet handed to the transform stage.
    queued_default: AtomicI64,
    /// Messages transformed and not yet handed to the writers.
    queued_output: AtomicI64,
    /// Messages each queue holds at most (about: batches vary in size).
    queue_capacity: AtomicI64,
    /// Messages read so far.
    read: AtomicU64,
    /// 1 while the flow runs.
    running: AtomicU64,
}

/// The instruments of one flow.
pub struct FlowMetrics {
    exporter: Exporter,
    base: Vec<KeyValue>,
    source: Vec<KeyValue>,
    source_connector: Vec<KeyValue>,
    source_kind: &'static str,
    sinks: Vec<SinkLabels>,
    transformers: Vec<TransformerLabels>,
    shared: Arc<Shared>,

    received: Counter<u64>,
    sent: Counter<u64>,
    processing: Histogram<f64>,
    connector_read: Counter<u64>,
    connector_written: Counter<u64>,
    connector_errors: Counter<u64>,
    executions: Counter<u64>,
    transformer_errors: Counter<u64>,
    transformer_duration: Histogram<f64>,
    transformer_in: Counter<u64>,
    transformer_out: Counter<u64>,
    stage_duration: Histogram<f64>,
    end_to_end: Histogram<f64>,
    queue_wait: Histogram<f64>,
    stage_latency: Histogram<f64>,
    message_size: Histogram<f64>,
    operations: Counter<u64>,
    stage_errors: Counter<u64>,
    rebuilds: Counter<u64>,
    interruptions: Counter<u64>,
    memory_limit_hits: Counter<u64>,
}

impl std::fmt::Debug for FlowMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowMetrics").finish_non_exhaustive()
    }
}

/// The static description of a flow the metrics are labelled with.
#[derive(Debug, Clone)]
pub struct FlowLabels<'a> {
    /// The DataFlow's namespace.
    pub namespace: &'a str,
    /// The DataFlow's name.
    pub name: &'a str,
    /// Source connector type.
    pub source_type: &'static str,
    /// Main sink type.
    pub sink_type: &'static str,
    /// Error sink type, if there is one.
    pub error_sink_type: Option<&'static str>,
    /// Route sink types, by route index.
    pub route_types: Vec<&'static str>,
    /// Transformation types, by spec index.
    pub transformer_types: Vec<&'static str>,
}

impl FlowMetrics {
    /// Creates the flow's instruments on `exporter`'s meter provider. `progress` is
    /// the pipeline's running totals, read at scrape time for the success rate,
    /// the throughput and the messages in flight; `health` is its connectors'
    /// reachability, read for the connection status and `/readyz`.
    pub fn new(
        exporter: &Exporter,
        labels: &FlowLabels<'_>,
        progress: Arc<Progress>,
        health: &FlowHealth,
    ) -> Self {
        let meter = exporter.meter("dataflow-processor");
        let base = vec![
            KeyValue::new("namespace", labels.namespace.to_owned()),
            KeyValue::new("name", labels.name.to_owned()),
        ];
        let with = |extra: &[KeyValue]| -> Vec<KeyValue> {
            base.iter().cloned().chain(extra.iter().cloned()).collect()
        };
        let sink = |kind: &'static str, name: String, route: String| SinkLabels {
            sent: with(&[
                KeyValue::new("sink_type", kind),
                KeyValue::new("route", route.clone()),
            ]),
            connector: with(&[
                KeyValue::new("connector_type", kind),
                KeyValue::new("connector_name", name.clone()),
            ]),
            written: with(&[
                KeyValue::new("connector_type", kind),
                KeyValue::new("connector_name", name.clone()),
                KeyValue::new("route", route),
            ]),
            kind,
            name,
        };
        let mut sinks = vec![
            sink(labels.sink_type, "sink".into(), "default".into()),
            sink(
                labels.error_sink_type.unwrap_or("none"),
                "error_sink".into(),
                "errors".into(),
            ),
        ];
        sinks.extend(
            labels
                .route_types
                .iter()
                .enumerate()
                .map(|(i, kind)| sink(kind, format!("route_{i}"), format!("route_{i}"))),
        );
        let transformers = labels
            .transformer_types
            .iter()
            .enumerate()
            .map(|(index, kind)| TransformerLabels {
                attrs: with(&[
                    KeyValue::new("transformer_type", *kind),
                    KeyValue::new("transformer_index", index.to_string()),
                ]),
                kind,
            })
            .collect();
        let shared = Arc::new(Shared::default());
        gauges::register_gauges(&meter, &base, &shared, progress);
        let source_connector = with(&[
            KeyValue::new("connector_type", labels.source_type),
            KeyValue::new("connector_name", "source"),
        ]);
        let mut connections = vec![(source_connector.clone(), health.source.clone())];
        connections.extend(
            sinks
                .iter()
                .zip(health.sinks())
                .filter_map(|(sink, health)| Some((sink.connector.clone(), health?.clone()))),
        );
        gauges::register_connections(&meter, connections, shared.clone());
        let readiness = health.clone();
        let state = shared.clone();
        exporter.set_readiness_check(Arc::new(move || {
            state.running.load(std::sync::atomic::Ordering::Relaxed) == 1 && readiness.all_up()
        }));
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(SECONDS.to_vec())
                .build()
        };
        let counter = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_description(description)
                .build()
        };
        Self {
            exporter: exporter.clone(),
            source: with(&[KeyValue::new("source_type", labels.source_type)]),
            source_connector,
            source_kind: labels.source_type,
            sinks,
            transformers,
            shared,
            received: counter(
                "dataflow_messages_received",
                "Messages read from the source",
            ),
            sent: counter(
                "dataflow_messages_sent",
                "Messages durably written to the main or a route sink",
            ),
            processing: seconds(
                "dataflow_processing_duration",
                "Time from the transform stage taking a batch to the sinks accepting it (one observation per batch)",
            ),
            connector_read: counter(
                "dataflow_connector_messages_read",
                "Messages a source connector read",
            ),
            connector_written: counter(
                "dataflow_connector_messages_written",
                "Messages a sink connector made durable",
            ),
            connector_errors: counter(
                "dataflow_connector_errors",
                "Connector failures by operation and error type",
            ),
            executions: counter(
                "dataflow_transformer_executions",
                "Messages a transformation was applied to",
            ),
            transformer_errors: counter(
                "dataflow_transformer_errors",
                "Messages a transformation failed, by error type",
            ),
            transformer_duration: seconds(
                "dataflow_transformer_duration",
                "Time of one component call over a batch; fused built-ins report one call for their index range",
            ),
            transformer_in: counter(
                "dataflow_transformer_messages_in",
                "Messages into a transformation",
            ),
            transformer_out: counter(
                "dataflow_transformer_messages_out",
                "Messages out of a transformation",
            ),
            stage_duration: seconds(
                "dataflow_task_stage_duration",
                "Time of a pipeline stage over one batch",
            ),
            end_to_end: seconds(
                "dataflow_task_end_to_end_latency",
                "Time from reading a batch to the sinks accepting all of it",
            ),
            stage_latency: seconds(
                "dataflow_task_stage_latency",
                "Time a batch spent between the end of one stage and the start of the next",
            ),
            message_size: meter
                .f64_histogram("dataflow_task_message_size")
                .with_unit("By")
                .with_description("Mean message size of a batch, at the input and the output")
                .with_boundaries(BYTES.to_vec())
                .build(),
            queue_wait: seconds(
                "dataflow_task_queue_wait_time",
                "Time a batch waited in a queue",
            ),
            operations: counter(
                "dataflow_task_operations",
                "Batch operations by operation and status",
            ),
            stage_errors: counter(
                "dataflow_task_stage_errors",
                "Failed messages by stage and error type",
            ),
            rebuilds: counter(
                "dataflow_wasm_instance_rebuilds",
                "Transform instances rebuilt after a trap, timeout or memory-limit hit",
            ),
            interruptions: counter(
                "dataflow_wasm_interruptions",
                "Component calls stopped by the epoch deadline (the time limit)",
            ),
            memory_limit_hits: counter(
                "dataflow_wasm_memory_limit_hits",
                "Component calls stopped by the memory limit",
            ),
            base,
        }
    }

    fn sink(&self, slot: SinkSlot) -> Option<&SinkLabels> {
        let index = match slot {
            SinkSlot::Main => 0,
            SinkSlot::Errors => 1,
            SinkSlot::Route(route) => 2 + route,
        };
        self.sinks.get(index)
    }

    fn stage(&self, stage: &'static str, took: Duration) {
        self.stage_duration.record(
            took.as_secs_f64(),
            &self.with(&[KeyValue::new("stage", stage)]),
        );
    }

    /// One observation of the mean size of `messages` messages of `bytes` in all.
    fn size(&self, stage: &'static str, messages: usize, bytes: usize) {
        if messages > 0 {
            self.message_size.record(
                bytes as f64 / messages as f64,
                &self.with(&[KeyValue::new("stage", stage)]),
            );
        }
    }

    fn latency(&self, from: &'static str, to: &'static str, waited: Duration) {
        self.stage_latency.record(
            waited.as_secs_f64(),
            &self.with(&[
                KeyValue::new("from_stage", from),
                KeyValue::new("to_stage", to),
            ]),
        );
    }

    fn stage_error(&self, stage: &'static str, error_type: &str) {
        self.stage_errors.add(
            1,
            &self.with(&[
                KeyValue::new("stage", stage),
                KeyValue::new("error_type", error_type.to_owned()),
            ]),
        );
    }

    fn operation(&self, operation: &'static str, status: &'static str) {
        self.operations.add(
            1,
            &self.with(&[
                KeyValue::new("operation", operation),
                KeyValue::new("status", status),
            ]),
        );
    }

    fn with(&self, extra: &[KeyValue]) -> Vec<KeyValue> {
        let mut attrs = Vec::with_capacity(self.base.len() + extra.len());
        attrs.extend(self.base.iter().cloned());
        attrs.extend(extra.iter().cloned());
        attrs
    }
}

/// The `queue_type` label.
fn queue(kind: &'static str) -> KeyValue {
    KeyValue::new("queue_type", kind)
}
