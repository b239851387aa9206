//! Live counters of a running pipeline, readable from other tasks (the status
//! reporter, metrics). Updated once per batch, never per message.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Messages read and failed so far, and when the last batch was handled.
#[derive(Debug, Default)]
pub struct Progress {
    processed: AtomicU64,
    errors: AtomicU64,
    last_processed_ms: AtomicI64,
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
        self.last_processed_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
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
