//! Operator metrics (OpenTelemetry, exported in Prometheus text format) and the
//! `/metrics`, `/healthz`, `/readyz` endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, MeterProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter could not be built.
    #[error("metrics exporter: {0}")]
    Exporter(String),
    /// The listener could not bind.
    #[error("metrics endpoint {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// The operator's instruments.
#[derive(Clone)]
pub struct Metrics {
    registry: prometheus::Registry,
    _provider: SdkMeterProvider,
    reconciles: Counter<u64>,
    reconcile_duration: Histogram<f64>,
    leader: Gauge<u64>,
    reviews: Counter<u64>,
    ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates the instruments on a fresh Prometheus registry.
    pub fn new() -> Result<Self, TelemetryError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let meter = provider.meter("dataflow-operator");
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
            registry,
            _provider: provider,
            ready: Arc::new(AtomicBool::new(false)),
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
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The current metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The HTTP routes: `/metrics`, `/healthz`, `/readyz`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .with_state(self.clone())
    }

    /// Serves [`Metrics::router`] on `addr` until the process ends.
    pub async fn serve(self, addr: SocketAddr) -> Result<(), TelemetryError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| TelemetryError::Bind { addr, source })?;
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
        axum::serve(listener, self.router())
            .await
            .map_err(|source| TelemetryError::Bind { addr, source })
    }
}

async fn metrics(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
}

async fn readyz(State(metrics): State<Metrics>) -> impl IntoResponse {
    if metrics.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
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
