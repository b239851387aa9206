//! Metrics in Prometheus text format (OpenTelemetry instruments, exported through
//! `opentelemetry-prometheus`) and the `/metrics`, `/healthz`, `/livez`, `/readyz` endpoints.
//! The processor and the operator each serve their own instruments through an
//! [`Exporter`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter could not be built.
    #[error("metrics exporter: {0}")]
    Exporter(String),
    /// The listener could not bind or serve.
    #[error("metrics endpoint {addr}: {cause}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause (shown in the message, so not an error `source`).
        cause: std::io::Error,
    },
}

/// A readiness condition checked at every `/readyz` request.
pub type ReadinessCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// A liveness condition checked at every `/livez` request: `Err` says why the
/// process should be restarted.
pub type LivenessCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// A Prometheus registry fed by an OpenTelemetry meter provider, plus what
/// `/readyz` reports: a readiness flag and, optionally, a check run per request.
#[derive(Clone)]
pub struct Exporter {
    registry: prometheus::Registry,
    provider: SdkMeterProvider,
    ready: Arc<AtomicBool>,
    check: Arc<RwLock<Option<ReadinessCheck>>>,
    liveness: Arc<RwLock<Option<LivenessCheck>>>,
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
            check: Arc::new(RwLock::new(None)),
            liveness: Arc::new(RwLock::new(None)),
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

    /// Adds a condition `/readyz` also requires, checked at each request (for
    /// example: every connector's server answers).
    pub fn set_readiness_check(&self, check: ReadinessCheck) {
        let mut slot = self.check.write().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(check);
    }

    /// Sets the condition `/livez` reports (without one, `/livez` is `/healthz`).
    pub fn set_liveness_check(&self, check: LivenessCheck) {
        let mut slot = self
            .liveness
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = Some(check);
    }

    /// `Ok` when `/livez` answers 200 now; otherwise why not.
    pub fn liveness(&self) -> Result<(), String> {
        let check = self.liveness.read().unwrap_or_else(PoisonError::into_inner);
        check.as_ref().map_or(Ok(()), |check| check())
    }

    /// Whether `/readyz` answers 200 now.
    pub fn is_ready(&self) -> bool {
        let check = self.check.read().unwrap_or_else(PoisonError::into_inner);
        self.ready.load(Ordering::Relaxed) && check.as_ref().is_none_or(|check| check())
    }

    /// The current metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The HTTP routes: `/metrics`, `/healthz` (the process answers), `/livez` (the
    /// liveness check holds) and `/readyz`
    /// (ready once [`Exporter::set_ready`] said so).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok" }))
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .with_state(self.clone())
    }

    /// Binds `addr`; the returned listener is served by [`Exporter::serve`].
    pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, TelemetryError> {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|cause| TelemetryError::Bind { addr, cause })
    }

    /// Serves [`Exporter::router`] on `listener` until the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> Result<(), TelemetryError> {
        self.serve_with(listener, Router::new()).await
    }

    /// Serves [`Exporter::router`] and the routes of `beside` on `listener`
    /// until the process ends.
    pub async fn serve_with(
        self,
        listener: tokio::net::TcpListener,
        beside: Router,
    ) -> Result<(), TelemetryError> {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        tracing::info!(%addr, "serving /metrics, /healthz, /livez and /readyz");
        axum::serve(listener, self.router().merge(beside))
            .await
            .map_err(|cause| TelemetryError::Bind { addr, cause })
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

async fn livez(State(exporter): State<Exporter>) -> impl IntoResponse {
    match exporter.liveness() {
        Ok(()) => (StatusCode::OK, "live".to_owned()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

async fn readyz(State(exporter): State<Exporter>) -> impl IntoResponse {
    if exporter.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
