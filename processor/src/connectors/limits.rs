//! How much a source may hand out at once, and how large one message may be.

use dataflow_api::ErrorType;
use dataflow_core::Message;

use super::Rejected;

/// Largest message a source passes on, in bytes; a larger one goes to the error
/// sink as a sample of its start (it could not go through a transform anyway:
/// components are limited to 64 MiB of memory by default).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Bytes of an oversized message kept in its error record.
const SAMPLE_BYTES: usize = 1024;

/// What one batch may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimit {
    /// Messages.
    pub messages: usize,
    /// Payload bytes; a batch holds at least one message, so it can exceed this
    /// by one message.
    pub bytes: usize,
}

impl BatchLimit {
    /// Whether a batch of `messages` holding `bytes` is full.
    pub fn reached(&self, messages: usize, bytes: usize) -> bool {
        messages >= self.messages.max(1) || (messages > 0 && bytes >= self.bytes)
    }
}

/// The error record of a message over [`MAX_MESSAGE_BYTES`]: its first bytes and
/// its size. `what` names it (`line 12`, `offset 44`).
pub fn oversized(
    start: &[u8],
    size: usize,
    metadata: Vec<(String, String)>,
    what: &str,
) -> Rejected {
    Rejected {
        message: Message {
            payload: start[..start.len().min(SAMPLE_BYTES)].to_vec(),
            metadata,
        },
        error_type: ErrorType::InvalidData,
        reason: format!(
            "{what} is {size} bytes; messages of at most {MAX_MESSAGE_BYTES} bytes are read (the record keeps its first {SAMPLE_BYTES} bytes)"
        ),
    }
}
