//! The metrics of one running DataFlow, with the names, kinds and labels of the
//! original project (`spec/metrics.md`) plus the Wasm host's own.
//!
//! Everything is recorded once per batch (counters add the batch's count,
//! histograms observe the batch's time), never per message. Label sets are built
//! once at start; only error labels are built when errors happen.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};

use super::Exporter;
use crate::chain::{ChainFailure, GroupRun};
use crate::progress::Progress;

/// Seconds buckets for stage, processing and latency histograms.
const SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bytes buckets for message sizes.
const BYTES: [f64; 10] = [
    64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 16384.0, 65536.0, 262144.0,
];

/// Which sink a write went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkSlot {
    /// The main sink.
    Main,
    /// The error sink.
    Errors,
    /// A router route's sink, by route index.
    Route(usize),
}

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
    connection_status: Gauge<u64>,
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
    /// the throughput and the messages in flight.
    pub fn new(exporter: &Exporter, labels: &FlowLabels<'_>, progress: Arc<Progress>) -> Self {
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
        register_gauges(&meter, &base, &shared, progress);
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
            source_connector: with(&[
                KeyValue::new("connector_type", labels.source_type),
                KeyValue::new("connector_name", "source"),
            ]),
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
            connection_status: meter
                .u64_gauge("dataflow_connector_connection_status")
                .with_description("1 while the connector is open, 0 once closed or failed")
                .build(),
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

    /// The exporter, for readiness.
    pub fn exporter(&self) -> &Exporter {
        &self.exporter
    }

    /// The flow is running: connectors are open (`dataflow_status`, connection
    /// status, `/readyz`).
    pub fn started(&self) {
        self.shared.running.store(1, Ordering::Relaxed);
        self.connection_status.record(1, &self.source_connector);
        for sink in self.sinks.iter().take(1) {
            self.connection_status.record(1, &sink.connector);
        }
        self.exporter.set_ready(true);
    }

    /// A sink other than the main one was opened.
    pub fn sink_opened(&self, slot: SinkSlot) {
        if let Some(sink) = self.sink(slot) {
            self.connection_status.record(1, &sink.connector);
        }
    }

    /// The flow has stopped (finished, signalled or failed).
    pub fn stopped(&self) {
        self.shared.running.store(0, Ordering::Relaxed);
        self.connection_status.record(0, &self.source_connector);
        for sink in &self.sinks {
            self.connection_status.record(0, &sink.connector);
        }
        self.exporter.set_ready(false);
    }

    /// A batch was read: `messages` decoded and `rejected` undecodable ones (by
    /// error type), in `took`.
    pub fn batch_read<'a>(
        &self,
        messages: usize,
        bytes: usize,
        rejected: impl Iterator<Item = &'a str>,
        took: Duration,
    ) {
        self.size("input", messages, bytes);
        let mut failed = 0;
        for error_type in rejected {
            failed += 1;
            self.connector_errors.add(
                1,
                &self.with(&[
                    KeyValue::new("connector_type", self.source_kind),
                    KeyValue::new("connector_name", "source"),
                    KeyValue::new("operation", "read"),
                    KeyValue::new("error_type", error_type.to_owned()),
                ]),
            );
            self.stage_error("read", error_type);
        }
        let total = (messages + failed) as u64;
        self.shared.read.fetch_add(total, Ordering::Relaxed);
        self.received.add(total, &self.source);
        self.connector_read.add(total, &self.source_connector);
        self.stage("read", took);
        self.shared
            .queued_default
            .fetch_add(total as i64, Ordering::Relaxed);
    }

    /// The source failed.
    pub fn read_failed(&self, error_type: &str) {
        self.connector_errors.add(
            1,
            &self.with(&[
                KeyValue::new("connector_type", self.source_kind),
                KeyValue::new("connector_name", "source"),
                KeyValue::new("operation", "read"),
                KeyValue::new("error_type", error_type.to_owned()),
            ]),
        );
    }

    /// The transform stage took a batch of `messages` that waited `waited`.
    pub fn dequeued(&self, messages: usize, waited: Duration) {
        self.shared
            .queued_default
            .fetch_sub(messages as i64, Ordering::Relaxed);
        self.queue_wait
            .record(waited.as_secs_f64(), &self.with(&[queue("default")]));
        self.latency("read", "transformation", waited);
    }

    /// The chain ran over a batch: per-group results, failures, whole time, and the
    /// number of messages handed on to the writers.
    pub fn transformed(
        &self,
        runs: &[GroupRun],
        failures: &[ChainFailure],
        took: Duration,
        handed_on: usize,
        output_bytes: usize,
    ) {
        self.size("output", handed_on, output_bytes);
        for run in runs {
            self.group_ran(run);
        }
        let mut counted: Vec<(Option<usize>, &str, &str, u64)> = Vec::new();
        for failure in failures {
            let key = (failure.transformer_index, failure.error_type, failure.stage);
            match counted.iter_mut().find(|(i, t, s, _)| (*i, *t, *s) == key) {
                Some(entry) => entry.3 += 1,
                None => counted.push((key.0, key.1, key.2, 1)),
            }
        }
        for (index, error_type, stage, count) in counted {
            if let Some(labels) = index.and_then(|i| self.transformers.get(i)) {
                let mut attrs = labels.attrs.clone();
                attrs.push(KeyValue::new("error_type", error_type));
                self.transformer_errors.add(count, &attrs);
            }
            self.stage_errors.add(
                count,
                &self.with(&[
                    KeyValue::new("stage", stage),
                    KeyValue::new("error_type", error_type),
                ]),
            );
        }
        self.stage("transformation", took);
        let status = if failures.is_empty() {
            "success"
        } else {
            "error"
        };
        self.operation("transform", status);
        self.shared
            .queued_output
            .fetch_add(handed_on as i64, Ordering::Relaxed);
    }

    fn group_ran(&self, run: &GroupRun) {
        let range = run.first_index..run.first_index + run.steps;
        // Fused steps run as one call: their stage is the range they cover.
        let stage = if run.steps == 1 {
            format!("transformer_{}", run.first_index)
        } else {
            format!("transformer_{}-{}", range.start, range.end - 1)
        };
        self.stage_duration.record(
            run.elapsed.as_secs_f64(),
            &self.with(&[KeyValue::new("stage", stage)]),
        );
        let Some(first) = self.transformers.get(run.first_index) else {
            return;
        };
        if run.steps == 1 {
            self.transformer_in.add(run.received, &first.attrs);
            self.executions.add(run.received, &first.attrs);
            self.transformer_out.add(run.emitted, &first.attrs);
            self.transformer_duration
                .record(run.elapsed.as_secs_f64(), &first.attrs);
        } else {
            // The first step sees every message the group got (invalid JSON too);
            // the steps' own counters say what each did with what it parsed.
            for (offset, index) in range.clone().enumerate() {
                let Some(labels) = self.transformers.get(index) else {
                    continue;
                };
                let count = run.step_counts.get(offset).copied().unwrap_or_default();
                let received = if offset == 0 {
                    run.received
                } else {
                    count.received
                };
                self.transformer_in.add(received, &labels.attrs);
                self.executions.add(received, &labels.attrs);
                self.transformer_out.add(count.emitted, &labels.attrs);
            }
            let kinds: Vec<&str> = range
                .clone()
                .filter_map(|i| self.transformers.get(i).map(|t| t.kind))
                .collect();
            self.transformer_duration.record(
                run.elapsed.as_secs_f64(),
                &self.with(&[
                    KeyValue::new("transformer_type", kinds.join("+")),
                    KeyValue::new(
                        "transformer_index",
                        format!("{}-{}", range.start, range.end - 1),
                    ),
                ]),
            );
        }
        for (count, counter) in [
            (run.rebuilds, &self.rebuilds),
            (run.timeouts, &self.interruptions),
            (run.memory_limit_hits, &self.memory_limit_hits),
        ] {
            if count > 0 {
                counter.add(count, &first.attrs);
            }
        }
    }

    /// The writers took a batch from the output queue.
    pub fn accepted(&self, messages: usize, waited: Duration) {
        self.shared
            .queued_output
            .fetch_sub(messages as i64, Ordering::Relaxed);
        self.queue_wait
            .record(waited.as_secs_f64(), &self.with(&[queue("output")]));
        self.latency("transformation", "write", waited);
    }

    /// One write to a sink took `took`; `ok` when no message was refused.
    pub fn sink_wrote(&self, slot: SinkSlot, took: Duration, ok: bool) {
        let (stage, operation) = match slot {
            SinkSlot::Errors => ("error_sink_write", "error_sink_write"),
            _ => ("sink_write", "sink_write"),
        };
        self.stage(stage, took);
        self.operation(operation, if ok { "success" } else { "error" });
    }

    /// A sink refused messages (by error type).
    pub fn sink_refused<'a>(&self, slot: SinkSlot, error_types: impl Iterator<Item = &'a str>) {
        let Some(sink) = self.sink(slot) else { return };
        for error_type in error_types {
            self.connector_errors.add(
                1,
                &self.with(&[
                    KeyValue::new("connector_type", sink.kind),
                    KeyValue::new("connector_name", sink.name.clone()),
                    KeyValue::new("operation", "write"),
                    KeyValue::new("error_type", error_type.to_owned()),
                ]),
            );
            if slot != SinkSlot::Errors {
                self.stage_error("sink_write", error_type);
            }
        }
    }

    /// `count` more messages are durable in the sink of `slot`.
    pub fn durable(&self, slot: SinkSlot, count: u64) {
        let Some(sink) = self.sink(slot) else { return };
        self.connector_written.add(count, &sink.written);
        if slot != SinkSlot::Errors {
            self.sent.add(count, &sink.sent);
        }
    }

    /// The writers handed a whole batch to the sinks: `took` for the write stage,
    /// `processing` since the transform stage took it, `end_to_end` since it was read.
    pub fn batch_written(&self, took: Duration, processing: Duration, end_to_end: Duration) {
        self.stage("write", took);
        self.operation("write", "success");
        self.processing.record(processing.as_secs_f64(), &self.base);
        self.end_to_end.record(end_to_end.as_secs_f64(), &self.base);
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

fn queue(kind: &'static str) -> KeyValue {
    KeyValue::new("queue_type", kind)
}

/// Gauges computed at scrape time from the pipeline's atomics.
fn register_gauges(
    meter: &Meter,
    base: &[KeyValue],
    shared: &Arc<Shared>,
    progress: Arc<Progress>,
) {
    let attrs = base.to_vec();
    let state = shared.clone();
    meter
        .u64_observable_gauge("dataflow_status")
        .with_description("1 while the flow runs, 0 once it stopped or failed")
        .with_callback(move |gauge| {
            let mut labels = attrs.clone();
            labels.push(KeyValue::new("phase", "Running"));
            gauge.observe(state.running.load(Ordering::Relaxed), &labels);
        })
        .build();

    let attrs = base.to_vec();
    let state = shared.clone();
    meter
        .i64_observable_gauge("dataflow_task_queue_size")
        .with_description("Messages waiting in a pipeline queue")
        .with_callback(move |gauge| {
            for (kind, value) in [
                ("default", &state.queued_default),
                ("output", &state.queued_output),
            ] {
                let mut labels = attrs.clone();
                labels.push(queue(kind));
                gauge.observe(value.load(Ordering::Relaxed).max(0), &labels);
            }
        })
        .build();

    let attrs = base.to_vec();
    let state = shared.clone();
    let totals = progress.clone();
    meter
        .i64_observable_gauge("dataflow_task_active_messages")
        .with_description("Messages read and not yet handed to a sink")
        .with_callback(move |gauge| {
            let read = state.read.load(Ordering::Relaxed);
            let handled = totals.snapshot().processed;
            gauge.observe(
                i64::try_from(read.saturating_sub(handled)).unwrap_or(i64::MAX),
                &attrs,
            );
        })
        .build();

    let attrs = base.to_vec();
    let totals = progress.clone();
    meter
        .f64_observable_gauge("dataflow_task_success_rate")
        .with_description("Share of handled messages that did not fail (0..1)")
        .with_callback(move |gauge| {
            let now = totals.snapshot();
            let rate = if now.processed == 0 {
                1.0
            } else {
                1.0 - now.errors as f64 / now.processed as f64
            };
            gauge.observe(rate.clamp(0.0, 1.0), &attrs);
        })
        .build();

    let attrs = base.to_vec();
    let last = Mutex::new((Instant::now(), 0_u64));
    meter
        .f64_observable_gauge("dataflow_task_throughput_messages_per_second")
        .with_description("Messages handled per second since the previous scrape")
        .with_callback(move |gauge| {
            let handled = progress.snapshot().processed;
            let Ok(mut last) = last.lock() else { return };
            let elapsed = last.0.elapsed().as_secs_f64();
            let rate = if elapsed > 0.0 {
                handled.saturating_sub(last.1) as f64 / elapsed
            } else {
                0.0
            };
            *last = (Instant::now(), handled);
            gauge.observe(rate, &attrs);
        })
        .build();
}
