//! The tap: live samples of the messages passing a point of the flow.
//!
//! The pipeline offers each batch at each point it passes; with no client
//! watching that point, an offer is one atomic load and nothing is copied. A
//! client watches one point at a rate of its choice (at most [`MAX_RATE`]
//! messages a second, default [`DEFAULT_RATE`]); the messages it gets are spread
//! over each batch, masked and cut by the flow's [`Shaper`]. Every client has a
//! bounded queue: when it reads too slowly its samples are dropped, counted and
//! reported to it, and the flow never waits for it. At most [`MAX_CLIENTS`]
//! clients watch at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

use dataflow_core::Message;
use tokio::sync::mpsc;

use crate::point::{Layout, Point, PointError};
use crate::sample::{DEFAULT_MAX_BYTES, MAX_MAX_BYTES, Sample, Shaper, metadata, now};

/// Messages a second a client gets unless it asks for another rate.
pub const DEFAULT_RATE: u32 = 10;
/// The most messages a second one client may ask for.
pub const MAX_RATE: u32 = 1000;
/// The most clients watching at once, over all points.
pub const MAX_CLIENTS: usize = 8;

/// Why a client cannot watch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TapError {
    /// The point does not exist in this flow.
    #[error(transparent)]
    Point(#[from] PointError),
    /// The rate is outside 1..=MAX_RATE.
    #[error("rate {0}: between 1 and {MAX_RATE} messages a second")]
    Rate(u64),
    /// The size limit is outside 1..=MAX_MAX_BYTES.
    #[error("maxBytes {0}: between 1 and {MAX_MAX_BYTES}")]
    MaxBytes(u64),
    /// A count of recent samples outside 1..=RECENT.
    #[error("last {0}: between 1 and {RECENT}")]
    Recent(usize),
    /// MAX_CLIENTS already watch.
    #[error("{MAX_CLIENTS} clients already watch this flow; try again when one leaves")]
    Busy,
}

/// What a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    /// Where.
    pub point: Point,
    /// Messages a second.
    pub rate: u32,
    /// Most payload bytes per sample.
    pub max_bytes: usize,
}

impl Watch {
    /// A watch of `point` at the default rate and size, checked as asked.
    pub fn new(point: Point, rate: Option<u64>, max_bytes: Option<u64>) -> Result<Self, TapError> {
        let rate = rate.unwrap_or(u64::from(DEFAULT_RATE));
        if rate == 0 || rate > u64::from(MAX_RATE) {
            return Err(TapError::Rate(rate));
        }
        let max_bytes = max_bytes.unwrap_or(DEFAULT_MAX_BYTES as u64);
        if max_bytes == 0 || max_bytes > MAX_MAX_BYTES as u64 {
            return Err(TapError::MaxBytes(max_bytes));
        }
        Ok(Self {
            point,
            rate: u32::try_from(rate).unwrap_or(MAX_RATE),
            max_bytes: usize::try_from(max_bytes).unwrap_or(MAX_MAX_BYTES),
        })
    }
}

/// What a watching client receives.
#[derive(Debug, Clone, PartialEq)]
pub enum TapEvent {
    /// A message.
    Sample(Box<Sample>),
    /// Samples lost since the last event because the client read too slowly.
    Dropped(u64),
}

/// The tap of one flow.
pub struct Tap {
    layout: Layout,
    shaper: Shaper,
    slots: Vec<Slot>,
    clients: AtomicUsize,
}

#[derive(Default)]
struct Slot {
    /// Clients watching this point (read on every offer).
    watching: AtomicUsize,
    /// Messages offered here since the start.
    offered: AtomicU64,
    subscribers: Mutex<Vec<Arc<Subscriber>>>,
    /// The last messages sampled here (as they passed, unmasked), for the
    /// playground; at most [`RECENT`] of at most [`MAX_MAX_BYTES`] each.
    recent: Mutex<std::collections::VecDeque<Message>>,
}

/// Messages sampled at a point that are kept for the playground.
pub const RECENT: usize = 100;

struct Subscriber {
    watch: Watch,
    bucket: Mutex<Bucket>,
    queue: mpsc::Sender<Sample>,
    dropped: AtomicU64,
}

