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
//! Keys, values and reasons are UTF-8. The guest side is [`process_packed`]; the
//! host side is [`encode_batch`] and [`decode_outcomes`].

use crate::message::{apply_one, output_capacity};
use crate::{ErrorKind, Message, Metadata, Outcome, Transform, TransformError};

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

/// Guest side: runs `transform` over a packed batch and returns the packed outcomes.
/// Each output is serialised straight into the returned buffer, so a batch costs a
/// handful of allocations however many messages it holds.
pub fn process_packed<T: Transform>(
    transform: &mut T,
    batch: &[u8],
) -> Result<Vec<u8>, PackedError> {
    let mut reader = Reader::new(batch);
    let count = reader.count(8)?;
    let mut out = Vec::with_capacity(output_capacity(batch.len()) + 16 * count);
    let mut produced = Vec::new();
    for _ in 0..count {
        let payload = reader.sized()?;
        let metadata = reader.metadata()?;
        match apply_one(transform, payload, metadata, &mut produced) {
            Ok(()) => {
                out.push(EMITTED);
                put_u32(&mut out, produced.len())?;
                for record in produced.drain(..) {
                    let len_at = out.len();
                    out.extend_from_slice(&[0; 4]);
                    record.value.write_json(&mut out);
                    let len = u32::try_from(out.len() - len_at - 4).map_err(|_| PackedError {
                        reason: "an output exceeds 4 GiB",
                        offset: len_at,
                    })?;
                    out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
                    put_metadata(&mut out, &record.metadata)?;
                }
            }
            Err(err) => {
                out.push(FAILED);
                out.push(match err.kind {
                    ErrorKind::InvalidData => KIND_INVALID_DATA,
                    ErrorKind::Failed => KIND_FAILED,
                });
                put_u32(&mut out, err.step as usize)?;
                put_sized(&mut out, err.message.as_bytes())?;
            }
        }
    }
    reader.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::testing::Twice;
    use crate::process_batch;

    fn batch() -> Vec<Message> {
        let meta = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        vec![
            Message {
                payload: br#"{"a":1,"s":"\u00e9\n"}"#.to_vec(),
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
            Message {
                payload: b"[]".to_vec(),
                metadata: Vec::new(),
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

    #[test]
    fn packed_path_gives_the_same_outcomes_as_process_batch() {
        let packed = process_packed(&mut Twice, &pack(&batch())).expect("process");
        let decoded = decode_outcomes(&packed, 4).expect("decode");
        assert_eq!(decoded, process_batch(&mut Twice, batch()));
        assert!(matches!(&decoded[2], Outcome::Failed(e) if e.step == 2));
        assert!(matches!(&decoded[1], Outcome::Failed(e) if e.kind == ErrorKind::InvalidData));
    }

    #[test]
    fn empty_batch_round_trips() {
        let packed = process_packed(&mut Twice, &pack(&[])).expect("process");
        assert!(packed.is_empty());
        assert_eq!(decode_outcomes(&packed, 0), Ok(Vec::new()));
    }

    #[test]
    fn malformed_buffers_are_errors_not_panics() {
        let good = process_packed(&mut Twice, &pack(&batch())).expect("process");
        // Wrong number of outcomes, either way.
        assert!(decode_outcomes(&good, 5).is_err());
        assert!(decode_outcomes(&good, 3).is_err());
        // Every truncation fails cleanly.
        for len in 0..good.len() {
            assert!(
                decode_outcomes(&good[..len], 4).is_err(),
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
        assert!(process_packed(&mut Twice, &input[..input.len() - 1]).is_err());
        let mut longer = input.clone();
        longer.push(0);
        assert!(process_packed(&mut Twice, &longer).is_err());
    }
}
