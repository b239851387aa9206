//! Live figures of a flow, the same numbers its metrics carry, readable without
//! Prometheus: messages in, out and failed per step, written and refused per
//! sink, what waits in the queues, the source's position and the phase; and a
//! history of the last 15 minutes for charts.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::time::Instant;

use crate::point::Layout;
use crate::sample::now;

/// Seconds between two points of the history.
pub const HISTORY_STEP_SECONDS: u64 = 5;
/// Points of history kept: 15 minutes.
pub const HISTORY_POINTS: usize = 180;

#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct StepCounters {
    received: Counter,
    emitted: Counter,
    failed: Counter,
}

#[derive(Default)]
struct SinkCounters {
    written: Counter,
    refused: Counter,
}

/// Which sink a figure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFigure {
    /// The main sink.
    Main,
    /// The error sink.
    Errors,
    /// A route's sink.
    Route(usize),
}

/// The counters of one flow, updated by the pipeline once per batch.
pub struct Figures {
    layout: Layout,
    read: Counter,
    read_failed: Counter,
    steps: Vec<StepCounters>,
    main: SinkCounters,
    errors: SinkCounters,
    routes: Vec<SinkCounters>,
    waiting_transform: AtomicU64,
    waiting_write: AtomicU64,
    queue_capacity: AtomicU64,
    state: Mutex<State>,
}

/// The most places (Kafka partitions) a position keeps.
pub const MAX_POSITION_PLACES: usize = 1024;

struct State {
    phase: String,
    position: Option<serde_json::Map<String, serde_json::Value>>,
    history: VecDeque<(Instant, Snapshot)>,
}

/// Totals at one moment, for rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Messages read.
    pub read: u64,
    /// Messages written to the main and route sinks.
    pub written: u64,
    /// Messages that failed (any stage).
    pub failed: u64,
}

/// One step's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepFigures {
    /// Its index in `spec.transformations`.
    pub index: usize,
    /// Messages it was given.
    #[serde(rename = "in")]
    pub received: u64,
    /// Messages it put out.
    pub out: u64,
    /// Messages it failed.
    pub failed: u64,
}

/// One sink's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SinkFigures {
    /// `sink`, `errors` or `route:N`.
    pub at: String,
    /// Messages durable in it.
    pub written: u64,
    /// Messages it refused (sent on to the error sink).
    pub refused: u64,
}

