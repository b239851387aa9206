//! The packed batch layout of `packed-transformer.process-packed`.
//!
//! A whole batch crosses the component boundary as one byte buffer, and all its
//! outcomes come back as another, instead of one canonical-ABI list per payload and
//! per metadata string. Integers are little-endian `u32` unless marked `u8`:
//!
//! ```text
//! batch    = count  message{count}
//! message  = payload-len payload  metadata-count (key-len key value-len value){metadata-count}
//! outcomes = outcome{count}                      -- one per input message, in order
//! outcome  = 0:u8 output-count output{output-count}                  -- emitted
//!          | 1:u8 kind:u8 step reason-len reason                      -- failed
//! output   = message
//!          | payload-len payload 0xffffffff        -- metadata: the input's, unchanged
//! kind     = 0 (invalid-data) | 1 (failed)
//! ```
//!
//! Keys, values and reasons are UTF-8. An output whose metadata is exactly its
//! input's says so instead of repeating it, so neither side copies it again: the
//! host hands the input's own metadata on (see [`Inputs`]). Guests built before
//! that marker existed always write the metadata out, which reads the same.
//!
//! The host side is [`encode_batch`] and [`decode_outcomes`]; the guest side reads
//! a batch with [`BatchReader`] and writes outcomes with [`OutcomeWriter`].

use crate::error::{ErrorKind, TransformError};
use crate::json::Value;
use crate::message::{Message, Metadata, Outcome};

const EMITTED: u8 = 0;
const FAILED: u8 = 1;
const KIND_INVALID_DATA: u8 = 0;
const KIND_FAILED: u8 = 1;
/// In place of an output's metadata count: the input's metadata, unchanged.
const SAME_METADATA: u32 = u32::MAX;

/// A packed buffer that does not follow the layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed packed batch at byte {offset}: {reason}")]
pub struct PackedError {
    reason: &'static str,
    offset: usize,
}

/// Reads the layout's fields from a buffer, never past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn fail(&self, reason: &'static str) -> PackedError {
        PackedError {
            reason,
            offset: self.pos,
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], PackedError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.fail("truncated"))?;
        let taken = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, PackedError> {
        Ok(self.take(1)?[0])
    }

    fn peek_u32(&self) -> Option<u32> {
        let word = self.bytes.get(self.pos..self.pos.checked_add(4)?)?;
        Some(u32::from_le_bytes(word.try_into().ok()?))
    }

    fn u32(&mut self) -> Result<u32, PackedError> {
        let mut word = [0u8; 4];
        word.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(word))
    }

    /// A count of items of at least `min_size` bytes each, checked against what is
    /// left so that a corrupt count cannot make the reader reserve huge vectors.
    fn count(&mut self, min_size: usize) -> Result<usize, PackedError> {
        let count = self.u32()? as usize;
        if count.saturating_mul(min_size) > self.bytes.len() - self.pos {
            return Err(self.fail("count larger than the rest of the buffer"));
        }
        Ok(count)
    }

    fn sized(&mut self) -> Result<&'a [u8], PackedError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, PackedError> {
        let start = self.pos;
        let bytes = self.sized()?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| PackedError {
                reason: "string is not UTF-8",
                offset: start,
            })
    }

    fn metadata(&mut self) -> Result<Metadata, PackedError> {
        let count = self.count(8)?;
        let mut metadata = Vec::with_capacity(count);
        for _ in 0..count {
            let key = self.string()?;
            let value = self.string()?;
            metadata.push((key, value));
        }
        Ok(metadata)
    }

    fn finish(&self) -> Result<(), PackedError> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(self.fail("trailing bytes"))
        }
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) -> Result<(), PackedError> {
    let n = u32::try_from(n).map_err(|_| PackedError {
        reason: "a length or count exceeds 4 GiB",
        offset: out.len(),
    })?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn put_sized(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), PackedError> {
    put_u32(out, bytes.len())?;
    out.extend_from_slice(bytes);
    Ok(())
}

fn put_metadata(out: &mut Vec<u8>, metadata: &[(String, String)]) -> Result<(), PackedError> {
    put_u32(out, metadata.len())?;
    for (key, value) in metadata {
        put_sized(out, key.as_bytes())?;
        put_sized(out, value.as_bytes())?;
    }
    Ok(())
}

/// Host side: packs `messages` (payload and metadata of each) into `out`, which is
/// cleared first so one buffer can serve every call.
pub fn encode_batch<'a>(
    messages: impl ExactSizeIterator<Item = (&'a [u8], &'a [(String, String)])>,
    out: &mut Vec<u8>,
) -> Result<(), PackedError> {
    out.clear();
    put_u32(out, messages.len())?;
    for (payload, metadata) in messages {
        put_sized(out, payload)?;
        put_metadata(out, metadata)?;
    }
    Ok(())
}

