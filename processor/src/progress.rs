//! Live counters of a running pipeline, readable from other tasks (the status
//! reporter, metrics, `/livez`). Updated once per batch, never per message.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Messages read and failed so far, and when the last batch was handled.
#[derive(Debug, Default)]
pub struct Progress {
    processed: AtomicU64,
    errors: AtomicU64,
    last_processed_ms: AtomicI64,
    /// Messages taken from the source (counted as `processed` counts them).
    read: AtomicU64,
    /// When input last started waiting while nothing else was in flight.
    waiting_since_ms: AtomicI64,
}

/// A consistent-enough copy of [`Progress`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// Messages read from the source.
    pub processed: u64,
    /// Messages that failed.
    pub errors: u64,
    /// Unix time in milliseconds of the last handled batch, 0 before the first.
    pub last_processed_ms: i64,
}

impl Progress {
    /// Publishes the totals after a batch.
    pub fn update(&self, processed: u64, errors: u64) {
        self.processed.store(processed, Ordering::Relaxed);
        self.errors.store(errors, Ordering::Relaxed);
        self.last_processed_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Counts `count` messages taken from the source, not yet handled.
    pub fn taken(&self, count: u64) {
        self.taken_at(count, now_ms());
    }

    fn taken_at(&self, count: u64, now_ms: i64) {
        let before = self.read.fetch_add(count, Ordering::Relaxed);
        if before <= self.processed.load(Ordering::Relaxed) {
            self.waiting_since_ms.store(now_ms, Ordering::Relaxed);
        }
    }

    /// How long input has been waiting without a batch being handled, when that
    /// is longer than `limit`: the flow is stuck. An idle flow (nothing read and
    /// not handled) is never stuck.
    pub fn stalled(&self, limit: Duration) -> Option<Duration> {
        self.stalled_at(limit, now_ms())
    }

    fn stalled_at(&self, limit: Duration, now_ms: i64) -> Option<Duration> {
        let read = self.read.load(Ordering::Relaxed);
        if read <= self.processed.load(Ordering::Relaxed) {
            return None;
        }
        let since = self
            .last_processed_ms
            .load(Ordering::Relaxed)
            .max(self.waiting_since_ms.load(Ordering::Relaxed));
        let waited = Duration::from_millis(u64::try_from(now_ms - since).unwrap_or(0));
        (waited > limit).then_some(waited)
    }

    /// The current totals.
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            processed: self.processed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_processed_ms: self.last_processed_ms.load(Ordering::Relaxed),
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(600);
    const MINUTE: i64 = 60_000;

    #[test]
    fn stuck_only_when_input_waits_longer_than_the_limit() {
        let progress = Progress::default();
        assert_eq!(progress.stalled_at(LIMIT, 100 * MINUTE), None, "idle");
        progress.taken_at(10, 0);
        assert_eq!(
            progress.stalled_at(LIMIT, 9 * MINUTE),
            None,
            "waiting 9 min"
        );
        assert_eq!(
            progress.stalled_at(LIMIT, 11 * MINUTE),
            Some(Duration::from_secs(660)),
            "waiting 11 min with nothing handled"
        );
        progress.processed.store(10, Ordering::Relaxed);
        progress
            .last_processed_ms
            .store(11 * MINUTE, Ordering::Relaxed);
        assert_eq!(
            progress.stalled_at(LIMIT, 30 * MINUTE),
            None,
            "all handled, idle since"
        );
        // New input after a long idle spell: waiting counts from when it came.
        progress.taken_at(5, 40 * MINUTE);
        assert_eq!(progress.stalled_at(LIMIT, 41 * MINUTE), None);
        assert!(progress.stalled_at(LIMIT, 51 * MINUTE).is_some());
        // A batch handled while more waits: the clock restarts at that batch.
        progress.taken_at(5, 45 * MINUTE);
        progress.processed.store(15, Ordering::Relaxed);
        progress
            .last_processed_ms
            .store(50 * MINUTE, Ordering::Relaxed);
        assert_eq!(progress.stalled_at(LIMIT, 59 * MINUTE), None);
        assert!(progress.stalled_at(LIMIT, 61 * MINUTE).is_some());
    }
}