/// The figures at one moment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    /// When (RFC 3339).
    pub time: String,
    /// `starting`, `running`, `stopping`, `stopped` or `failed`.
    pub phase: String,
    /// Totals.
    #[serde(flatten)]
    pub totals: Totals,
    /// Messages read that could not be decoded.
    pub read_failed: u64,
    /// Messages a second read, since the previous snapshot.
    pub read_rate: f64,
    /// Messages a second written.
    pub written_rate: f64,
    /// Messages a second failed.
    pub failed_rate: f64,
    /// Per step.
    pub steps: Vec<StepFigures>,
    /// Per sink.
    pub sinks: Vec<SinkFigures>,
    /// Messages waiting for the transform stage, and for the writers.
    pub queued: [u64; 2],
    /// About how many messages each queue holds at most.
    pub queue_capacity: u64,
    /// Where the source has committed to, by place: `{"orders/0": "1041"}`
    /// for Kafka (the last offset written, per partition), `{"lsn": ...}`,
    /// `{"cursor": ...}` for the other sources that keep a position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Figures {
    /// The figures of a flow of `layout`, all zero.
    pub fn new(layout: Layout) -> Self {
        Self {
            layout,
            read: Counter::default(),
            read_failed: Counter::default(),
            steps: (0..layout.steps).map(|_| StepCounters::default()).collect(),
            main: SinkCounters::default(),
            errors: SinkCounters::default(),
            routes: (0..layout.routes)
                .map(|_| SinkCounters::default())
                .collect(),
            waiting_transform: AtomicU64::new(0),
            waiting_write: AtomicU64::new(0),
            queue_capacity: AtomicU64::new(0),
            state: Mutex::new(State {
                phase: "starting".into(),
                position: None,
                history: VecDeque::with_capacity(HISTORY_POINTS),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The flow's phase.
    pub fn set_phase(&self, phase: &str) {
        self.state().phase = phase.to_owned();
    }

    /// The source committed up to the message at `position`, as
    /// [`crate::failures::position`] writes it (`topic/partition@offset`, or
    /// `lsn 0/16B3748`): kept per place, at most [`MAX_POSITION_PLACES`].
    pub fn committed(&self, position: &str) {
        let (place, at) = position
            .rsplit_once('@')
            .or_else(|| position.split_once(' '))
            .unwrap_or(("position", position));
        let mut state = self.state();
        let places = state.position.get_or_insert_with(serde_json::Map::new);
        if places.len() < MAX_POSITION_PLACES || places.contains_key(place) {
            places.insert(place.to_owned(), serde_json::Value::String(at.to_owned()));
        }
    }

    /// The queues hold at most about `capacity` messages each.
    pub fn set_queue_capacity(&self, capacity: u64) {
        self.queue_capacity.store(capacity, Ordering::Relaxed);
    }

    /// A batch was read: `messages` decoded and `failed` undecodable.
    pub fn read(&self, messages: u64, failed: u64) {
        self.read.add(messages + failed);
        self.read_failed.add(failed);
        self.waiting_transform
            .fetch_add(messages + failed, Ordering::Relaxed);
    }

    /// The transform stage took `messages`.
    pub fn dequeued(&self, messages: u64) {
        let _ = self
            .waiting_transform
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(messages))
            });
    }

    /// Step `index` was given `received` messages, put out `emitted` and failed `failed`.
    pub fn step(&self, index: usize, received: u64, emitted: u64, failed: u64) {
        if let Some(step) = self.steps.get(index) {
            step.received.add(received);
            step.emitted.add(emitted);
            step.failed.add(failed);
        }
    }

    /// `messages` were handed on to the writers.
    pub fn handed_on(&self, messages: u64) {
        self.waiting_write.fetch_add(messages, Ordering::Relaxed);
    }

    /// The writers took `messages`.
    pub fn accepted(&self, messages: u64) {
        let _ = self
            .waiting_write
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(messages))
            });
    }

    fn sink_counters(&self, sink: SinkFigure) -> Option<&SinkCounters> {
        match sink {
            SinkFigure::Main => Some(&self.main),
            SinkFigure::Errors => Some(&self.errors),
            SinkFigure::Route(n) => self.routes.get(n),
        }
    }

    /// `count` more messages are durable in `sink`.
    pub fn written(&self, sink: SinkFigure, count: u64) {
        if let Some(counters) = self.sink_counters(sink) {
            counters.written.add(count);
        }
    }

    /// `sink` refused `count` messages.
    pub fn refused(&self, sink: SinkFigure, count: u64) {
        if let Some(counters) = self.sink_counters(sink) {
            counters.refused.add(count);
        }
    }

    fn totals(&self) -> Totals {
        let failed = self.read_failed.get()
            + self.steps.iter().map(|s| s.failed.get()).sum::<u64>()
            + self.main.refused.get()
            + self.routes.iter().map(|r| r.refused.get()).sum::<u64>();
        Totals {
            read: self.read.get(),
            written: self.main.written.get()
                + self.routes.iter().map(|r| r.written.get()).sum::<u64>(),
            failed,
        }
    }

    /// The figures now; rates over the time since the newest point of the
    /// history at least a second old (so readers do not disturb each other).
    pub fn snapshot(&self) -> Snapshot {
        let state = self.state();
        self.snapshot_with(&state, Instant::now())
    }

    fn snapshot_with(&self, state: &State, at: Instant) -> Snapshot {
        let totals = self.totals();
        let base = state
            .history
            .iter()
            .rev()
            .find(|(then, _)| at.duration_since(*then).as_secs_f64() >= 1.0);
        let rates = match base {
            Some((then, before)) => {
                let seconds = at.duration_since(*then).as_secs_f64();
                let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / seconds;
                [
                    rate(totals.read, before.totals.read),
                    rate(totals.written, before.totals.written),
                    rate(totals.failed, before.totals.failed),
                ]
            }
            None => [0.0; 3],
        };
        let sink = |at: String, c: &SinkCounters| SinkFigures {
            at,
            written: c.written.get(),
            refused: c.refused.get(),
        };
        let mut sinks = vec![
            sink("sink".into(), &self.main),
            sink("errors".into(), &self.errors),
        ];
        sinks.extend(
            self.routes
                .iter()
                .enumerate()
                .map(|(i, c)| sink(format!("route:{i}"), c)),
        );
        Snapshot {
            time: now(),
            phase: state.phase.clone(),
            totals,
            read_failed: self.read_failed.get(),
            read_rate: rates[0],
            written_rate: rates[1],
            failed_rate: rates[2],
            steps: self
                .steps
                .iter()
                .enumerate()
                .map(|(index, s)| StepFigures {
                    index,
                    received: s.received.get(),
                    out: s.emitted.get(),
                    failed: s.failed.get(),
                })
                .collect(),
            sinks,
            queued: [
                self.waiting_transform.load(Ordering::Relaxed),
                self.waiting_write.load(Ordering::Relaxed),
            ],
            queue_capacity: self.queue_capacity.load(Ordering::Relaxed),
            position: state.position.clone(),
        }
    }

    /// Adds a point to the history (called every [`HISTORY_STEP_SECONDS`]).
    pub fn record_history(&self) {
        let mut state = self.state();
        let at = Instant::now();
        let snapshot = self.snapshot_with(&state, at);
        if state.history.len() == HISTORY_POINTS {
            state.history.pop_front();
        }
        state.history.push_back((at, snapshot));
    }

    /// The history, oldest first.
    pub fn history(&self) -> Vec<Snapshot> {
        self.state()
            .history
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// The flow's steps and routes.
    pub fn layout(&self) -> Layout {
        self.layout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn figures_add_up_and_rates_follow_the_clock() {
        let figures = Figures::new(Layout {
            steps: 2,
            routes: 1,
        });
        figures.record_history();
        figures.read(100, 2);
        figures.dequeued(60);
        figures.step(0, 100, 90, 10);
        figures.step(1, 90, 80, 0);
        figures.handed_on(80);
        figures.accepted(50);
        figures.written(SinkFigure::Main, 70);
        figures.written(SinkFigure::Route(0), 10);
        figures.refused(SinkFigure::Main, 3);
        figures.written(SinkFigure::Errors, 15);
        figures.committed("orders/0@99");
        figures.committed("orders/0@101");
        figures.committed("orders/1@7");
        figures.set_phase("running");
        tokio::time::advance(Duration::from_secs(2)).await;
        let snapshot = figures.snapshot();
        assert_eq!(
            snapshot.totals,
            Totals {
                read: 102,
                written: 80,
                failed: 15
            }
        );
        assert_eq!(snapshot.read_rate, 51.0);
        assert_eq!(snapshot.written_rate, 40.0);
        assert_eq!(snapshot.queued, [42, 30]);
        assert_eq!(snapshot.steps[0].failed, 10);
        assert_eq!(snapshot.sinks[2].at, "route:0");
        assert_eq!(snapshot.phase, "running");
        let position = snapshot.position.unwrap();
        assert_eq!(position["orders/0"], "101");
        assert_eq!(position["orders/1"], "7");
    }

    #[tokio::test(start_paused = true)]
    async fn the_history_keeps_fifteen_minutes() {
        let figures = Figures::new(Layout {
            steps: 0,
            routes: 0,
        });
        for _ in 0..HISTORY_POINTS + 5 {
            figures.record_history();
            tokio::time::advance(Duration::from_secs(HISTORY_STEP_SECONDS)).await;
        }
        assert_eq!(figures.history().len(), HISTORY_POINTS);
    }
}
