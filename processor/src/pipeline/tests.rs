//! The delivery rules, checked with in-memory connectors: acks wait for every
//! outlet, completion out of order, late refusals through the error sink, a
//! refusing error sink, a failing sink, and the drain at shutdown.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dataflow_api::{ErrorType, SinkType, Stage};
use dataflow_core::Message;
use dataflow_wasm_host::{ChainFailure, ChainOutput, GroupRun};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::connectors::{
    Ack, BatchLimit, ConnectorError, PositionLog, Rejected, Sink, Source, SourceBatch,
};

fn message(text: &str) -> Message {
    Message {
        payload: text.as_bytes().to_vec(),
        metadata: Vec::new(),
    }
}

/// Hands out fixed batches (each with an ack), then ends or waits forever;
/// records which batches were committed.
struct ScriptedSource {
    batches: VecDeque<Vec<Message>>,
    log: PositionLog<usize>,
    next: usize,
    end: bool,
    committed: Arc<Mutex<Vec<usize>>>,
}

impl ScriptedSource {
    fn new(batches: &[&[&str]], end: bool) -> (Self, Arc<Mutex<Vec<usize>>>) {
        let committed = Arc::new(Mutex::new(Vec::new()));
        let source = Self {
            batches: batches
                .iter()
                .map(|b| b.iter().map(|t| message(t)).collect())
                .collect(),
            log: PositionLog::default(),
            next: 0,
            end,
            committed: committed.clone(),
        };
        (source, committed)
    }
}

