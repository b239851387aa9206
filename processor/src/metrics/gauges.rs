//! Gauges computed at scrape time from the pipeline's atomics and its connectors'
//! health.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use super::{Shared, queue};
use crate::connectors::Health;
use crate::progress::Progress;

/// Gauges computed at scrape time from the pipeline's atomics.
pub(super) fn register_gauges(
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
    meter
        .i64_observable_gauge("dataflow_task_queue_capacity")
        .with_description("Messages a pipeline queue holds when full (queue depth x batch size)")
        .with_callback(move |gauge| {
            for kind in ["default", "output"] {
                let mut labels = attrs.clone();
                labels.push(queue(kind));
                gauge.observe(state.queue_capacity.load(Ordering::Relaxed), &labels);
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

/// `dataflow_connector_connection_status`: 1 while the flow runs and the
/// connector's server answered its last operation, else 0.
pub(super) fn register_connections(
    meter: &Meter,
    connections: Vec<(Vec<KeyValue>, Health)>,
    shared: Arc<Shared>,
) {
    meter
        .u64_observable_gauge("dataflow_connector_connection_status")
        .with_description("1 while the connector's server answers, 0 while it cannot be reached or once the flow stopped")
        .with_callback(move |gauge| {
            let running = shared.running.load(Ordering::Relaxed) == 1;
            for (labels, health) in &connections {
                gauge.observe(u64::from(running && health.is_up()), labels);
            }
        })
        .build();
}
