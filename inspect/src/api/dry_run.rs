//! `POST /api/v1/dry-run`: the playground. Given messages (or the last ones
//! sampled at a point) go through the flow's chain, or through an edited list of
//! transformations, in a sandbox instance of their own with the same limits:
//! never the live instance, never a sink. Every output comes back with its route,
//! every failure with its error, masked and cut as the tap shows them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use dataflow_core::Message;
use serde::{Deserialize, Serialize};

use super::{ApiError, Inspect};
use crate::point::Point;
use crate::sample::{DEFAULT_MAX_BYTES, MAX_MAX_BYTES, metadata};

/// The most messages one dry run takes.
pub const MAX_DRY_RUN_MESSAGES: usize = 1000;
/// The largest request body.
pub const MAX_DRY_RUN_BODY: usize = 8 * 1024 * 1024;

/// A dry run's request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DryRunRequest {
    /// Messages: JSON documents, or `{payload, metadata}`.
    #[serde(default)]
    pub messages: Vec<serde_json::Value>,
    /// Or the last messages sampled at a point.
    #[serde(default)]
    pub from: Option<FromSamples>,
    /// Transformations to run instead of the flow's (as `spec.transformations`).
    #[serde(default)]
    pub transformations: Option<serde_json::Value>,
}

/// The last `last` messages the tap sampled at `at`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromSamples {
    /// The point.
    pub at: String,
    /// How many (at most 100).
    pub last: usize,
}

/// One message given to a dry run.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRunInput(pub Message);

impl DryRunInput {
    /// A message from its JSON form: an object holding only `payload` (and
    /// `metadata`) is that message; anything else is the payload itself.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        if let Some(object) = value.as_object()
            && object.contains_key("payload")
            && object.keys().all(|k| k == "payload" || k == "metadata")
        {
            let payload = match &object["payload"] {
                serde_json::Value::String(text) => text.as_bytes().to_vec(),
                other => serde_json::to_vec(other).map_err(|e| e.to_string())?,
            };
            let mut pairs = Vec::new();
            if let Some(meta) = object.get("metadata") {
                let map = meta
                    .as_object()
                    .ok_or("metadata must be an object of strings")?;
                for (key, value) in map {
                    let text = value
                        .as_str()
                        .ok_or_else(|| format!("metadata.{key} must be a string"))?;
                    pairs.push((key.clone(), text.to_owned()));
                }
            }
            return Ok(Self(Message {
                payload,
                metadata: pairs,
            }));
        }
        Ok(Self(Message {
            payload: serde_json::to_vec(value).map_err(|e| e.to_string())?,
            metadata: Vec::new(),
        }))
    }
}

/// One output of a dry run.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRunOutput {
    /// The message.
    pub message: Message,
    /// The route it takes (none: the main sink).
    pub route: Option<usize>,
}

/// What became of one input.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DryRunOutcome {
    /// Its outputs (none: a filter dropped it, or it failed).
    pub outputs: Vec<DryRunOutput>,
    /// Its failure: type, failing step and reason.
    pub error: Option<(String, Option<usize>, String)>,
}

/// Runs messages through a chain in a sandbox (the processor's Wasm host).
#[async_trait::async_trait]
pub trait DryRun: Send + Sync {
    /// Runs `inputs` through the flow's transformations, or through
    /// `transformations` instead; one outcome per input, in order. `Err`: the
    /// transformations cannot be built (the reason names the field).
    async fn run(
        &self,
        inputs: Vec<Message>,
        transformations: Option<serde_json::Value>,
    ) -> Result<Vec<DryRunOutcome>, String>;
}

#[derive(Serialize)]
struct ShownOutput {
    payload: serde_json::Value,
    cut: bool,
    metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<usize>,
}

#[derive(Serialize)]
struct ShownError {
    #[serde(rename = "type")]
    error_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<usize>,
    message: String,
}

#[derive(Serialize)]
struct ShownResult {
    input: serde_json::Value,
    outputs: Vec<ShownOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ShownError>,
}

pub(super) async fn dry_run(
    State(inspect): State<Arc<Inspect>>,
    body: Result<axum::Json<DryRunRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    inspect.payloads()?;
    let axum::Json(request) = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let runner = inspect.dry_run.clone().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_IMPLEMENTED, "this processor has no sandbox")
    })?;
    let mut inputs = Vec::new();
    for (i, value) in request.messages.iter().enumerate() {
        let input = DryRunInput::from_json(value)
            .map_err(|e| ApiError::bad_request(format!("messages[{i}]: {e}")))?;
        inputs.push(input.0);
    }
    if let Some(from) = &request.from {
        let point: Point = from.at.parse().map_err(|e: crate::point::PointError| {
            ApiError::bad_request(format!("from.at: {e}"))
        })?;
        let recent = inspect
            .tap
            .recent(point, from.last)
            .map_err(|e| ApiError::bad_request(format!("from: {e}")))?;
        inputs.extend(recent);
    }
    if inputs.is_empty() {
        return Err(ApiError::bad_request(
            "no messages: give messages or from: {at, last}",
        ));
    }
    if inputs.len() > MAX_DRY_RUN_MESSAGES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} messages: a dry run takes at most {MAX_DRY_RUN_MESSAGES}",
                inputs.len()
            ),
        ));
    }
    if let Some((i, big)) = inputs
        .iter()
        .enumerate()
        .find(|(_, m)| m.payload.len() > MAX_MAX_BYTES)
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "messages[{i}]: {} bytes; a dry run takes messages of at most {MAX_MAX_BYTES}",
                big.payload.len()
            ),
        ));
    }
    let shaper = inspect.tap.shaper().clone();
    let shown_inputs: Vec<serde_json::Value> = inputs
        .iter()
        .map(|m| shaper.payload(&m.payload, DEFAULT_MAX_BYTES).0)
        .collect();
    let outcomes = runner
        .run(inputs, request.transformations)
        .await
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let results: Vec<ShownResult> = outcomes
        .into_iter()
        .zip(shown_inputs)
        .map(|(outcome, input)| ShownResult {
            input,
            outputs: outcome
                .outputs
                .into_iter()
                .map(|output| {
                    let (payload, cut) = shaper.payload(&output.message.payload, DEFAULT_MAX_BYTES);
                    ShownOutput {
                        payload,
                        cut,
                        metadata: metadata(&output.message.metadata),
                        route: output.route,
                    }
                })
                .collect(),
            error: outcome.error.map(|(error_type, step, message)| ShownError {
                error_type,
                step,
                message,
            }),
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "results": results })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_are_documents_or_messages_with_metadata() {
        let plain = DryRunInput::from_json(&json!({"id": 1, "payload": 2})).unwrap();
        assert_eq!(plain.0.payload, br#"{"id":1,"payload":2}"#);
        let message =
            DryRunInput::from_json(&json!({"payload": {"id": 1}, "metadata": {"topic": "orders"}}))
                .unwrap();
        assert_eq!(message.0.payload, br#"{"id":1}"#);
        assert_eq!(
            message.0.metadata,
            [("topic".to_owned(), "orders".to_owned())]
        );
        let text = DryRunInput::from_json(&json!({"payload": "not json"})).unwrap();
        assert_eq!(text.0.payload, b"not json");
        assert!(
            DryRunInput::from_json(&json!({"payload": 1, "metadata": {"n": 1}}))
                .unwrap_err()
                .contains("metadata.n")
        );
    }
}