/// A token bucket holding at most one second of the rate.
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Self {
            tokens: f64::from(rate),
            rate: f64::from(rate),
            last: Instant::now(),
        }
    }

    /// How many of `offered` messages may be taken now.
    fn take(&mut self, offered: usize) -> usize {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        let whole = self.tokens.floor();
        // `whole` is at most MAX_RATE, so it fits in usize.
        let taken = (whole as usize).min(offered);
        self.tokens -= taken as f64;
        taken
    }
}

/// The indices of `taken` messages spread evenly over `offered`.
fn spread(taken: usize, offered: usize) -> impl Iterator<Item = usize> {
    (0..taken).map(move |i| i * offered / taken.max(1))
}

impl Tap {
    /// The tap of a flow of `layout`, masking and cutting with `shaper`.
    pub fn new(layout: Layout, shaper: Shaper) -> Arc<Self> {
        Arc::new(Self {
            layout,
            shaper,
            slots: (0..layout.len()).map(|_| Slot::default()).collect(),
            clients: AtomicUsize::new(0),
        })
    }

    /// The flow's points.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The masking and cutting of this flow.
    pub fn shaper(&self) -> &Shaper {
        &self.shaper
    }

    fn slot(&self, point: Point) -> Option<&Slot> {
        self.layout.slot(point).ok().map(|i| &self.slots[i])
    }

    /// Whether a client watches `point` (one atomic load).
    pub fn wants(&self, point: Point) -> bool {
        self.slot(point)
            .is_some_and(|slot| slot.watching.load(Ordering::Relaxed) > 0)
    }

    /// Offers the messages passing `point`, put out by `step`.
    pub fn offer(&self, point: Point, step: Option<usize>, messages: &[Message]) {
        self.offer_with(point, messages.len(), |index, seq, max_bytes| {
            let message = &messages[index];
            (
                self.shaper.sample(message, seq, step, max_bytes),
                message.clone(),
            )
        });
    }

    /// Offers error records (each an error-sink document) passing into the error
    /// sink: each sample shows the original message as payload and the error
    /// beside it.
    pub fn offer_errors(&self, records: &[Message]) {
        self.offer_with(Point::Errors, records.len(), |index, seq, max_bytes| {
            let record = &records[index];
            let parsed: serde_json::Value =
                serde_json::from_slice(&record.payload).unwrap_or(serde_json::Value::Null);
            let original = parsed
                .get("original_message")
                .map(|o| serde_json::to_vec(o).unwrap_or_default())
                .or_else(|| {
                    parsed
                        .get("original_data")
                        .and_then(serde_json::Value::as_str)
                        .map(|t| t.as_bytes().to_vec())
                })
                .unwrap_or_default();
            let (payload, cut) = self.shaper.payload(&original, max_bytes);
            let error = parsed.get("error").cloned();
            let bytes = original.len();
            let raw = Message {
                payload: original,
                metadata: record.metadata.clone(),
            };
            let step = error
                .as_ref()
                .and_then(|e| e.get("transformer_index"))
                .and_then(serde_json::Value::as_u64)
                .and_then(|i| usize::try_from(i).ok());
            let sample = Sample {
                seq,
                step,
                time: now(),
                metadata: metadata(&record.metadata),
                payload,
                cut,
                bytes,
                error,
            };
            (sample, raw)
        });
    }

    /// Offers what `offered` messages at `point` became (the tap re-ran the
    /// steps before `point` on them): `derive` is given the indices a client's
    /// rate lets through and returns what they became there.
    pub fn offer_derived(
        &self,
        point: Point,
        step: Option<usize>,
        offered: usize,
        derive: &dyn Fn(&[usize]) -> Vec<Message>,
    ) {
        self.deliver(point, offered, |indices, first, max_bytes| {
            derive(indices)
                .into_iter()
                .enumerate()
                .map(|(i, message)| {
                    let seq = first + indices.get(i).copied().unwrap_or(0) as u64;
                    (self.shaper.sample(&message, seq, step, max_bytes), message)
                })
                .collect()
        });
    }

    fn offer_with(
        &self,
        point: Point,
        offered: usize,
        make: impl Fn(usize, u64, usize) -> (Sample, Message),
    ) {
        self.deliver(point, offered, |indices, first, max_bytes| {
            indices
                .iter()
                .map(|&index| make(index, first + index as u64, max_bytes))
                .collect()
        });
    }

