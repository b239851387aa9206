//! The flow's metrics as the pipeline's observer.

use std::sync::atomic::Ordering;
use std::time::Duration;

use dataflow_api::{ErrorType, Stage};
use dataflow_wasm_host::{ChainFailure, GroupRun};
use opentelemetry::KeyValue;

use super::{FlowMetrics, queue};
use crate::connectors::Rejected;
use crate::pipeline::{Observer, SinkSlot};

impl Observer for FlowMetrics {
    fn started(&self, queue_capacity: usize) {
        self.shared.running.store(1, Ordering::Relaxed);
        self.shared.queue_capacity.store(
            i64::try_from(queue_capacity).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        self.exporter.set_ready(true);
    }

    fn stopped(&self) {
        self.shared.running.store(0, Ordering::Relaxed);
        self.exporter.set_ready(false);
    }

    fn batch_read(&self, messages: usize, bytes: usize, rejected: &[Rejected], took: Duration) {
        self.size("input", messages, bytes);
        let failed = rejected.len();
        for error_type in rejected.iter().map(|r| r.error_type.as_str()) {
            self.connector_errors.add(
                1,
                &self.with(&[
                    KeyValue::new("connector_type", self.source_kind),
                    KeyValue::new("connector_name", "source"),
                    KeyValue::new("operation", "read"),
                    KeyValue::new("error_type", error_type),
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

    fn read_failed(&self, error_type: ErrorType) {
        self.connector_errors.add(
            1,
            &self.with(&[
                KeyValue::new("connector_type", self.source_kind),
                KeyValue::new("connector_name", "source"),
                KeyValue::new("operation", "read"),
                KeyValue::new("error_type", error_type.as_str()),
            ]),
        );
    }

    fn dequeued(&self, messages: usize, waited: Duration) {
        self.shared
            .queued_default
            .fetch_sub(messages as i64, Ordering::Relaxed);
        self.queue_wait
            .record(waited.as_secs_f64(), &self.with(&[queue("default")]));
        self.latency("read", "transformation", waited);
    }

    fn transformed_part(&self, failures: &[ChainFailure], handed_on: usize, output_bytes: usize) {
        self.size("output", handed_on, output_bytes);
        let mut counted: Vec<(Option<usize>, ErrorType, Stage, u64)> = Vec::new();
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
                attrs.push(KeyValue::new("error_type", error_type.as_str()));
                self.transformer_errors.add(count, &attrs);
            }
            self.stage_errors.add(
                count,
                &self.with(&[
                    KeyValue::new("stage", stage.as_str()),
                    KeyValue::new("error_type", error_type.as_str()),
                ]),
            );
        }
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

    fn transformed(&self, runs: &[GroupRun], took: Duration) {
        for run in runs {
            self.group_ran(run);
        }
        self.stage("transformation", took);
    }

    fn accepted(&self, messages: usize, waited: Duration) {
        self.shared
            .queued_output
            .fetch_sub(messages as i64, Ordering::Relaxed);
        self.queue_wait
            .record(waited.as_secs_f64(), &self.with(&[queue("output")]));
        self.latency("transformation", "write", waited);
    }

    fn sink_wrote(&self, slot: SinkSlot, took: Duration, ok: bool) {
        let (stage, operation) = match slot {
            SinkSlot::Errors => ("error_sink_write", "error_sink_write"),
            _ => ("sink_write", "sink_write"),
        };
        self.stage(stage, took);
        self.operation(operation, if ok { "success" } else { "error" });
    }

    fn sink_refused(&self, slot: SinkSlot, rejected: &[Rejected]) {
        let Some(sink) = self.sink(slot) else { return };
        for error_type in rejected.iter().map(|r| r.error_type.as_str()) {
            self.connector_errors.add(
                1,
                &self.with(&[
                    KeyValue::new("connector_type", sink.kind),
                    KeyValue::new("connector_name", sink.name.clone()),
                    KeyValue::new("operation", "write"),
                    KeyValue::new("error_type", error_type),
                ]),
            );
            if slot != SinkSlot::Errors {
                self.stage_error("sink_write", error_type);
            }
        }
    }

    fn durable(&self, slot: SinkSlot, count: u64) {
        let Some(sink) = self.sink(slot) else { return };
        self.connector_written.add(count, &sink.written);
        if slot != SinkSlot::Errors {
            self.sent.add(count, &sink.sent);
        }
    }

    fn batch_written(&self, took: Duration, processing: Duration, end_to_end: Duration) {
        self.stage("write", took);
        self.operation("write", "success");
        self.processing.record(processing.as_secs_f64(), &self.base);
        self.end_to_end.record(end_to_end.as_secs_f64(), &self.base);
    }
}

impl FlowMetrics {
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
}