/// The messages of a call, as the host gives them to [`decode_outcomes`]: the
/// source of the metadata that outputs keep unchanged.
pub enum Inputs<'a> {
    /// Still needed after the call: each output that keeps its input's metadata
    /// gets a copy.
    Lent(&'a [Message]),
    /// Not needed after the call: the last output that keeps an input's metadata
    /// takes it, the others get a copy.
    Given(&'a mut [Message]),
}

impl Inputs<'_> {
    /// The messages.
    pub fn messages(&self) -> &[Message] {
        match self {
            Inputs::Lent(messages) => messages,
            Inputs::Given(messages) => messages,
        }
    }
}

/// Host side: unpacks the outcomes of `inputs`. Anything but exactly one
/// well-formed outcome per input is an error, and then `inputs` are left as
/// they were.
pub fn decode_outcomes(bytes: &[u8], mut inputs: Inputs<'_>) -> Result<Vec<Outcome>, PackedError> {
    let expected = inputs.messages().len();
    let mut reader = Reader::new(bytes);
    let mut outcomes = Vec::with_capacity(expected.min(bytes.len()));
    // (input, output) of every output marked as keeping its input's metadata.
    let mut unchanged = Vec::new();
    for input in 0..expected {
        let outcome = match reader.u8()? {
            EMITTED => {
                let count = reader.count(8)?;
                let mut messages = Vec::with_capacity(count);
                for output in 0..count {
                    let payload = reader.sized()?.to_vec();
                    let metadata = if reader.peek_u32() == Some(SAME_METADATA) {
                        reader.u32()?;
                        unchanged.push((input, output));
                        Vec::new()
                    } else {
                        reader.metadata()?
                    };
                    messages.push(Message { payload, metadata });
                }
                Outcome::Emitted(messages)
            }
            FAILED => {
                let kind = match reader.u8()? {
                    KIND_INVALID_DATA => ErrorKind::InvalidData,
                    KIND_FAILED => ErrorKind::Failed,
                    _ => return Err(reader.fail("unknown error kind")),
                };
                let step = reader.u32()?;
                let message = reader.string()?;
                Outcome::Failed(TransformError {
                    kind,
                    message,
                    step,
                })
            }
            _ => return Err(reader.fail("unknown outcome tag")),
        };
        outcomes.push(outcome);
    }
    reader.finish()?;
    for (at, &(input, output)) in unchanged.iter().enumerate() {
        let last_for_input = unchanged.get(at + 1).is_none_or(|next| next.0 != input);
        let metadata = match &mut inputs {
            Inputs::Given(messages) if last_for_input => {
                std::mem::take(&mut messages[input].metadata)
            }
            inputs => inputs.messages()[input].metadata.clone(),
        };
        if let Outcome::Emitted(messages) = &mut outcomes[input] {
            messages[output].metadata = metadata;
        }
    }
    Ok(outcomes)
}

/// Guest side: the messages of a packed batch, read one at a time without copying
/// payloads.
pub struct BatchReader<'a> {
    reader: Reader<'a>,
    remaining: usize,
}

impl<'a> BatchReader<'a> {
    /// Starts reading `batch`; fails when its count cannot be right.
    pub fn new(batch: &'a [u8]) -> Result<Self, PackedError> {
        let mut reader = Reader::new(batch);
        let remaining = reader.count(8)?;
        Ok(Self { reader, remaining })
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.remaining
    }

