//! The message types shared by the host and every transform.

use crate::error::TransformError;
use crate::json::Value;

/// String metadata of a message, in insertion order.
pub type Metadata = Vec<(String, String)>;

/// A message as it crosses the component boundary and moves through the pipeline:
/// JSON bytes plus metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The JSON document, UTF-8.
    pub payload: Vec<u8>,
    /// String metadata (topic, partition, route, ...).
    pub metadata: Metadata,
}

impl Message {
    /// Returns the metadata value for `key`, if set.
    pub fn meta(&self, key: &str) -> Option<&str> {
        find_meta(&self.metadata, key)
    }
}

/// The value of `key` in `metadata`, if set.
pub fn find_meta<'a>(metadata: &'a [(String, String)], key: &str) -> Option<&'a str> {
    metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A message as a transform sees it: parsed JSON plus metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The parsed document.
    pub value: Value,
    /// String metadata, kept on outputs unless the transform changes it.
    pub metadata: Metadata,
}

impl Record {
    /// Returns the metadata value for `key`, if set.
    pub fn meta(&self, key: &str) -> Option<&str> {
        find_meta(&self.metadata, key)
    }

    /// Sets metadata `key` to `value`, replacing an existing entry.
    pub fn set_meta(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.metadata.push((key.to_owned(), value)),
        }
    }
}

/// What became of one input message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Its outputs, in order (possibly none).
    Emitted(Vec<Message>),
    /// It failed.
    Failed(TransformError),
}

/// What one step of a multi-step transform did since the counters were last taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepCount {
    /// Records the step was applied to.
    pub received: u64,
    /// Records the step produced.
    pub emitted: u64,
}

/// Bytes to reserve for one serialised output of a `payload_len`-byte input: outputs
/// are usually about the input's size, so the buffer rarely has to grow.
pub fn output_capacity(payload_len: usize) -> usize {
    payload_len + payload_len / 4 + 64
}
