//! Operator metrics (OpenTelemetry, exported in Prometheus text format) and the
//! `/metrics`, `/healthz`, `/readyz` endpoints.

use std::net::SocketAddr;
use std::time::Duration;

use dataflow_telemetry::Exporter;
pub use dataflow_telemetry::TelemetryError;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram};

/// The operator's instruments, served by an [`Exporter`] (the same Prometheus
/// output and endpoints as the processor's).
#[derive(Clone, Debug)]
pub struct Metrics {
    exporter: Exporter,
    reconciles: Counter<u64>,
    reconcile_duration: Histogram<f64>,
    leader: Gauge<u64>,
    reviews: Counter<u64>,
}

impl Metrics {
    /// Creates the instruments on a fresh Prometheus registry.
    pub fn new() -> Result<Self, TelemetryError> {
        let exporter = Exporter::new()?;
        let meter = exporter.meter("dataflow-operator");
        Ok(Self {
            reconciles: meter
                .u64_counter("dataflow_operator_reconciles")
                .with_description("Reconcile passes by result (success, error)")
                .build(),
            reconcile_duration: meter
                .f64_histogram("dataflow_operator_reconcile_duration")
                .with_unit("s")
                .with_description("Time one reconcile pass takes")
                .with_boundaries(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .build(),
            leader: meter
                .u64_gauge("dataflow_operator_leader")
                .with_description("1 while this replica holds the leader lease")
                .build(),
            reviews: meter
                .u64_counter("dataflow_operator_webhook_reviews")
                .with_description("Admission reviews answered, by outcome (allowed, denied)")
                .build(),
            exporter,
        })
    }

    /// Records one reconcile pass.
    pub fn reconciled(&self, ok: bool, took: Duration) {
        let result = KeyValue::new("result", if ok { "success" } else { "error" });
        self.reconciles.add(1, std::slice::from_ref(&result));
        self.reconcile_duration
            .record(took.as_secs_f64(), &[result]);
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.record(u64::from(leading), &[]);
    }

    /// Records one admission review.
    pub fn reviewed(&self, allowed: bool) {
        let outcome = if allowed { "allowed" } else { "denied" };
        self.reviews.add(1, &[KeyValue::new("outcome", outcome)]);
    }

    /// Marks the operator ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.exporter.set_ready(ready);
    }

    /// The current metrics in Prometheus text format.
    pub fn render(&self) -> String {
        self.exporter.render()
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until the process ends.
    pub async fn serve(self, addr: SocketAddr) -> Result<(), TelemetryError> {
        let listener = Exporter::bind(addr).await?;
        self.exporter.serve(listener).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_prometheus_names() {
        let metrics = Metrics::new().unwrap();
        metrics.reconciled(true, Duration::from_millis(20));
        metrics.reconciled(false, Duration::from_millis(5));
        metrics.set_leader(true);
        metrics.reviewed(false);
        let text = metrics.render();
        assert!(
            text.contains("dataflow_operator_reconciles_total{result=\"success\",otel_scope_name=\"dataflow-operator\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dataflow_operator_reconcile_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains("dataflow_operator_leader{otel_scope_name=\"dataflow-operator\"} 1"),
            "{text}"
        );
        assert!(text.contains("dataflow_operator_webhook_reviews_total{outcome=\"denied\",otel_scope_name=\"dataflow-operator\"} 1"), "{text}");
    }
}
