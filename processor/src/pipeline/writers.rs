//! The writing side: the main, error and route sinks, the error records of what
//! they refuse, and the acks that wait until everything their batch produced is
//! durable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dataflow_api::{ErrorRecord, SinkType, Stage, fallback_record};
use dataflow_core::Message;
use futures::future::BoxFuture;
use tracing::Instrument;

use super::dropped::log_dropped_errors;
use super::ledger::AckLedger;
use super::observer::{Observer, SinkSlot};
use super::transform::Processed;
use super::watchers::Watchers;
use super::{PipelineError, Summary};
use crate::connectors::{Ack, ConnectorError, Rejected, Sink};
use crate::progress::Progress;

/// How often background sink writes are checked for completion.
const SETTLE_INTERVAL: Duration = Duration::from_millis(10);

/// Slot of the main sink.
const MAIN: usize = 0;
/// Slot of the error sink.
const ERRORS: usize = 1;
/// First route slot.
const ROUTES: usize = 2;

/// Opens a route's sink the first time the route is used.
pub type OpenRoute =
    Box<dyn FnOnce() -> BoxFuture<'static, Result<Box<dyn Sink>, ConnectorError>> + Send>;

/// A sink and its type.
pub struct NamedSink {
    /// The connector type (for error records and logs).
    pub kind: SinkType,
    /// The sink.
    pub sink: Box<dyn Sink>,
}

/// A route's sink, opened on first use.
pub struct RouteSink {
    /// The connector type.
    pub kind: SinkType,
    /// How to open it.
    pub open: OpenRoute,
}

/// Every place a flow writes to.
pub struct Outlets {
    /// The main sink.
    pub main: NamedSink,
    /// The error sink, if the spec has one.
    pub errors: Option<NamedSink>,
    /// The router's route sinks, in route order.
    pub routes: Vec<RouteSink>,
}

/// One open sink and how many messages it has been handed.
struct Outlet {
    sink: Box<dyn Sink>,
    kind: SinkType,
    handed: u64,
    /// Messages it refused, so far.
    refused: u64,
    /// Messages already reported to the observer as durably written.
    reported: u64,
}

impl Outlet {
    fn new(named: NamedSink) -> Self {
        Self {
            sink: named.sink,
            kind: named.kind,
            handed: 0,
            refused: 0,
            reported: 0,
        }
    }

    /// Messages handed over that are now durable (written or refused).
    fn durable(&self) -> u64 {
        self.handed - self.sink.buffered() as u64
    }

    /// Messages written since the last call, for the observer.
    fn newly_written(&mut self) -> u64 {
        let written = self.durable().saturating_sub(self.refused);
        let new = written.saturating_sub(self.reported);
        self.reported = self.reported.max(written);
        new
    }
}

/// An outlet slot: open, waiting to be opened on first use, or absent.
enum Slot {
    Open(Outlet),
    Closed(RouteSink),
    Absent,
}