    /// Hands each client of `point` the samples `pick` makes of the indices
    /// its rate lets through (given with the point's count before this offer
    /// and the client's size limit).
    fn deliver(
        &self,
        point: Point,
        offered: usize,
        pick: impl Fn(&[usize], u64, usize) -> Vec<(Sample, Message)>,
    ) {
        let Some(slot) = self.slot(point) else {
            return;
        };
        let first = slot.offered.fetch_add(offered as u64, Ordering::Relaxed);
        if offered == 0 || slot.watching.load(Ordering::Relaxed) == 0 {
            return;
        }
        let subscribers = match slot.subscribers.lock() {
            Ok(list) => list.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for (nth, subscriber) in subscribers.iter().enumerate() {
            let taken = match subscriber.bucket.lock() {
                Ok(mut bucket) => bucket.take(offered),
                Err(_) => 0,
            };
            if taken == 0 {
                continue;
            }
            let indices: Vec<usize> = spread(taken, offered).collect();
            for (sample, raw) in pick(&indices, first, subscriber.watch.max_bytes) {
                if subscriber.queue.try_send(sample).is_err() {
                    subscriber.dropped.fetch_add(1, Ordering::Relaxed);
                }
                // The first client's samples are the ones kept, so none twice.
                if nth == 0 && raw.payload.len() <= MAX_MAX_BYTES {
                    let mut recent = match slot.recent.lock() {
                        Ok(recent) => recent,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    if recent.len() == RECENT {
                        recent.pop_front();
                    }
                    recent.push_back(raw);
                }
            }
        }
    }

    /// Starts watching; the watch ends when the subscription is dropped.
    pub fn subscribe(self: &Arc<Self>, watch: Watch) -> Result<Subscription, TapError> {
        let index = self.layout.slot(watch.point)?;
        let claimed = self
            .clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CLIENTS).then_some(n + 1)
            });
        if claimed.is_err() {
            return Err(TapError::Busy);
        }
        // A queue of about a second's samples, at least a few.
        let (queue, receiver) = mpsc::channel(usize::try_from(watch.rate).unwrap_or(1).max(16));
        let subscriber = Arc::new(Subscriber {
            watch,
            bucket: Mutex::new(Bucket::new(watch.rate)),
            queue,
            dropped: AtomicU64::new(0),
        });
        let slot = &self.slots[index];
        match slot.subscribers.lock() {
            Ok(mut list) => list.push(subscriber.clone()),
            Err(poisoned) => poisoned.into_inner().push(subscriber.clone()),
        }
        slot.watching.fetch_add(1, Ordering::Relaxed);
        Ok(Subscription {
            tap: self.clone(),
            index,
            subscriber,
            receiver,
        })
    }

    /// The last `count` (at most [`RECENT`]) messages sampled at `point`, oldest first.
    pub fn recent(&self, point: Point, count: usize) -> Result<Vec<Message>, TapError> {
        if count == 0 || count > RECENT {
            return Err(TapError::Recent(count));
        }
        let slot = &self.slots[self.layout.slot(point)?];
        let recent = match slot.recent.lock() {
            Ok(recent) => recent,
            Err(poisoned) => poisoned.into_inner(),
        };
        let skip = recent.len().saturating_sub(count);
        Ok(recent.iter().skip(skip).cloned().collect())
    }

    /// Clients watching now, over all points.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Messages offered at each point so far.
    pub fn offered(&self, point: Point) -> u64 {
        self.slot(point)
            .map_or(0, |slot| slot.offered.load(Ordering::Relaxed))
    }
}

/// One client's watch.
pub struct Subscription {
    tap: Arc<Tap>,
    index: usize,
    subscriber: Arc<Subscriber>,
    receiver: mpsc::Receiver<Sample>,
}

impl Subscription {
    /// What was asked for.
    pub fn watch(&self) -> Watch {
        self.subscriber.watch
    }

    /// The next event: a lost-samples notice first when samples were dropped,
    /// else the next sample (waiting for one).
    pub async fn next(&mut self) -> Option<TapEvent> {
        let dropped = self.subscriber.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            return Some(TapEvent::Dropped(dropped));
        }
        self.receiver
            .recv()
            .await
            .map(|sample| TapEvent::Sample(Box::new(sample)))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let slot = &self.tap.slots[self.index];
        let mut list = match slot.subscribers.lock() {
            Ok(list) => list,
            Err(poisoned) => poisoned.into_inner(),
        };
        list.retain(|s| !Arc::ptr_eq(s, &self.subscriber));
        slot.watching.fetch_sub(1, Ordering::Relaxed);
        self.tap.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests;
