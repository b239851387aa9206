//! The per-batch logic every component runs, in the canonical-ABI form.

use dataflow_core::json::Value;
use dataflow_core::{Message, Metadata, Outcome, Record, TransformError, output_capacity};

use crate::Transform;

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
    let keeps_payload = transform.keeps_payload();
    let outputs = produced
        .drain(..)
        .map(|record| {
            let payload = if keeps_payload {
                message.payload.clone()
            } else {
                let mut payload = Vec::with_capacity(capacity);
                record.value.write_json(&mut payload);
                payload
            };
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
            matches!(&outcomes[1], Outcome::Failed(e) if e.kind == dataflow_core::ErrorKind::InvalidData)
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
