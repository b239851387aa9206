//! `GET /api/v1/tap`: a point's samples as Server-Sent Events.
//!
//! Events: `sample` (a [`Sample`](crate::sample::Sample) as JSON) and `dropped`
//! (`{"dropped": n}`: samples lost because the client read too slowly). A
//! comment every 15 s keeps proxies from closing a quiet stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;

use super::{ApiError, Inspect};
use crate::point::Point;
use crate::tap::{TapError, TapEvent, Watch};

/// The query of a tap request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct TapQuery {
    at: String,
    rate: Option<u64>,
    max_bytes: Option<u64>,
}

pub(super) async fn tap(
    State(inspect): State<Arc<Inspect>>,
    query: Result<Query<TapQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    inspect.payloads()?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let point: Point = query
        .at
        .parse()
        .map_err(|e: crate::point::PointError| ApiError::bad_request(e.to_string()))?;
    let watch = Watch::new(point, query.rate, query.max_bytes)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let subscription = inspect.tap.subscribe(watch).map_err(|e| match e {
        TapError::Busy => ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, e.to_string()),
        other => ApiError::bad_request(other.to_string()),
    })?;
    let events = futures::stream::unfold(subscription, |mut subscription| async move {
        let event = match subscription.next().await? {
            TapEvent::Sample(sample) => Event::default()
                .event("sample")
                .json_data(&*sample)
                .unwrap_or_else(|_| Event::default().comment("unserializable sample")),
            TapEvent::Dropped(count) => Event::default()
                .event("dropped")
                .data(format!("{{\"dropped\":{count}}}")),
        };
        Some((Ok(event), subscription))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
