//! The guest half of `packed-transformer.process-packed`: a whole batch comes in as
//! one buffer and all its outcomes go back as another (layout: `dataflow_core::packed`).

use dataflow_core::output_capacity;
use dataflow_core::packed::{BatchReader, OutcomeWriter, PackedError};

use crate::Transform;
use crate::batch::apply_one;

/// Runs `transform` over a packed batch and returns the packed outcomes. Each output
/// is serialised straight into the returned buffer, so a batch costs a handful of
/// allocations however many messages it holds.
pub fn process_packed<T: Transform>(
    transform: &mut T,
    batch: &[u8],
) -> Result<Vec<u8>, PackedError> {
    let mut reader = BatchReader::new(batch)?;
    let mut out = OutcomeWriter::with_capacity(output_capacity(batch.len()) + 16 * reader.len());
    let mut produced = Vec::new();
    let keeps_payload = transform.keeps_payload();
    while let Some(message) = reader.next_message()? {
        match apply_one(transform, message.payload, message.metadata, &mut produced) {
            Ok(()) if keeps_payload => {
                out.emitted_unchanged(
                    message.payload,
                    produced.iter().map(|record| record.metadata.as_slice()),
                    message.encoded_metadata,
                )?;
                produced.clear();
            }
            Ok(()) => {
                out.emitted(
                    produced
                        .iter()
                        .map(|record| (&record.value, record.metadata.as_slice())),
                    message.encoded_metadata,
                )?;
                produced.clear();
            }
            Err(err) => out.failed(&err)?,
        }
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use dataflow_core::packed::{Inputs, decode_outcomes, encode_batch};
    use dataflow_core::{ErrorKind, Message, Outcome};

    use super::*;
    use crate::batch::testing::Twice;
    use crate::{ConfigError, Record, TransformError, process_batch};

    /// Passes every record on as it came.
    struct Identity;

    impl Transform for Identity {
        fn from_config(_: &str) -> Result<Self, ConfigError> {
            Ok(Identity)
        }

        fn apply(&mut self, record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
            out.push(record);
            Ok(())
        }
    }

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
        let mut packed = Vec::new();
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
        let input = batch();
        let decoded = decode_outcomes(&packed, Inputs::Lent(&input)).expect("decode");
        assert_eq!(decoded, process_batch(&mut Twice, batch()));
        assert!(matches!(&decoded[2], Outcome::Failed(e) if e.step == 2));
        assert!(matches!(&decoded[1], Outcome::Failed(e) if e.kind == ErrorKind::InvalidData));
    }

    #[test]
    fn metadata_a_transform_leaves_alone_is_not_copied_back() {
        let input = batch();
        let packed = process_packed(&mut Identity, &pack(&input)).expect("process");
        assert!(
            !packed.windows(6).any(|w| w == b"orders"),
            "the unchanged metadata was written out again"
        );
        let mut given = batch();
        let decoded = decode_outcomes(&packed, Inputs::Given(&mut given)).expect("decode");
        assert_eq!(decoded, process_batch(&mut Identity, batch()));
    }

    #[test]
    fn a_cut_or_padded_batch_is_refused() {
        let input = pack(&batch());
        assert!(process_packed(&mut Twice, &input[..input.len() - 1]).is_err());
        let mut longer = input.clone();
        longer.push(0);
        assert!(process_packed(&mut Twice, &longer).is_err());
    }
}
