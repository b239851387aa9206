use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use dataflow_core::Message;
use dataflow_core::path::FieldPath;
use futures::StreamExt;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::failures::FailureView;
use crate::point::{Layout, Point};
use crate::sample::Shaper;

const TOKEN: &str = "0123456789abcdef0123";

/// Echoes each input to route 0 when it has `"route": true`, fails it when it
/// has `"fail": true`.
struct Echo;

#[async_trait::async_trait]
impl DryRun for Echo {
    async fn run(
        &self,
        inputs: Vec<Message>,
        transformations: Option<serde_json::Value>,
    ) -> Result<Vec<DryRunOutcome>, String> {
        if transformations.is_some_and(|t| !t.is_array()) {
            return Err("transformations: must be a list".into());
        }
        Ok(inputs
            .into_iter()
            .map(|message| {
                let doc: serde_json::Value =
                    serde_json::from_slice(&message.payload).unwrap_or_default();
                if doc["fail"] == true {
                    DryRunOutcome {
                        outputs: vec![],
                        error: Some(("invalid_data".into(), Some(0), "no".into())),
                    }
                } else {
                    DryRunOutcome {
                        outputs: vec![DryRunOutput {
                            route: (doc["route"] == true).then_some(0),
                            message,
                        }],
                        error: None,
                    }
                }
            })
            .collect())
    }
}

fn inspect(payloads_allowed: bool) -> Inspect {
    let layout = Layout {
        steps: 2,
        routes: 1,
    };
    Inspect {
        tap: crate::tap::Tap::new(layout, Shaper::new(vec![FieldPath::parse("card").unwrap()])),
        failures: Arc::new(crate::failures::Failures::default()),
        figures: Arc::new(crate::figures::Figures::new(layout)),
        flow: Arc::new(serde_json::json!({"steps": []})),
        payloads_allowed,
        token: Token::new(TOKEN),
        dry_run: Some(Arc::new(Echo)),
    }
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Body::empty()).unwrap()
}