/// Whether an error record is the fallback form of another one.
fn is_fallback(record: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Record {
        error: Error,
    }
    #[derive(serde::Deserialize)]
    struct Error {
        error_sink_refusal: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Record>(record).is_ok_and(|r| r.error.error_sink_refusal.is_some())
}

/// The metrics name of an outlet slot.
fn sink_slot(slot: usize) -> SinkSlot {
    match slot {
        MAIN => SinkSlot::Main,
        ERRORS => SinkSlot::Errors,
        route => SinkSlot::Route(route - ROUTES),
    }
}

/// The writing side of a pipeline.
pub(super) struct Writers {
    /// `[main, errors, route 0, route 1, ...]`.
    slots: Vec<Slot>,
    original_sink: SinkType,
    ledger: AckLedger,
    pub(super) summary: Summary,
    unreported_errors: u64,
    progress: Arc<Progress>,
    observer: Arc<dyn Observer>,
    watchers: Option<Watchers>,
}

impl Writers {
    pub(super) fn new(
        outlets: Outlets,
        progress: Arc<Progress>,
        observer: Arc<dyn Observer>,
        watchers: Option<Watchers>,
    ) -> Self {
        let original_sink = outlets.main.kind;
        let mut slots = vec![
            Slot::Open(Outlet::new(outlets.main)),
            outlets
                .errors
                .map_or(Slot::Absent, |e| Slot::Open(Outlet::new(e))),
        ];
        slots.extend(outlets.routes.into_iter().map(Slot::Closed));
        if matches!(slots[ERRORS], Slot::Open(_)) {
            observer.sink_opened(SinkSlot::Errors);
        }
        Self {
            slots,
            original_sink,
            ledger: AckLedger::default(),
            summary: Summary::default(),
            unreported_errors: 0,
            progress,
            observer,
            watchers,
        }
    }

    /// Number of route sinks.
    pub(super) fn route_count(&self) -> usize {
        self.slots.len() - ROUTES
    }

    /// The type of the main sink.
    pub(super) fn original_sink(&self) -> SinkType {
        self.original_sink
    }

    fn outlet(&mut self, slot: usize) -> Option<&mut Outlet> {
        match self.slots.get_mut(slot) {
            Some(Slot::Open(outlet)) => Some(outlet),
            _ => None,
        }
    }

    /// Hands a transformed batch to its sinks and holds its ack.
    pub(super) async fn accept(&mut self, processed: Processed) -> Result<(), PipelineError> {
        let accepting = Instant::now();
        self.observer
            .accepted(processed.message_count(), accepting - processed.queued_at);
        let (read_at, taken_at) = (processed.read_at, processed.taken_at);
        self.summary.processed += processed.read;
        self.summary.filtered += processed.filtered;
        self.write(MAIN, processed.main).await?;
        for (index, messages) in processed.routes.into_iter().enumerate() {
            if !messages.is_empty() {
                self.write(ROUTES + index, messages).await?;
            }
        }
        self.summary.errors += processed.errors.len() as u64;
        self.write_errors(processed.errors).await?;
        let now = Instant::now();
        self.observer
            .batch_written(now - accepting, now - taken_at, now - read_at);
        self.progress
            .update(self.summary.processed, self.summary.errors);
        if let Some(ack) = processed.ack {
            let handed = self
                .slots
                .iter()
                .map(|slot| match slot {
                    Slot::Open(outlet) => outlet.handed,
                    _ => 0,
                })
                .collect();
            self.ledger.hold(ack, handed);
        }
        Ok(())
    }

    /// Hands `messages` to the outlet in `slot` (opening a route sink on first use);
    /// what it refuses goes to the error sink.
    async fn write(&mut self, slot: usize, messages: Vec<Message>) -> Result<(), PipelineError> {
        if messages.is_empty() {
            return Ok(());
        }
        self.open_route(slot).await?;
        let observer = self.observer.clone();
        let Some(outlet) = self.outlet(slot) else {
            return Ok(());
        };
        let count = messages.len() as u64;
        outlet.handed += count;
        let writing = Instant::now();
        let span = tracing::info_span!("sink", connector_type = outlet.kind.as_str());
        let rejected = outlet.sink.write(messages).instrument(span).await?;
        observer.sink_wrote(sink_slot(slot), writing.elapsed(), rejected.is_empty());
        // What comes back may include messages of earlier writes (a sink writing in
        // the background reports them late); all were counted as written once.
        self.summary.written += count;
        self.summary.written -= rejected.len() as u64;
        self.reject(slot, rejected).await
    }

    /// Opens the route sink of `slot` if it is still closed.
    async fn open_route(&mut self, slot: usize) -> Result<(), PipelineError> {
        if !matches!(self.slots.get(slot), Some(Slot::Closed(_))) {
            return Ok(());
        }
        let Slot::Closed(route) = std::mem::replace(&mut self.slots[slot], Slot::Absent) else {
            return Ok(());
        };
        let sink = (route.open)().await?;
        self.observer.sink_opened(sink_slot(slot));
        self.slots[slot] = Slot::Open(Outlet::new(NamedSink {
            kind: route.kind,
            sink,
        }));
        Ok(())
    }

    /// Turns refused messages into error records for the error sink.
    async fn reject(&mut self, slot: usize, rejected: Vec<Rejected>) -> Result<(), PipelineError> {
        if rejected.is_empty() {
            return Ok(());
        }
        let original_sink = self.original_sink;
        let kind = match self.outlet(slot) {
            Some(outlet) => {
                outlet.refused += rejected.len() as u64;
                outlet.kind
            }
            None => original_sink,
        };
        self.observer.sink_refused(sink_slot(slot), &rejected);
        if let Some(watchers) = &self.watchers {
            watchers.refused(&rejected);
        }
        self.summary.errors += rejected.len() as u64;
        let records = rejected
            .iter()
            .map(|r| Message {
                payload: ErrorRecord {
                    message: &r.reason,
                    error_type: r.error_type,
                    stage: Stage::SinkWrite,
                    original_sink: kind,
                    transformer_index: None,
                    metadata: &r.message.metadata,
                    original: &r.message.payload,
                }
                .to_json(),
                metadata: r.message.metadata.clone(),
            })
            .collect::<Vec<_>>();
        if let Some(watchers) = &self.watchers {
            watchers.error_records(&records);
        }
        self.write_errors(records).await?;
        // These records belong to batches whose acks may be held: those acks now
        // also wait for the error sink to make them durable.
        if let Some(errors) = self.outlet(ERRORS) {
            let handed = errors.handed;
            self.ledger.raise(ERRORS, handed);
        }
        Ok(())
    }

    /// Error records to the error sink, or counted and logged without one.
    async fn write_errors(&mut self, records: Vec<Message>) -> Result<(), PipelineError> {
        if records.is_empty() {
            return Ok(());
        }
        let observer = self.observer.clone();
        let Some(errors) = self.outlet(ERRORS) else {
            log_dropped_errors(&records, &mut self.unreported_errors);
            return Ok(());
        };
        errors.handed += records.len() as u64;
        let writing = Instant::now();
        let refused = errors.sink.write(records).await?;
        errors.refused += refused.len() as u64;
        observer.sink_wrote(SinkSlot::Errors, writing.elapsed(), refused.is_empty());
        self.error_sink_refused(refused).await
    }

    /// The error sink refused error records. Each gets one more try in its
    /// fallback form (no NUL characters, the original as base64); what is refused
    /// again has nowhere to go, so the flow stops before the positions of those
    /// messages are committed.
    async fn error_sink_refused(&mut self, refused: Vec<Rejected>) -> Result<(), PipelineError> {
        if refused.is_empty() {
            return Ok(());
        }
        self.observer.sink_refused(SinkSlot::Errors, &refused);
        // A fallback refused in its turn has nowhere left to go.
        if let Some(again) = refused.iter().find(|r| is_fallback(&r.message.payload)) {
            return Err(PipelineError::ErrorSinkRefused {
                count: refused.len(),
                error_type: again.error_type,
                reason: again.reason.clone(),
            });
        }
        let fallbacks: Vec<Message> = refused
            .iter()
            .map(|r| Message {
                payload: fallback_record(&r.message.payload, &r.reason),
                metadata: r.message.metadata.clone(),
            })
            .collect();
        tracing::warn!(
            records = refused.len(),
            reason = %refused[0].reason,
            "the error sink refused error records; writing them again with the original as base64"
        );
        let Some(errors) = self.outlet(ERRORS) else {
            return Ok(());
        };
        errors.handed += fallbacks.len() as u64;
        let again = errors.sink.write(fallbacks).await?;
        errors.refused += again.len() as u64;
        let Some(first) = again.first() else {
            return Ok(());
        };
        self.observer.sink_refused(SinkSlot::Errors, &again);
        Err(PipelineError::ErrorSinkRefused {
            count: again.len(),
            error_type: first.error_type,
            reason: first.reason.clone(),
        })
    }

    /// The earliest time a buffering sink wants its timer flush, or background
    /// writes want collecting.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let open = || {
            self.slots.iter().filter_map(|slot| match slot {
                Slot::Open(outlet) => Some(outlet),
                _ => None,
            })
        };
        let settle = open()
            .any(|o| o.sink.in_flight())
            .then(|| Instant::now() + SETTLE_INTERVAL);
        open()
            .filter_map(|o| o.sink.flush_deadline())
            .chain(settle)
            .min()
    }

    /// Collects finished background writes and flushes the sinks whose timer is due.
    pub(super) async fn flush_due(&mut self) -> Result<(), PipelineError> {
        for slot in 0..self.slots.len() {
            let rejected = match self.outlet(slot) {
                Some(outlet) if outlet.sink.in_flight() => outlet.sink.settle().await?,
                _ => continue,
            };
            self.account_late_rejections(slot, rejected).await?;
        }
        let now = Instant::now();
        for slot in 0..self.slots.len() {
            let due = self
                .outlet(slot)
                .and_then(|o| o.sink.flush_deadline())
                .is_some_and(|at| at <= now);
            if due {
                self.flush_slot(slot).await?;
            }
        }
        Ok(())
    }

    async fn flush_slot(&mut self, slot: usize) -> Result<(), PipelineError> {
        let rejected = match self.outlet(slot) {
            Some(outlet) => outlet.sink.flush().await?,
            None => return Ok(()),
        };
        self.account_late_rejections(slot, rejected).await
    }

    /// Messages refused after `write` returned (by a flush or a background write):
    /// they were counted as written, so move them to the error count.
    async fn account_late_rejections(
        &mut self,
        slot: usize,
        rejected: Vec<Rejected>,
    ) -> Result<(), PipelineError> {
        if slot == ERRORS {
            if let Some(errors) = self.outlet(ERRORS) {
                errors.refused += rejected.len() as u64;
            }
            self.error_sink_refused(rejected).await?;
            if let Some(errors) = self.outlet(ERRORS) {
                let handed = errors.handed;
                self.ledger.raise(ERRORS, handed);
            }
            return Ok(());
        }
        self.summary.written -= rejected.len() as u64;
        self.reject(slot, rejected).await
    }

    /// Flushes every sink; the error sink last, as flushing the others may add to
    /// it, and again if its own flush wrote fallback records.
    pub(super) async fn flush_all(&mut self) -> Result<(), PipelineError> {
        for slot in (0..self.slots.len()).filter(|&s| s != ERRORS) {
            self.flush_slot(slot).await?;
        }
        // A refusal found by a flush writes fallbacks, whose refusal stops the flow:
        // two flushes settle everything.
        for _ in 0..2 {
            self.flush_slot(ERRORS).await?;
        }
        Ok(())
    }

    /// The acks whose batches are durable in every sink, in order; reports newly
    /// durable messages to the observer.
    pub(super) fn release_acks(&mut self) -> Vec<Ack> {
        let mut durable = Vec::with_capacity(self.slots.len());
        for (slot, entry) in self.slots.iter_mut().enumerate() {
            match entry {
                Slot::Open(outlet) => {
                    let written = outlet.newly_written();
                    if written > 0 {
                        self.observer.durable(sink_slot(slot), written);
                    }
                    durable.push(outlet.durable());
                }
                _ => durable.push(0),
            }
        }
        self.ledger.release(&durable)
    }
}