    /// Whether no message is left.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The next message; `None` after the last, which is also when the buffer must
    /// have ended.
    pub fn next_message(&mut self) -> Result<Option<PackedMessage<'a>>, PackedError> {
        if self.remaining == 0 {
            self.reader.finish()?;
            return Ok(None);
        }
        self.remaining -= 1;
        let payload = self.reader.sized()?;
        let metadata_at = self.reader.pos;
        let metadata = self.reader.metadata()?;
        Ok(Some(PackedMessage {
            payload,
            metadata,
            encoded_metadata: &self.reader.bytes[metadata_at..self.reader.pos],
        }))
    }
}

/// One message of a packed batch, as the guest reads it.
pub struct PackedMessage<'a> {
    /// The payload, in the batch's buffer.
    pub payload: &'a [u8],
    /// The metadata, decoded.
    pub metadata: Metadata,
    /// The metadata as the batch encodes it: what [`OutcomeWriter`] compares an
    /// output's metadata with.
    pub encoded_metadata: &'a [u8],
}

/// Whether `metadata` encodes to exactly `encoded`.
fn encodes_as(metadata: &[(String, String)], encoded: &[u8]) -> bool {
    let mut reader = Reader::new(encoded);
    reader.u32().ok() == u32::try_from(metadata.len()).ok()
        && metadata.iter().all(|(key, value)| {
            reader.sized().ok() == Some(key.as_bytes())
                && reader.sized().ok() == Some(value.as_bytes())
        })
        && reader.finish().is_ok()
}

/// Guest side: writes the outcomes of a batch into one buffer, each output
/// serialised straight into it.
pub struct OutcomeWriter {
    out: Vec<u8>,
}

impl OutcomeWriter {
    /// A writer with room for about `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            out: Vec::with_capacity(capacity),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// One input's outputs: documents and their metadata. `input_metadata` is the
    /// input's [`PackedMessage::encoded_metadata`]; an output that keeps it is
    /// marked so instead of carrying a copy.
    pub fn emitted<'v>(
        &mut self,
        outputs: impl ExactSizeIterator<Item = (&'v Value, &'v [(String, String)])>,
        input_metadata: &[u8],
    ) -> Result<(), PackedError> {
        self.out.push(EMITTED);
        put_u32(&mut self.out, outputs.len())?;
        for (value, metadata) in outputs {
            self.output(|out| value.write_json(out), metadata, input_metadata)?;
        }
        Ok(())
    }

    /// One input's outputs that all carry `payload`, the input's own bytes, each
    /// with its metadata: for a transform that never changes a document.
    pub fn emitted_unchanged<'m>(
        &mut self,
        payload: &[u8],
        metadata: impl ExactSizeIterator<Item = &'m [(String, String)]>,
        input_metadata: &[u8],
    ) -> Result<(), PackedError> {
        self.out.push(EMITTED);
        put_u32(&mut self.out, metadata.len())?;
        for metadata in metadata {
            self.output(
                |out| out.extend_from_slice(payload),
                metadata,
                input_metadata,
            )?;
        }
        Ok(())
    }

    /// One output: its payload as `write` writes it, length-prefixed, then its
    /// metadata or the mark that it is the input's.
    fn output(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>),
        metadata: &[(String, String)],
        input_metadata: &[u8],
    ) -> Result<(), PackedError> {
        let len_at = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        write(&mut self.out);
        let len = u32::try_from(self.out.len() - len_at - 4).map_err(|_| PackedError {
            reason: "an output exceeds 4 GiB",
            offset: len_at,
        })?;
        self.out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        if encodes_as(metadata, input_metadata) {
            self.out.extend_from_slice(&SAME_METADATA.to_le_bytes());
            Ok(())
        } else {
            put_metadata(&mut self.out, metadata)
        }
    }

    /// One input's failure.
    pub fn failed(&mut self, err: &TransformError) -> Result<(), PackedError> {
        self.out.push(FAILED);
        self.out.push(match err.kind {
            ErrorKind::InvalidData => KIND_INVALID_DATA,
            ErrorKind::Failed => KIND_FAILED,
        });
        put_u32(&mut self.out, err.step as usize)?;
        put_sized(&mut self.out, err.message.as_bytes())
    }

    /// The finished buffer.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests;
