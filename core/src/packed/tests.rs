//! The packed layout, both halves.

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

/// Echoes each JSON message twice, the second time with the metadata `copy` added,
/// and fails the others: the guest half of a call.
fn echo_twice(batch: &[u8]) -> Vec<u8> {
    let mut reader = BatchReader::new(batch).expect("count");
    let mut writer = OutcomeWriter::with_capacity(64);
    while let Some(message) = reader.next_message().expect("message") {
        match Value::parse(message.payload) {
            Ok(value) => {
                let mut changed = message.metadata.clone();
                changed.push(("copy".to_owned(), "2".to_owned()));
                writer
                    .emitted(
                        [
                            (&value, message.metadata.as_slice()),
                            (&value, changed.as_slice()),
                        ]
                        .into_iter(),
                        message.encoded_metadata,
                    )
                    .expect("emit");
            }
            Err(e) => writer
                .failed(&TransformError::invalid_data(e.to_string()).at_step(2))
                .expect("fail"),
        }
    }
    writer.finish()
}

/// Echoes each message `times` times with its metadata unchanged.
fn repeat(batch: &[u8], times: usize) -> Vec<u8> {
    let mut reader = BatchReader::new(batch).expect("count");
    let mut writer = OutcomeWriter::with_capacity(64);
    while let Some(message) = reader.next_message().expect("message") {
        let same = vec![message.metadata.as_slice(); times];
        writer
            .emitted_unchanged(message.payload, same.into_iter(), message.encoded_metadata)
            .expect("emit");
    }
    writer.finish()
}

fn with_copy(metadata: &Metadata) -> Metadata {
    let mut changed = metadata.clone();
    changed.push(("copy".to_owned(), "2".to_owned()));
    changed
}

#[test]
fn a_batch_round_trips_through_both_halves() {
    let input = batch();
    let outcomes =
        decode_outcomes(&echo_twice(&pack(&input)), Inputs::Lent(&input)).expect("decode");
    assert_eq!(outcomes.len(), 3);
    match &outcomes[0] {
        Outcome::Emitted(out) => {
            assert_eq!(out.len(), 2);
            assert_eq!(out[0].payload, input[0].payload);
            assert_eq!(out[0].metadata, input[0].metadata);
            assert_eq!(out[1].metadata, with_copy(&input[0].metadata));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        matches!(&outcomes[1], Outcome::Failed(e) if e.kind == ErrorKind::InvalidData && e.step == 2)
    );
    assert!(
        matches!(&outcomes[2], Outcome::Emitted(out) if out.len() == 2 && out[0].metadata == input[2].metadata)
    );
    assert_eq!(input, batch(), "lent inputs are left as they were");
}

#[test]
fn unchanged_metadata_is_marked_instead_of_copied() {
    let input = batch();
    let packed = echo_twice(&pack(&input));
    let marks = packed
        .windows(4)
        .filter(|w| *w == SAME_METADATA.to_le_bytes())
        .count();
    assert_eq!(
        marks, 2,
        "one mark per output that keeps its input's metadata"
    );
    // The changed copies are written out in full, the unchanged ones are not.
    let written = |key: &str| {
        packed
            .windows(key.len())
            .filter(|w| *w == key.as_bytes())
            .count()
    };
    assert_eq!(written("topic"), 1);
    assert_eq!(written("partition"), 1);
}

#[test]
fn given_inputs_hand_their_metadata_to_the_last_output_that_keeps_it() {
    let mut input = batch();
    let packed = repeat(&pack(&input), 3);
    let outcomes = decode_outcomes(&packed, Inputs::Given(&mut input)).expect("decode");
    let want = batch();
    for (outcome, original) in outcomes.iter().zip(&want) {
        let Outcome::Emitted(out) = outcome else {
            panic!("unexpected {outcome:?}");
        };
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|m| m.metadata == original.metadata));
    }
    assert!(
        input.iter().all(|m| m.metadata.is_empty()),
        "the metadata moved out of the given inputs"
    );
    // Nothing to copy from when an input holds for no output: left alone.
    let mut input = batch();
    let outcomes = decode_outcomes(&repeat(&pack(&input), 0), Inputs::Given(&mut input));
    assert!(outcomes.is_ok());
    assert_eq!(input, batch());
}

#[test]
fn a_malformed_buffer_leaves_given_inputs_whole() {
    let mut input = batch();
    let packed = repeat(&pack(&input), 2);
    assert!(decode_outcomes(&packed[..packed.len() - 1], Inputs::Given(&mut input)).is_err());
    assert_eq!(input, batch());
}

#[test]
fn empty_batch_round_trips() {
    let packed = echo_twice(&pack(&[]));
    assert!(packed.is_empty());
    assert_eq!(decode_outcomes(&packed, Inputs::Lent(&[])), Ok(Vec::new()));
}

#[test]
fn malformed_buffers_are_errors_not_panics() {
    let input = batch();
    let lent = |n: usize| Inputs::Lent(&input[..n]);
    let good = echo_twice(&pack(&input));
    // Wrong number of outcomes, either way.
    let mut four = batch();
    four.push(input[0].clone());
    assert!(decode_outcomes(&good, Inputs::Lent(&four)).is_err());
    assert!(decode_outcomes(&good, lent(2)).is_err());
    // Every truncation fails cleanly.
    for len in 0..good.len() {
        assert!(
            decode_outcomes(&good[..len], lent(3)).is_err(),
            "truncated to {len}"
        );
    }
    // A huge count does not reserve memory for it.
    let mut huge = vec![EMITTED];
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = decode_outcomes(&huge, lent(1)).expect_err("huge count");
    assert!(err.to_string().contains("count larger"), "{err}");
    assert!(decode_outcomes(&[7], lent(1)).is_err());
    assert!(decode_outcomes(&[FAILED, 9, 0, 0, 0, 0, 0, 0, 0, 0], lent(1)).is_err());
    // Invalid UTF-8 in a reason.
    let bad_reason = [FAILED, KIND_FAILED, 0, 0, 0, 0, 1, 0, 0, 0, 0xff];
    assert!(decode_outcomes(&bad_reason, lent(1)).is_err());
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
