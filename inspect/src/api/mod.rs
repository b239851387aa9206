//! The `/api/v1` endpoints of a running flow, served beside `/metrics`:
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /api/v1/flow` | the flow's graph: source, steps (fused groups marked), routes, sinks |
//! | `GET /api/v1/figures` | live figures (the metrics' numbers) and rates |
//! | `GET /api/v1/figures/history` | a point every 5 s for the last 15 minutes |
//! | `GET /api/v1/tap?at=POINT&rate=N&maxBytes=B` | Server-Sent Events: `sample` and `dropped` |
//! | `GET /api/v1/failures` | the last 100 failures, newest first |
//! | `POST /api/v1/dry-run` | runs given messages through the chain in a sandbox |
//!
//! Every request needs the flow's token (`Authorization: Bearer ...`, or
//! `X-Dataflow-Tap-Token` through a proxy that keeps `Authorization`). The
//! endpoints that show payloads (tap, failures with their payloads, dry run)
//! answer only when the flow allows it (`spec.observability.tap`). Nothing here
//! logs a payload.

mod dry_run;
mod stream;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

pub use dry_run::{
    DryRun, DryRunInput, DryRunOutcome, DryRunOutput, DryRunRequest, MAX_DRY_RUN_BODY,
    MAX_DRY_RUN_MESSAGES,
};

use crate::failures::Failures;
use crate::figures::Figures;
use crate::tap::Tap;

/// The header a client behind a proxy presents the token in.
pub const TOKEN_HEADER: &str = "x-dataflow-tap-token";

/// The secret a client must present.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    /// A token of the given text (surrounding whitespace removed).
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim();
        (text.len() >= 16).then(|| Self(Arc::from(text)))
    }

    /// The token's text, for whoever must hand it to a client (the page's
    /// address printed by a local run).
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time that does not depend on
    /// where they first differ.
    fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        let mut differ = u8::from(a.len() != b.len());
        for (i, byte) in a.iter().enumerate() {
            differ |= byte ^ b.get(i).copied().unwrap_or(0);
        }
        differ == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Everything the endpoints serve.
#[derive(Clone)]
pub struct Inspect {
    /// The tap.
    pub tap: Arc<Tap>,
    /// The recent failures.
    pub failures: Arc<Failures>,
    /// The live figures.
    pub figures: Arc<Figures>,
    /// The flow's graph, as `GET /api/v1/flow` answers it.
    pub flow: Arc<serde_json::Value>,
    /// Whether the flow lets its payloads be shown.
    pub payloads_allowed: bool,
    /// The token; without one every request is refused.
    pub token: Option<Token>,
    /// Runs the playground's messages.
    pub dry_run: Option<Arc<dyn DryRun>>,
}

/// A refusal as the endpoints answer it: `{"error": "..."}` with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// A refusal with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
        }
        let mut response = (
            self.status,
            axum::Json(Body {
                error: &self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl Inspect {
    /// The routes under `/api/v1`, each behind the token check.
    pub fn router(self) -> Router {
        let state = Arc::new(self);
        Router::new()
            .route("/api/v1/flow", get(flow))
            .route("/api/v1/figures", get(figures))
            .route("/api/v1/figures/history", get(history))
            .route("/api/v1/tap", get(stream::tap))
            .route("/api/v1/failures", get(failures))
            .route("/api/v1/dry-run", post(dry_run::dry_run))
            .layer(DefaultBodyLimit::max(MAX_DRY_RUN_BODY))
            .layer(middleware::from_fn_with_state(state.clone(), authorize))
            .with_state(state)
    }

    /// Refuses a request for payloads when the flow does not allow them.
    fn payloads(&self) -> Result<(), ApiError> {
        if self.payloads_allowed {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this flow does not show its messages: set spec.observability.tap: true",
            ))
        }
    }
}

async fn authorize(State(inspect): State<Arc<Inspect>>, request: Request, next: Next) -> Response {
    let Some(token) = &inspect.token else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this processor has no tap token (--tap-token-file or DATAFLOW_TAP_TOKEN)",
        )
        .into_response();
    };
    // Through the API server's pod proxy the user's own credentials take
    // `Authorization`, so the token may come in a header of its own.
    let headers = request.headers();
    let presented = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        });
    match presented {
        Some(presented) if token.matches(presented.trim()) => next.run(request).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "wrong token").into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a token is needed: Authorization: Bearer <the flow's tap token>",
        )
        .into_response(),
    }
}

async fn flow(State(inspect): State<Arc<Inspect>>) -> impl IntoResponse {
    let mut flow = (*inspect.flow).clone();
    flow["payloads"] = serde_json::Value::Bool(inspect.payloads_allowed);
    axum::Json(flow)
}

async fn figures(State(inspect): State<Arc<Inspect>>) -> impl IntoResponse {
    axum::Json(inspect.figures.snapshot())
}

async fn history(State(inspect): State<Arc<Inspect>>) -> impl IntoResponse {
    axum::Json(inspect.figures.history())
}

async fn failures(State(inspect): State<Arc<Inspect>>) -> impl IntoResponse {
    let (mut list, total) = inspect.failures.list();
    if !inspect.payloads_allowed {
        // Without consent to show payloads, only what failed and why.
        for failure in &mut list {
            failure.original = serde_json::Value::Null;
            failure.metadata.clear();
        }
    }
    axum::Json(serde_json::json!({"failures": list, "total": total}))
}

#[cfg(test)]
mod tests;
