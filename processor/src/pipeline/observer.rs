//! What the pipeline reports as it works: metrics when they are served, nothing
//! otherwise. Every call is made once per batch, never per message.

use std::time::Duration;

use dataflow_api::ErrorType;
use dataflow_wasm_host::{ChainFailure, GroupRun};

use crate::connectors::Rejected;

/// Which outlet a write went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkSlot {
    /// The main sink.
    Main,
    /// The error sink.
    Errors,
    /// A router route's sink, by route index.
    Route(usize),
}

/// Receives the pipeline's events. Every method does nothing by default.
pub trait Observer: Send + Sync {
    /// The connectors are open and the flow runs; each pipeline queue holds at
    /// most about `queue_capacity` messages.
    fn started(&self, _queue_capacity: usize) {}

    /// A sink other than the main one was opened.
    fn sink_opened(&self, _slot: SinkSlot) {}

    /// The flow has stopped (finished, signalled or failed).
    fn stopped(&self) {}

    /// A batch was read: `messages` decoded (of `bytes` in all) and `rejected`
    /// undecodable ones, in `took`.
    fn batch_read(&self, _messages: usize, _bytes: usize, _rejected: &[Rejected], _took: Duration) {
    }

    /// The source failed.
    fn read_failed(&self, _error_type: ErrorType) {}

    /// Whether [`Observer::committed`] is wanted (it costs a look at the
    /// metadata of each batch handed out with a position).
    fn wants_positions(&self) -> bool {
        false
    }

    /// The source committed up to these positions (`topic/partition@offset`
    /// for each Kafka partition of the batch, else the last message's).
    fn committed(&self, _positions: &[String]) {}

    /// The transform stage took a batch of `messages` that waited `waited`.
    fn dequeued(&self, _messages: usize, _waited: Duration) {}

    /// A part of a batch's results is ready: its failures, and the messages (and
    /// their bytes) handed on to the writers.
    fn transformed_part(
        &self,
        _failures: &[ChainFailure],
        _handed_on: usize,
        _output_bytes: usize,
    ) {
    }

    /// The chain finished a batch: per-group results and the whole time.
    fn transformed(&self, _runs: &[GroupRun], _took: Duration) {}

    /// The writers took a batch of `messages` from the output queue after `waited`.
    fn accepted(&self, _messages: usize, _waited: Duration) {}

    /// One write to a sink took `took`; `ok` when no message was refused.
    fn sink_wrote(&self, _slot: SinkSlot, _took: Duration, _ok: bool) {}

    /// A sink refused messages.
    fn sink_refused(&self, _slot: SinkSlot, _rejected: &[Rejected]) {}

    /// `count` more messages are durable in the sink of `slot`.
    fn durable(&self, _slot: SinkSlot, _count: u64) {}

    /// The writers handed a whole batch to the sinks: `took` for the write stage,
    /// `processing` since the transform stage took it, `end_to_end` since it was read.
    fn batch_written(&self, _took: Duration, _processing: Duration, _end_to_end: Duration) {}
}

/// The observer of a flow whose metrics nobody serves.
pub struct Unobserved;

impl Observer for Unobserved {}

/// Several observers told the same events, in order.
pub struct Observers(pub Vec<std::sync::Arc<dyn Observer>>);

impl Observer for Observers {
    fn started(&self, queue_capacity: usize) {
        self.0.iter().for_each(|o| o.started(queue_capacity));
    }

    fn sink_opened(&self, slot: SinkSlot) {
        self.0.iter().for_each(|o| o.sink_opened(slot));
    }

    fn stopped(&self) {
        self.0.iter().for_each(|o| o.stopped());
    }

    fn batch_read(&self, messages: usize, bytes: usize, rejected: &[Rejected], took: Duration) {
        self.0
            .iter()
            .for_each(|o| o.batch_read(messages, bytes, rejected, took));
    }

    fn wants_positions(&self) -> bool {
        self.0.iter().any(|o| o.wants_positions())
    }

    fn committed(&self, positions: &[String]) {
        self.0.iter().for_each(|o| o.committed(positions));
    }

    fn read_failed(&self, error_type: ErrorType) {
        self.0.iter().for_each(|o| o.read_failed(error_type));
    }

    fn dequeued(&self, messages: usize, waited: Duration) {
        self.0.iter().for_each(|o| o.dequeued(messages, waited));
    }

    fn transformed_part(&self, failures: &[ChainFailure], handed_on: usize, output_bytes: usize) {
        self.0
            .iter()
            .for_each(|o| o.transformed_part(failures, handed_on, output_bytes));
    }

    fn transformed(&self, runs: &[GroupRun], took: Duration) {
        self.0.iter().for_each(|o| o.transformed(runs, took));
    }

    fn accepted(&self, messages: usize, waited: Duration) {
        self.0.iter().for_each(|o| o.accepted(messages, waited));
    }

    fn sink_wrote(&self, slot: SinkSlot, took: Duration, ok: bool) {
        self.0.iter().for_each(|o| o.sink_wrote(slot, took, ok));
    }

    fn sink_refused(&self, slot: SinkSlot, rejected: &[Rejected]) {
        self.0.iter().for_each(|o| o.sink_refused(slot, rejected));
    }

    fn durable(&self, slot: SinkSlot, count: u64) {
        self.0.iter().for_each(|o| o.durable(slot, count));
    }

    fn batch_written(&self, took: Duration, processing: Duration, end_to_end: Duration) {
        self.0
            .iter()
            .for_each(|o| o.batch_written(took, processing, end_to_end));
    }
}