fn post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn answer(router: &axum::Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn every_request_needs_the_token() {
    let router = inspect(true).router();
    for uri in [
        "/api/v1/flow",
        "/api/v1/figures",
        "/api/v1/failures",
        "/api/v1/tap?at=sink",
    ] {
        let (status, body) = answer(&router, get(uri, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
        let (status, _) = answer(&router, get(uri, Some("0123456789abcdef0124"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (status, body) = answer(&router, get("/api/v1/flow", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["payloads"], true);
    let proxied = Request::get("/api/v1/flow")
        .header("authorization", "Bearer the-users-own-credential")
        .header(TOKEN_HEADER, TOKEN)
        .body(Body::empty())
        .unwrap();
    assert_eq!(answer(&router, proxied).await.0, StatusCode::OK);
    let mut without = inspect(true);
    without.token = None;
    let (status, _) = answer(&without.router(), get("/api/v1/flow", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(Token::new("short").is_none());
}

#[tokio::test]
async fn payloads_stay_hidden_unless_the_flow_allows_them() {
    let closed = inspect(false);
    let failed = Message {
        payload: br#"{"card":"4111","id":1}"#.to_vec(),
        metadata: vec![("topic".into(), "t".into())],
    };
    closed.failures.record(
        closed.tap.shaper(),
        std::iter::once(FailureView {
            error_type: "invalid_data",
            stage: "transform",
            step: Some(0),
            message: "bad",
            original: &failed,
        }),
    );
    let router = closed.router();
    let (status, body) = answer(&router, get("/api/v1/tap?at=sink", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("spec.observability.tap")
    );
    let (status, _) = answer(&router, post("/api/v1/dry-run", r#"{"messages":[{}]}"#)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = answer(&router, get("/api/v1/failures", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 1);
    assert_eq!(body["failures"][0]["message"], "bad");
    assert!(body["failures"][0]["original"].is_null(), "{body}");
    let (_, flow) = answer(&router, get("/api/v1/flow", Some(TOKEN))).await;
    assert_eq!(flow["payloads"], false);
}

#[tokio::test]
async fn bad_points_rates_and_too_many_clients_are_refused_clearly() {
    let shared = inspect(true);
    let router = shared.clone().router();
    for (uri, status, words) in [
        (
            "/api/v1/tap?at=step:9",
            StatusCode::BAD_REQUEST,
            "this flow has 2 transformations",
        ),
        (
            "/api/v1/tap?at=middle",
            StatusCode::BAD_REQUEST,
            "use source, step:N",
        ),
        (
            "/api/v1/tap?at=sink&rate=5000",
            StatusCode::BAD_REQUEST,
            "between 1 and 1000",
        ),
        (
            "/api/v1/tap?at=sink&maxBytes=0",
            StatusCode::BAD_REQUEST,
            "maxBytes 0",
        ),
        ("/api/v1/tap", StatusCode::BAD_REQUEST, "at"),
        (
            "/api/v1/tap?at=sink&colour=red",
            StatusCode::BAD_REQUEST,
            "colour",
        ),
    ] {
        let (got, body) = answer(&router, get(uri, Some(TOKEN))).await;
        assert_eq!(got, status, "{uri}: {body}");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(words),
            "{uri}: {body}"
        );
    }
    let held: Vec<_> = (0..crate::tap::MAX_CLIENTS)
        .map(|_| {
            shared
                .tap
                .subscribe(crate::tap::Watch::new(Point::Sink, None, None).unwrap())
                .unwrap()
        })
        .collect();
    let (status, _) = answer(&router, get("/api/v1/tap?at=sink", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    drop(held);
}

#[tokio::test]
async fn the_tap_streams_samples_as_server_sent_events() {
    let shared = inspect(true);
    let router = shared.clone().router();
    let response = router
        .oneshot(get("/api/v1/tap?at=step:1&rate=100", Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let message = Message {
        payload: br#"{"card":"4111","note":"<script>alert(1)</script>"}"#.to_vec(),
        metadata: vec![],
    };
    shared.tap.offer(Point::Step(1), Some(1), &[message]);
    let mut body = response.into_body().into_data_stream();
    let chunk = body.next().await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&chunk);
    assert!(text.starts_with("event: sample\ndata: "), "{text}");
    let data: serde_json::Value =
        serde_json::from_str(text.trim_start_matches("event: sample\ndata: ").trim()).unwrap();
    assert_eq!(data["payload"]["card"], "***");
    assert_eq!(
        data["payload"]["note"], "<script>alert(1)</script>",
        "data, escaped by whoever shows it"
    );
    assert_eq!(data["step"], 1);
}

#[tokio::test]
async fn the_playground_runs_given_or_sampled_messages_and_masks_what_it_shows() {
    let shared = inspect(true);
    let router = shared.clone().router();
    let (status, body) = answer(
        &router,
        post(
            "/api/v1/dry-run",
            r#"{"messages":[{"id":1,"card":"4111"},{"payload":{"route":true},"metadata":{"k":"v"}},{"fail":true}]}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["outputs"][0]["payload"]["card"], "***");
    assert_eq!(results[0]["input"]["card"], "***");
    assert_eq!(results[1]["outputs"][0]["route"], 0);
    assert_eq!(results[1]["outputs"][0]["metadata"]["k"], "v");
    assert_eq!(results[2]["error"]["type"], "invalid_data");
    assert!(results[2]["outputs"].as_array().unwrap().is_empty());

    // The last sampled messages at a point.
    let _watching = shared
        .tap
        .subscribe(crate::tap::Watch::new(Point::Source, Some(100), None).unwrap())
        .unwrap();
    let sampled: Vec<Message> = (0..5)
        .map(|i| Message {
            payload: format!(r#"{{"id":{i}}}"#).into_bytes(),
            metadata: vec![],
        })
        .collect();
    shared.tap.offer(Point::Source, None, &sampled);
    let (status, body) = answer(
        &router,
        post("/api/v1/dry-run", r#"{"from":{"at":"source","last":2}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][1]["outputs"][0]["payload"]["id"], 4);

    for (request, status, words) in [
        (
            r#"{"messages":[]}"#.to_owned(),
            StatusCode::BAD_REQUEST,
            "no messages",
        ),
        (
            r#"{"messages":[1],"transformations":{}}"#.to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "must be a list",
        ),
        (
            format!(r#"{{"messages":[{}]}}"#, vec!["{}"; 1001].join(",")),
            StatusCode::PAYLOAD_TOO_LARGE,
            "at most 1000",
        ),
        (
            r#"{"messages":[1],"colour":1}"#.to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        ("not json".to_owned(), StatusCode::BAD_REQUEST, ""),
        (
            format!(r#"{{"messages":["{}"]}}"#, "x".repeat(MAX_DRY_RUN_BODY)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
    ] {
        let (got, body) = answer(&router, post("/api/v1/dry-run", &request)).await;
        assert_eq!(got, status, "{}: {body}", &request[..request.len().min(60)]);
        assert!(body.to_string().contains(words), "{body}");
    }
}
