//! The recent failures: the last [`KEPT`] failed messages of any stage, newest
//! first, whether or not the flow has an error sink.
//!
//! The pipeline hands over each batch's failures once. At most [`PER_SECOND`]
//! a second are kept (the rest are counted), so a flow whose every message
//! fails pays for a hundred copies a second, not for one per message.

use std::collections::VecDeque;
use std::sync::Mutex;

use dataflow_core::Message;
use serde::Serialize;
use tokio::time::Instant;

use crate::sample::{DEFAULT_MAX_BYTES, Shaper, metadata, now};

/// How many failures are kept.
pub const KEPT: usize = 100;
/// The most failures kept in one second.
pub const PER_SECOND: usize = 100;

/// One failure as it is handed over.
#[derive(Debug, Clone, Copy)]
pub struct FailureView<'a> {
    /// Classified type (`invalid_data`, `script_error`, `transform_timeout`, ...).
    pub error_type: &'a str,
    /// Pipeline stage (`read`, `transform`, `write`).
    pub stage: &'a str,
    /// The failing transformation's index.
    pub step: Option<usize>,
    /// Readable reason (already free of secret values).
    pub message: &'a str,
    /// The message as the source read it.
    pub original: &'a Message,
}

/// A kept failure.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failure {
    /// Its number among every failure since the start.
    pub seq: u64,
    /// When it was handed over.
    pub time: String,
    /// Classified type.
    #[serde(rename = "type")]
    pub error_type: String,
    /// Pipeline stage.
    pub stage: String,
    /// The failing transformation's index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// Readable reason.
    pub message: String,
    /// Where the message was in the source (Kafka topic, partition and offset,
    /// a row's cursor, a change's LSN), when its metadata says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// Its metadata.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The original payload, masked and cut.
    pub original: serde_json::Value,
    /// Whether `original` was cut.
    pub cut: bool,
}

/// Where a message was in its source, from its metadata.
pub fn position(metadata: &[(String, String)]) -> Option<String> {
    let get = |key: &str| dataflow_core::find_meta(metadata, key);
    if let (Some(topic), Some(partition), Some(offset)) =
        (get("topic"), get("partition"), get("offset"))
    {
        return Some(format!("{topic}/{partition}@{offset}"));
    }
    for key in ["lsn", "cursor", "snapshot", "id", "key"] {
        if let Some(value) = get(key) {
            return Some(format!("{key} {value}"));
        }
    }
    None
}

struct Ring {
    kept: VecDeque<Failure>,
    seen: u64,
    window: Instant,
    in_window: usize,
}

/// How a kept failure's reason is cleaned of secret values.
pub type Redact = fn(&str) -> std::borrow::Cow<'_, str>;

/// The recent failures of one flow.
pub struct Failures {
    ring: Mutex<Ring>,
    redact: Redact,
}

impl Default for Failures {
    fn default() -> Self {
        fn unchanged(text: &str) -> std::borrow::Cow<'_, str> {
            std::borrow::Cow::Borrowed(text)
        }
        Self::new(unchanged)
    }
}

impl Failures {
    /// No failures yet; each kept reason goes through `redact` first.
    pub fn new(redact: Redact) -> Self {
        Self {
            ring: Mutex::new(Ring {
                kept: VecDeque::with_capacity(KEPT),
                seen: 0,
                window: Instant::now(),
                in_window: 0,
            }),
            redact,
        }
    }

    /// Hands over a batch's failures (in order).
    pub fn record<'a>(
        &self,
        shaper: &Shaper,
        failures: impl ExactSizeIterator<Item = FailureView<'a>>,
    ) {
        let count = failures.len();
        if count == 0 {
            return;
        }
        let mut ring = match self.ring.lock() {
            Ok(ring) => ring,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now_instant = Instant::now();
        if now_instant.duration_since(ring.window).as_secs() >= 1 {
            ring.window = now_instant;
            ring.in_window = 0;
        }
        let room = PER_SECOND.saturating_sub(ring.in_window).min(KEPT);
        let first_seq = ring.seen;
        ring.seen += count as u64;
        // Keep the batch's last ones: the newest.
        let skip = count.saturating_sub(room);
        for (i, view) in failures.enumerate().skip(skip) {
            let (original, cut) = shaper.payload(&view.original.payload, DEFAULT_MAX_BYTES);
            if ring.kept.len() == KEPT {
                ring.kept.pop_back();
            }
            ring.kept.push_front(Failure {
                seq: first_seq + i as u64,
                time: now(),
                error_type: view.error_type.to_owned(),
                stage: view.stage.to_owned(),
                step: view.step,
                message: (self.redact)(view.message).into_owned(),
                position: position(&view.original.metadata),
                metadata: metadata(&view.original.metadata),
                original,
                cut,
            });
            ring.in_window += 1;
        }
    }

    /// The kept failures, newest first, and how many there were in all.
    pub fn list(&self) -> (Vec<Failure>, u64) {
        let ring = match self.ring.lock() {
            Ok(ring) => ring,
            Err(poisoned) => poisoned.into_inner(),
        };
        (ring.kept.iter().cloned().collect(), ring.seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn failed(i: usize) -> Message {
        Message {
            payload: format!(r#"{{"id":{i}}}"#).into_bytes(),
            metadata: vec![
                ("topic".into(), "orders".into()),
                ("partition".into(), "2".into()),
                ("offset".into(), i.to_string()),
            ],
        }
    }

    fn views(messages: &[Message]) -> impl ExactSizeIterator<Item = FailureView<'_>> {
        messages.iter().map(|m| FailureView {
            error_type: "script_error",
            stage: "transform",
            step: Some(1),
            message: "ValueError: no",
            original: m,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_hundred_are_kept_newest_first_with_their_position() {
        let failures = Failures::default();
        let shaper = Shaper::default();
        let batch: Vec<Message> = (0..30).map(failed).collect();
        failures.record(&shaper, views(&batch));
        let (list, seen) = failures.list();
        assert_eq!((list.len(), seen), (30, 30));
        assert_eq!(list[0].seq, 29);
        assert_eq!(list[0].position.as_deref(), Some("orders/2@29"));
        assert_eq!(list[0].original["id"], 29);
        assert_eq!(list[0].error_type, "script_error");
        tokio::time::advance(Duration::from_secs(1)).await;
        let batch: Vec<Message> = (30..130).map(failed).collect();
        failures.record(&shaper, views(&batch));
        let (list, seen) = failures.list();
        assert_eq!((list.len(), seen), (KEPT, 130));
        assert_eq!(list[0].seq, 129);
        assert_eq!(list[KEPT - 1].seq, 30);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_keeps_a_hundred_a_second_and_counts_the_rest() {
        let failures = Failures::default();
        let batch: Vec<Message> = (0..10_000).map(failed).collect();
        failures.record(&Shaper::default(), views(&batch));
        failures.record(&Shaper::default(), views(&batch));
        let (list, seen) = failures.list();
        assert_eq!(seen, 20_000);
        assert_eq!(list.len(), 100);
        assert_eq!(
            list[0].seq, 9_999,
            "the second batch came within the second"
        );
    }

    #[test]
    fn positions_from_other_sources() {
        assert_eq!(
            position(&[("lsn".into(), "0/16B3748".into())]).as_deref(),
            Some("lsn 0/16B3748")
        );
        assert_eq!(position(&[]), None);
    }
}
