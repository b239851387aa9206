//! What the pipeline shows of the messages it moves: the tap's source, sink,
//! route and error points, and the recent failures of every stage. (The tap's
//! step points are the chain's: see `dataflow_wasm_host::ChainProbe`.) Each call
//! is made once per batch; a point nobody watches costs one atomic load.

use std::sync::Arc;

use dataflow_api::Stage;
use dataflow_core::Message;
use dataflow_inspect::{FailureView, Failures, Point, Tap};
use dataflow_wasm_host::ChainFailure;

use crate::connectors::Rejected;

/// The tap and the recent failures of a flow, as the pipeline feeds them.
#[derive(Clone)]
pub struct Watchers {
    /// The tap.
    pub tap: Arc<Tap>,
    /// The recent failures.
    pub failures: Arc<Failures>,
    /// The spec's last transformation, which puts out what reaches the sinks.
    pub last_step: Option<usize>,
    /// The router's step, which puts out what reaches the route sinks.
    pub router_step: Option<usize>,
}

impl Watchers {
    /// A batch as the source read it.
    pub(super) fn source(&self, inputs: &[Message]) {
        if self.tap.wants(Point::Source) {
            self.tap.offer(Point::Source, None, inputs);
        }
    }

    /// A part of a batch's results, sorted by destination.
    pub(super) fn sorted(&self, main: &[Message], routes: &[Vec<Message>]) {
        if self.tap.wants(Point::Sink) {
            self.tap.offer(Point::Sink, self.last_step, main);
        }
        for (index, route) in routes.iter().enumerate() {
            if !route.is_empty() && self.tap.wants(Point::Route(index)) {
                self.tap.offer(Point::Route(index), self.router_step, route);
            }
        }
    }

    /// Error records on their way to the error sink.
    pub(super) fn error_records(&self, records: &[Message]) {
        if !records.is_empty() && self.tap.wants(Point::Errors) {
            self.tap.offer_errors(records);
        }
    }

    /// Messages the source could not decode.
    pub(super) fn unreadable(&self, rejected: &[Rejected]) {
        self.rejected(Stage::Read, rejected);
    }

    /// Messages a sink refused.
    pub(super) fn refused(&self, rejected: &[Rejected]) {
        self.rejected(Stage::SinkWrite, rejected);
    }

    fn rejected(&self, stage: Stage, rejected: &[Rejected]) {
        self.failures.record(
            self.tap.shaper(),
            rejected.iter().map(|r| FailureView {
                error_type: r.error_type.as_str(),
                stage: stage.as_str(),
                step: None,
                message: &r.reason,
                original: &r.message,
            }),
        );
    }

    /// Messages the chain failed; `inputs` is the batch it ran on.
    pub(super) fn chain_failed(&self, failures: &[ChainFailure], inputs: &[Message]) {
        self.failures.record(
            self.tap.shaper(),
            failures.iter().map(|f| FailureView {
                error_type: f.error_type.as_str(),
                stage: f.stage.as_str(),
                step: f.transformer_index,
                message: &f.message,
                original: &inputs[f.origin],
            }),
        );
    }
}
