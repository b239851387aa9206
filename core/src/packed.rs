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
//! outcome  = 0:u8 output-count message{output-count}                 -- emitted
//!          | 1:u8 kind:u8 step reason-len reason                      -- failed
//! kind     = 0 (invalid-data) | 1 (failed)
//! ```
//!
//! Keys, values and reasons are UTF-8. The host side is [`encode_batch`] and
//! [`decode_outcomes`]; the guest side reads a batch with [`BatchReader`] and
//! writes outcomes with [`OutcomeWriter`].

use crate::error::{ErrorKind, TransformError};
use crate::json::Value;
use crate::message::{Message, Metadata, Outcome};

const EMITTED: u8 = 0;
const FAILED: u8 = 1;
const KIND_INVALID_DATA: u8 = 0;
const KIND_FAILED: u8 = 1;

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

/// Host side: unpacks the outcomes of a batch of `expected` messages. Anything but
/// exactly `expected` well-formed outcomes is an error.
pub fn decode_outcomes(bytes: &[u8], expected: usize) -> Result<Vec<Outcome>, PackedError> {
    let mut reader = Reader::new(bytes);
    let mut outcomes = Vec::with_capacity(expected.min(bytes.len()));
    for _ in 0..expected {
        let outcome = match reader.u8()? {
            EMITTED => {
                let count = reader.count(8)?;
                let mut messages = Vec::with_capacity(count);
                for _ in 0..count {
                    let payload = reader.sized()?.to_vec();
                    let metadata = reader.metadata()?;
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

    /// The next message's payload and metadata; `None` after the last, which is also
    /// when the buffer must have ended.
    pub fn next_message(&mut self) -> Result<Option<(&'a [u8], Metadata)>, PackedError> {
        if self.remaining == 0 {
            self.reader.finish()?;
            return Ok(None);
        }
        self.remaining -= 1;
        let payload = self.reader.sized()?;
        let metadata = self.reader.metadata()?;
        Ok(Some((payload, metadata)))
    }
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

    /// One input's outputs: documents and their metadata.
    pub fn emitted<'v>(
        &mut self,
        outputs: impl ExactSizeIterator<Item = (&'v Value, &'v [(String, String)])>,
    ) -> Result<(), PackedError> {
        self.out.push(EMITTED);
        put_u32(&mut self.out, outputs.len())?;
        for (value, metadata) in outputs {
            self.output(|out| value.write_json(out), metadata)?;
        }
        Ok(())
    }

    /// One input's outputs that all carry `payload`, the input's own bytes, each
    /// with its metadata: for a transform that never changes a document.
    pub fn emitted_unchanged<'m>(
        &mut self,
        payload: &[u8],
        metadata: impl ExactSizeIterator<Item = &'m [(String, String)]>,
    ) -> Result<(), PackedError> {
        self.out.push(EMITTED);
        put_u32(&mut self.out, metadata.len())?;
        for metadata in metadata {
            self.output(|out| out.extend_from_slice(payload), metadata)?;
        }
        Ok(())
    }

    /// One output: its payload as `write` writes it, length-prefixed, then metadata.
    fn output(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>),
        metadata: &[(String, String)],
    ) -> Result<(), PackedError> {
        let len_at = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        write(&mut self.out);
        let len = u32::try_from(self.out.len() - len_at - 4).map_err(|_| PackedError {
            reason: "an output exceeds 4 GiB",
            offset: len_at,
        })?;
        self.out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        put_metadata(&mut self.out, metadata)
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
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> Metadata {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn batch() -> Vec<Message> {
        vec![
            Message {
                payload: r#"{"a":1,"s":"é"}"#.as_bytes().to_vec(),
                metadata: meta(&[("topic", "orders"), ("key", "")]),
            },
            Message {
                payload: b"not json".to_vec(),
                metadata: Vec::new(),
            },
            Message {
                payload: br#"{"bad":true}"#.to_vec(),
                metadata: meta(&[("partition", "3")]),
            },
        ]
    }

    fn pack(messages: &[Message]) -> Vec<u8> {
        let mut packed = vec![9, 9, 9];
        encode_batch(
            messages
                .iter()
                .map(|m| (m.payload.as_slice(), m.metadata.as_slice())),
            &mut packed,
        )
        .expect("encode");
        packed
    }

    /// Echoes each JSON message twice, fails the others: the guest half of a call.
    fn echo_twice(batch: &[u8]) -> Vec<u8> {
        let mut reader = BatchReader::new(batch).expect("count");
        let mut writer = OutcomeWriter::with_capacity(64);
        while let Some((payload, metadata)) = reader.next_message().expect("message") {
            match Value::parse(payload) {
                Ok(value) => writer
                    .emitted(
                        [(&value, metadata.as_slice()), (&value, metadata.as_slice())].into_iter(),
                    )
                    .expect("emit"),
                Err(e) => writer
                    .failed(&TransformError::invalid_data(e.to_string()).at_step(2))
                    .expect("fail"),
            }
        }
        writer.finish()
    }

    #[test]
    fn a_batch_round_trips_through_both_halves() {
        let input = batch();
        let outcomes = decode_outcomes(&echo_twice(&pack(&input)), 3).expect("decode");
        assert_eq!(outcomes.len(), 3);
        match &outcomes[0] {
            Outcome::Emitted(out) => {
                assert_eq!(out.len(), 2);
                assert_eq!(out[1].payload, input[0].payload);
                assert_eq!(out[1].metadata, input[0].metadata);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            matches!(&outcomes[1], Outcome::Failed(e) if e.kind == ErrorKind::InvalidData && e.step == 2)
        );
        assert!(matches!(&outcomes[2], Outcome::Emitted(out) if out.len() == 2));
    }

    #[test]
    fn empty_batch_round_trips() {
        let packed = echo_twice(&pack(&[]));
        assert!(packed.is_empty());
        assert_eq!(decode_outcomes(&packed, 0), Ok(Vec::new()));
    }

    #[test]
    fn malformed_buffers_are_errors_not_panics() {
        let good = echo_twice(&pack(&batch()));
        // Wrong number of outcomes, either way.
        assert!(decode_outcomes(&good, 4).is_err());
        assert!(decode_outcomes(&good, 2).is_err());
        // Every truncation fails cleanly.
        for len in 0..good.len() {
            assert!(
                decode_outcomes(&good[..len], 3).is_err(),
                "truncated to {len}"
            );
        }
        // A huge count does not reserve memory for it.
        let mut huge = vec![EMITTED];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = decode_outcomes(&huge, 1).expect_err("huge count");
        assert!(err.to_string().contains("count larger"), "{err}");
        assert!(decode_outcomes(&[7], 1).is_err());
        assert!(decode_outcomes(&[FAILED, 9, 0, 0, 0, 0, 0, 0, 0, 0], 1).is_err());
        // Invalid UTF-8 in a reason.
        let bad_reason = [FAILED, KIND_FAILED, 0, 0, 0, 0, 1, 0, 0, 0, 0xff];
        assert!(decode_outcomes(&bad_reason, 1).is_err());
        // The guest side refuses a batch that is cut short or has trailing bytes.
        let input = pack(&batch());
        let short = &input[..input.len() - 1];
        let mut reader = BatchReader::new(short).expect("count fits");
        let read_all =
            std::iter::from_fn(|| reader.next_message().transpose()).collect::<Result<Vec<_>, _>>();
        assert!(read_all.is_err());
        let mut longer = input.clone();
        longer.push(0);
        let mut reader = BatchReader::new(&longer).expect("count fits");
        let read_all =
            std::iter::from_fn(|| reader.next_message().transpose()).collect::<Result<Vec<_>, _>>();
        assert!(read_all.is_err());
    }
}
