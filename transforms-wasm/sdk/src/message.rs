use crate::json::Value;

use crate::{Transform, TransformError};

/// String metadata of a message, in insertion order.
pub type Metadata = Vec<(String, String)>;

/// A message as it crosses the component boundary: JSON bytes plus metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The JSON document, UTF-8.
    pub payload: Vec<u8>,
    /// String metadata (topic, partition, route, ...).
    pub metadata: Metadata,
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
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
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

/// Runs `transform` over a batch: parses each payload once, applies the transform and
/// serialises every output. Returns exactly one [`Outcome`] per input, in order.
///
/// This is the whole per-batch logic of a component; the Wasm glue only converts
/// types around it, so native tests exercise the same code the component runs.
pub fn process_batch<T: Transform>(transform: &mut T, batch: Vec<Message>) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut produced = Vec::new();
    for message in batch {
        outcomes.push(process_one(transform, message, &mut produced));
    }
    outcomes
}

fn process_one<T: Transform>(
    transform: &mut T,
    message: Message,
    produced: &mut Vec<Record>,
) -> Outcome {
    if let Err(err) = apply_one(transform, &message.payload, message.metadata, produced) {
        return Outcome::Failed(err);
    }
    let capacity = output_capacity(message.payload.len());
    let outputs = produced
        .drain(..)
        .map(|record| {
            let mut payload = Vec::with_capacity(capacity);
            record.value.write_json(&mut payload);
            Message {
                payload,
                metadata: record.metadata,
            }
        })
        .collect();
    Outcome::Emitted(outputs)
}

/// Parses `payload` and applies `transform`, leaving the outputs in `produced`
/// (cleared first, and left empty on failure). Shared by [`process_batch`] and the
/// packed batch path, so both run exactly the same per-message logic.
pub(crate) fn apply_one<T: Transform>(
    transform: &mut T,
    payload: &[u8],
    metadata: Metadata,
    produced: &mut Vec<Record>,
) -> Result<(), TransformError> {
    produced.clear();
    let value = Value::parse(payload)
        .map_err(|err| TransformError::invalid_data(format!("message is not valid JSON: {err}")))?;
    let record = Record { value, metadata };
    transform
        .apply(record, produced)
        .inspect_err(|_| produced.clear())
}

/// Bytes to reserve for one serialised output of a `payload_len`-byte input: outputs
/// are usually about the input's size, so the buffer rarely has to grow.
pub(crate) fn output_capacity(payload_len: usize) -> usize {
    payload_len + payload_len / 4 + 64
}

/// A transform for the SDK's own tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::{ConfigError, Record, Transform, TransformError};

    /// Emits each record twice with the metadata `seen` added; fails a document with
    /// a `bad` key, attributing the failure to step 2.
    pub(crate) struct Twice;

    impl Transform for Twice {
        fn from_config(_: &str) -> Result<Self, ConfigError> {
            Ok(Twice)
        }

        fn apply(
            &mut self,
            mut record: Record,
            out: &mut Vec<Record>,
        ) -> Result<(), TransformError> {
            if record.value.get("bad").is_some() {
                return Err(TransformError::failed("bad message").at_step(2));
            }
            record.set_meta("seen", "ja, schön");
            out.push(record.clone());
            out.push(record);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Twice;
    use super::*;

    fn msg(text: &str) -> Message {
        Message {
            payload: text.as_bytes().to_vec(),
            metadata: vec![("topic".into(), "t".into())],
        }
    }

    #[test]
    fn one_outcome_per_input_and_bad_messages_fail_alone() {
        let outcomes = process_batch(
            &mut Twice,
            vec![
                msg(r#"{"a":1}"#),
                msg("not json"),
                msg(r#"{"bad":1}"#),
                msg("[]"),
            ],
        );
        assert_eq!(outcomes.len(), 4);
        match &outcomes[0] {
            Outcome::Emitted(out) => {
                assert_eq!(out.len(), 2);
                assert_eq!(out[0].payload, br#"{"a":1}"#);
                assert_eq!(
                    out[1].metadata,
                    [
                        ("topic".to_owned(), "t".to_owned()),
                        ("seen".to_owned(), "ja, schön".to_owned())
                    ]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            matches!(&outcomes[1], Outcome::Failed(e) if e.kind == crate::ErrorKind::InvalidData)
        );
        assert!(matches!(&outcomes[2], Outcome::Failed(e) if e.message == "bad message"));
        assert!(matches!(&outcomes[3], Outcome::Emitted(out) if out.len() == 2));
    }

    #[test]
    fn number_text_and_key_order_survive() {
        let text = r#"{"z":1,"a":12345678901234567890123,"m":1.50,"e":1e3,"f":-1E-7,"s":"<&>"}"#;
        match &process_batch(&mut Twice, vec![msg(text)])[0] {
            Outcome::Emitted(out) => assert_eq!(out[0].payload, text.as_bytes()),
            other => panic!("unexpected {other:?}"),
        }
    }
}