#[async_trait]
impl Source for ScriptedSource {
    async fn wait_for_input(&mut self) -> Result<(), ConnectorError> {
        if self.batches.is_empty() && !self.end {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn next_batch(
        &mut self,
        _limit: BatchLimit,
    ) -> Result<Option<SourceBatch>, ConnectorError> {
        match self.batches.pop_front() {
            Some(messages) => {
                let ack = self.log.record(self.next);
                self.next += 1;
                Ok(Some(SourceBatch {
                    messages,
                    rejected: Vec::new(),
                    ack: Some(ack),
                }))
            }
            None => Ok(None),
        }
    }

    async fn commit(&mut self, ack: Ack) -> Result<(), ConnectorError> {
        let batch = self
            .log
            .release_latest(ack)
            .map_err(|cause| ConnectorError::Ack {
                connector: "scripted".into(),
                cause,
            })?;
        self.committed.lock().unwrap().push(batch);
        Ok(())
    }
}

/// What a test sees of a [`GatedSink`] and how it steers it.
#[derive(Default)]
struct Gate {
    /// Messages the test lets become durable (in arrival order).
    released: AtomicUsize,
    /// Everything written so far, in order; durable or not.
    received: Mutex<Vec<String>>,
    /// Messages made durable.
    durable: AtomicUsize,
}

impl Gate {
    fn release(&self, count: usize) {
        self.released.fetch_add(count, Ordering::SeqCst);
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

/// A sink writing in the background: a message becomes durable only when the test
/// releases it (or at flush). Messages containing `refuse_marker` are refused when
/// they become durable (a late refusal); writing a message containing `fatal` fails.
struct GatedSink {
    gate: Arc<Gate>,
    in_flight: VecDeque<Message>,
    refuse_marker: Option<&'static str>,
    refuse_all: bool,
}

impl GatedSink {
    fn new() -> (Self, Arc<Gate>) {
        let gate = Arc::new(Gate::default());
        (
            Self {
                gate: gate.clone(),
                in_flight: VecDeque::new(),
                refuse_marker: None,
                refuse_all: false,
            },
            gate,
        )
    }

    /// Moves up to `count` messages out of flight; returns the refused ones.
    fn land(&mut self, count: usize) -> Vec<Rejected> {
        let mut refused = Vec::new();
        for _ in 0..count {
            let Some(message) = self.in_flight.pop_front() else {
                break;
            };
            self.gate.durable.fetch_add(1, Ordering::SeqCst);
            let marked = self.refuse_marker.is_some_and(|marker| {
                message
                    .payload
                    .windows(marker.len())
                    .any(|w| w == marker.as_bytes())
            });
            if self.refuse_all || marked {
                refused.push(Rejected {
                    message,
                    error_type: ErrorType::InvalidData,
                    reason: "refused by the test".into(),
                });
            }
        }
        refused
    }
}

#[async_trait]
impl Sink for GatedSink {
    async fn write(&mut self, messages: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError> {
        for m in &messages {
            let text = String::from_utf8_lossy(&m.payload).into_owned();
            if text.contains("fatal") {
                return Err(ConnectorError::Failed {
                    connector: "gated sink".into(),
                    error_type: ErrorType::Failed,
                    reason: "stack depth limit exceeded".into(),
                });
            }
            self.gate.received.lock().unwrap().push(text);
        }
        self.in_flight.extend(messages);
        Ok(Vec::new())
    }

    async fn flush(&mut self) -> Result<Vec<Rejected>, ConnectorError> {
        let all = self.in_flight.len();
        Ok(self.land(all))
    }

    fn buffered(&self) -> usize {
        self.in_flight.len()
    }

    async fn settle(&mut self) -> Result<Vec<Rejected>, ConnectorError> {
        let landed = self.gate.durable.load(Ordering::SeqCst);
        let allowed = self.gate.released.load(Ordering::SeqCst);
        Ok(self.land(allowed.saturating_sub(landed)))
    }

    fn in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }
}

/// Passes messages on; fails those containing `bad`; routes those containing
/// `route0` to route 0.
struct PassThrough;

impl BatchTransform for PassThrough {
    fn run_parts(&mut self, inputs: &mut [Message], emit: &mut dyn FnMut(ChainOutput)) {
        let mut output = ChainOutput {
            last: true,
            ..ChainOutput::default()
        };
        for (origin, input) in inputs.iter().enumerate() {
            let text = String::from_utf8_lossy(&input.payload);
            if text.contains("bad") {
                output.failures.push(ChainFailure {
                    origin,
                    transformer_index: Some(0),
                    error_type: ErrorType::InvalidData,
                    stage: Stage::Transform,
                    message: "bad input".into(),
                });
                continue;
            }
            let mut out = input.clone();
            if text.contains("route0") {
                out.metadata.push(("route".into(), "0".into()));
            }
            output.outputs.push(out);
            output.origins.push(origin);
        }
        emit(output);
    }

    fn last_runs(&self) -> &[GroupRun] {
        &[]
    }
}

fn named(sink: GatedSink) -> NamedSink {
    NamedSink {
        kind: SinkType::File,
        sink: Box::new(sink),
    }
}

fn parts(source: ScriptedSource, outlets: Outlets) -> Parts {
    Parts {
        source: Box::new(source),
        outlets,
        transform: Box::new(PassThrough),
        observer: Arc::new(Unobserved),
        progress: Arc::default(),
        watchers: None,
    }
}

/// Polls `check` every 5 ms for up to 5 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Lets the pipeline run a little, for checks that something does not happen.
async fn settle_a_while() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn acks_wait_until_every_outlet_is_durable() {
    let (source, committed) = ScriptedSource::new(&[&["a1", "a2"], &["b1"], &["c1"]], false);
    let (main, main_gate) = GatedSink::new();
    let (errors, _) = GatedSink::new();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(run(
        parts(
            source,
            Outlets {
                main: named(main),
                errors: Some(named(errors)),
                routes: Vec::new(),
            },
        ),
        shutdown.clone(),
        PipelineConfig::default(),
    ));
    eventually("all four messages reach the sink", || {
        main_gate.received().len() == 4
    })
    .await;
    settle_a_while().await;
    assert!(
        committed.lock().unwrap().is_empty(),
        "nothing is durable yet"
    );
    main_gate.release(2);
    eventually("the first batch is committed", || {
        *committed.lock().unwrap() == [0]
    })
    .await;
    settle_a_while().await;
    assert_eq!(*committed.lock().unwrap(), [0], "b1 is not durable yet");
    main_gate.release(2);
    eventually("every batch is committed", || {
        *committed.lock().unwrap() == [0, 1, 2]
    })
    .await;
    shutdown.cancel();
    let summary = run.await.unwrap().expect("clean stop");
    assert_eq!(
        (summary.processed, summary.written, summary.errors),
        (4, 4, 0)
    );
}

#[tokio::test]
async fn outlets_completing_out_of_order_hold_the_ack_for_the_slowest() {
    let (source, committed) = ScriptedSource::new(&[&["m1", "route0-1"], &["m2"]], false);
    let (main, main_gate) = GatedSink::new();
    let (route, route_gate) = GatedSink::new();
    let route = std::sync::Mutex::new(Some(route));
    let route: Box<dyn Sink> = Box::new(route.lock().unwrap().take().unwrap());
    let route = std::sync::Mutex::new(Some(route));
    let opener: OpenRoute = Box::new(move || {
        let sink = route.lock().unwrap().take();
        Box::pin(async move {
            sink.ok_or_else(|| ConnectorError::Failed {
                connector: "route".into(),
                error_type: ErrorType::Failed,
                reason: "opened twice".into(),
            })
        })
    });
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(run(
        parts(
            source,
            Outlets {
                main: named(main),
                errors: None,
                routes: vec![RouteSink {
                    kind: SinkType::File,
                    open: opener,
                }],
            },
        ),
        shutdown.clone(),
        PipelineConfig::default(),
    ));
    eventually("the route got its message", || {
        route_gate.received() == ["route0-1"]
    })
    .await;
    eventually("the main sink got two", || main_gate.received().len() == 2).await;
    // The main sink finishes everything first: the first batch still waits for
    // its route message.
    main_gate.release(2);
    settle_a_while().await;
    assert!(
        committed.lock().unwrap().is_empty(),
        "route message not durable"
    );
    route_gate.release(1);
    eventually("both batches are committed", || {
        *committed.lock().unwrap() == [0, 1]
    })
    .await;
    shutdown.cancel();
    run.await.unwrap().expect("clean stop");
}

#[tokio::test]
async fn late_refusals_reach_the_error_sink_before_their_batch_is_acked() {
    let (source, committed) = ScriptedSource::new(&[&["ok", "refuse-me"], &["bad"]], false);
    let (mut main, main_gate) = GatedSink::new();
    main.refuse_marker = Some("refuse");
    let (errors, error_gate) = GatedSink::new();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(run(
        parts(
            source,
            Outlets {
                main: named(main),
                errors: Some(named(errors)),
                routes: Vec::new(),
            },
        ),
        shutdown.clone(),
        PipelineConfig::default(),
    ));
    // "bad" fails in the transform: its error record goes straight to the error sink.
    eventually("the transform failure is recorded", || {
        error_gate.received().len() == 1
    })
    .await;
    main_gate.release(2);
    eventually("the late refusal is recorded", || {
        error_gate.received().len() == 2
    })
    .await;
    let records = error_gate.received();
    let refusal: serde_json::Value = serde_json::from_str(&records[1]).unwrap();
    assert_eq!(refusal["error"]["stage"], "sink_write");
    assert_eq!(refusal["original_message"]["original_data"], "refuse-me");
    settle_a_while().await;
    assert!(
        committed.lock().unwrap().is_empty(),
        "the error records are not durable yet"
    );
    error_gate.release(1);
    settle_a_while().await;
    assert!(
        committed.lock().unwrap().is_empty(),
        "one error record still in flight"
    );
    error_gate.release(1);
    eventually("both batches are committed", || {
        *committed.lock().unwrap() == [0, 1]
    })
    .await;
    shutdown.cancel();
    let summary = run.await.unwrap().expect("clean stop");
    assert_eq!((summary.written, summary.errors), (1, 2));
}

#[tokio::test]
async fn a_refusing_error_sink_stops_the_flow_without_acking_its_batch() {
    let (source, committed) = ScriptedSource::new(&[&["ok"], &["bad"], &["later"]], false);
    let (main, main_gate) = GatedSink::new();
    let (mut errors, error_gate) = GatedSink::new();
    errors.refuse_all = true;
    main_gate.release(100);
    error_gate.release(100);
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        run(
            parts(
                source,
                Outlets {
                    main: named(main),
                    errors: Some(named(errors)),
                    routes: Vec::new(),
                },
            ),
            CancellationToken::new(),
            PipelineConfig::default(),
        ),
    )
    .await
    .expect("the flow ends by itself");
    let err = result.expect_err("the refused error record stops the flow");
    assert!(
        matches!(err, PipelineError::ErrorSinkRefused { count: 1, .. }),
        "{err}"
    );
    let committed = committed.lock().unwrap().clone();
    assert!(
        !committed.contains(&1),
        "the failed message's batch is not acked: {committed:?}"
    );
    assert!(
        !committed.contains(&2),
        "nothing after it is acked: {committed:?}"
    );
}

#[tokio::test]
async fn a_fatal_sink_error_ends_the_flow_while_the_source_waits() {
    // The source hands out one batch, then waits for more that never come.
    let (source, committed) = ScriptedSource::new(&[&["fatal"]], false);
    let (main, _gate) = GatedSink::new();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        run(
            parts(
                source,
                Outlets {
                    main: named(main),
                    errors: None,
                    routes: Vec::new(),
                },
            ),
            CancellationToken::new(),
            PipelineConfig::default(),
        ),
    )
    .await
    .expect("a fatal sink error must not leave the flow waiting on its source");
    let err = result.expect_err("fatal");
    assert!(
        err.to_string().contains("stack depth limit exceeded"),
        "{err}"
    );
    assert!(committed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn shutdown_drains_flushes_and_commits_what_was_read() {
    let (source, committed) = ScriptedSource::new(&[&["a"], &["b", "c"]], false);
    let (main, main_gate) = GatedSink::new();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(run(
        parts(
            source,
            Outlets {
                main: named(main),
                errors: None,
                routes: Vec::new(),
            },
        ),
        shutdown.clone(),
        PipelineConfig::default(),
    ));
    eventually("everything was handed to the sink", || {
        main_gate.received().len() == 3
    })
    .await;
    assert!(committed.lock().unwrap().is_empty());
    // Nothing was released: the final flush must make it durable, then commit.
    shutdown.cancel();
    let summary = run.await.unwrap().expect("clean stop");
    assert_eq!(summary.written, 3);
    assert_eq!(*committed.lock().unwrap(), [0, 1]);
}

#[tokio::test]
async fn an_error_record_refused_for_its_content_gets_through_in_its_fallback_form() {
    let (source, committed) = ScriptedSource::new(&[&[r#"{"bad":"a\u0000b"}"#]], true);
    let (main, _main_gate) = GatedSink::new();
    let (mut errors, error_gate) = GatedSink::new();
    // Like PostgreSQL's jsonb, the error sink refuses a NUL character.
    errors.refuse_marker = Some("\\u0000");
    error_gate.release(100);
    let summary = run(
        parts(
            source,
            Outlets {
                main: named(main),
                errors: Some(named(errors)),
                routes: Vec::new(),
            },
        ),
        CancellationToken::new(),
        PipelineConfig::default(),
    )
    .await
    .expect("the fallback record is accepted");
    assert_eq!(summary.errors, 1);
    let records = error_gate.received();
    assert_eq!(records.len(), 2, "the refused record, then its fallback");
    let fallback: serde_json::Value = serde_json::from_str(&records[1]).unwrap();
    assert!(fallback["original_message"]["original_data_base64"].is_string());
    assert_eq!(*committed.lock().unwrap(), [0]);
}

#[test]
fn channel_buffer_size_sets_the_queue_depth_in_whole_batches() {
    let mut spec: dataflow_api::DataFlowSpec =
        serde_norway::from_str("source: {type: stdin}\nsink: {type: stdout}").unwrap();
    assert_eq!(PipelineConfig::for_spec(&spec, 1024, 1).queue_depth, 4);
    spec.channel_buffer_size = Some(5000);
    assert_eq!(PipelineConfig::for_spec(&spec, 1024, 1).queue_depth, 5);
    spec.channel_buffer_size = Some(10);
    assert_eq!(PipelineConfig::for_spec(&spec, 1024, 1).queue_depth, 1);
}
