//! Metrics in Prometheus text format (OpenTelemetry instruments, exported through
//! `opentelemetry-prometheus`) and the `/metrics`, `/healthz`, `/readyz` endpoints.
//! The operator serves its own instruments through the same [`Exporter`].

mod flow;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

pub use flow::{FlowLabels, FlowMetrics, SinkSlot};

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter could not be built.
    #[error("metrics exporter: {0}")]
    Exporter(String),
    /// The listener could not bind or serve.
    #[error("metrics endpoint {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// A Prometheus registry fed by an OpenTelemetry meter provider, plus the
/// readiness flag `/readyz` reports.
#[derive(Clone)]
pub struct Exporter {
    registry: prometheus::Registry,
    provider: SdkMeterProvider,
    ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    /// A fresh registry and meter provider.
    pub fn new() -> Result<Self, TelemetryError> {
        let registry = prometheus::Registry::new();
        let reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        Ok(Self {
            registry,
            provider: SdkMeterProvider::builder().with_reader(reader).build(),
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A meter whose instruments this exporter serves; `scope` becomes the
    /// `otel_scope_name` label.
    pub fn meter(&self, scope: &'static str) -> Meter {
        self.provider.meter(scope)
    }

    /// Marks the process ready (or not) for `/readyz`.
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

    /// The HTTP routes: `/metrics`, `/healthz` (the process answers) and `/readyz`
    /// (ready once [`Exporter::set_ready`] said so).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .with_state(self.clone())
    }

    /// Binds `addr`; the returned listener is served by [`Exporter::serve`].
    pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, TelemetryError> {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| TelemetryError::Bind { addr, source })
    }

    /// Serves [`Exporter::router`] on `listener` until the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> Result<(), TelemetryError> {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
        axum::serve(listener, self.router())
            .await
            .map_err(|source| TelemetryError::Bind { addr, source })
    }
}

async fn metrics(State(exporter): State<Exporter>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        exporter.render(),
    )
}

async fn readyz(State(exporter): State<Exporter>) -> impl IntoResponse {
    if exporter.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}
