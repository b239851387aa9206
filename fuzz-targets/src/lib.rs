//! Fuzz targets: each takes arbitrary bytes and must neither panic nor break the
//! invariant it checks. `fuzz/` drives them with libFuzzer (`make fuzz`, nightly
//! Rust); the tests below run each for a short while on stable Rust (`make test`).

use dataflow_core::condition::Condition;
use dataflow_core::json::Value;
use dataflow_core::packed::{BatchReader, Inputs, OutcomeWriter, decode_outcomes, encode_batch};
use dataflow_core::path::FieldPath;
use dataflow_core::{ErrorKind, Message, Outcome, TransformError};

/// A spec text, parsed and validated as the processor and the webhook do.
pub fn spec(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(loaded) = dataflow_api::manifest::parse(&text) {
        // A valid spec survives the trip through the resolved JSON the operator
        // writes for the processor.
        let json = serde_json::to_string(&loaded.spec)
            .unwrap_or_else(|e| panic!("a parsed spec cannot be written back: {e}"));
        let again = dataflow_api::manifest::parse(&json).unwrap_or_else(|e| {
            panic!("a valid spec no longer parses after a round trip: {e}\n{json}")
        });
        assert_eq!(again.spec, loaded.spec);
    }
}

/// A JSON document: parsing never panics, and what parses writes back to text
/// that parses to the same document.
pub fn json(data: &[u8]) {
    if let Ok(value) = Value::parse(data) {
        let text = value.to_json();
        let again = Value::parse(&text).unwrap_or_else(|e| {
            panic!(
                "written JSON does not parse ({e}): {}",
                String::from_utf8_lossy(&text)
            )
        });
        assert_eq!(again, value);
        assert_eq!(again.to_json(), text, "writing is stable");
    }
}

/// Field paths and conditions: the first line is the expression, the rest a
/// document to apply it to.
pub fn paths_and_conditions(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (expression, document) = text.split_once('\n').unwrap_or((&text, "{}"));
    let mut doc = Value::parse(document.as_bytes()).unwrap_or(Value::Null);
    if let Ok(condition) = Condition::parse(expression) {
        // The document's top-level string fields stand in for metadata.
        let metadata: Vec<(String, String)> = match &doc {
            Value::Object(map) => map
                .iter()
                .filter_map(|(key, value)| match value {
                    Value::String(text) => Some((key.to_string(), text.to_string())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        condition.matches(&doc, &metadata);
    }
    if let Ok(path) = FieldPath::parse(expression) {
        path.get(&doc);
        path.get_all(&doc);
        path.for_each_mut(&mut doc.clone(), &mut |v| *v = Value::Null);
        path.remove(&mut doc.clone());
        if !path.has_wildcard() {
            let mut copy = doc.clone();
            if path.set(&mut copy, Value::from("x")) {
                // What was set can be read back, and the document still writes.
                assert_eq!(path.get(&copy), Some(&Value::from("x")), "{expression}");
                copy.to_json();
            }
            path.take(&mut doc);
        }
    }
}

/// The packed batch layout: arbitrary buffers decode to an error or to exactly
/// the expected count, and a batch built from the input survives both halves.
pub fn packed(data: &[u8]) {
    let expected = data.first().map_or(0, |&b| usize::from(b % 8));
    let inputs = vec![Message::default(); expected];
    if let Ok(outcomes) = decode_outcomes(data, Inputs::Lent(&inputs)) {
        assert_eq!(outcomes.len(), expected);
    }
    if let Ok(mut reader) = BatchReader::new(data) {
        while let Ok(Some(_)) = reader.next_message() {}
    }
    // Round trip: messages cut from the input.
    let messages: Vec<Message> = data
        .chunks(7)
        .map(|chunk| Message {
            payload: chunk.to_vec(),
            metadata: vec![(
                String::from_utf8_lossy(&chunk[..chunk.len().min(2)]).into_owned(),
                String::from_utf8_lossy(chunk).into_owned(),
            )],
        })
        .collect();
    let mut batch = Vec::new();
    if encode_batch(
        messages
            .iter()
            .map(|m| (m.payload.as_slice(), m.metadata.as_slice())),
        &mut batch,
    )
    .is_err()
    {
        return;
    }
    let mut reader = BatchReader::new(&batch).unwrap_or_else(|e| panic!("{e}"));
    let mut writer = OutcomeWriter::with_capacity(batch.len());
    let mut index = 0;
    while let Some(message) = reader.next_message().unwrap_or_else(|e| panic!("{e}")) {
        assert_eq!(message.payload, messages[index].payload.as_slice());
        assert_eq!(message.metadata, messages[index].metadata);
        match Value::parse(message.payload) {
            Ok(value) => writer
                .emitted(
                    std::iter::once((&value, message.metadata.as_slice())),
                    message.encoded_metadata,
                )
                .unwrap_or_else(|e| panic!("{e}")),
            Err(e) => writer
                .failed(&TransformError::invalid_data(e.to_string()))
                .unwrap_or_else(|e| panic!("{e}")),
        }
        index += 1;
    }
    let mut given = messages.clone();
    let outcomes = decode_outcomes(&writer.finish(), Inputs::Given(&mut given))
        .unwrap_or_else(|e| panic!("{e}"));
    for (outcome, message) in outcomes.iter().zip(&messages) {
        match outcome {
            Outcome::Emitted(out) => assert_eq!(out[0].metadata, message.metadata),
            Outcome::Failed(e) => assert_eq!(e.kind, ErrorKind::InvalidData),
        }
    }
}

#[cfg(test)]
mod tests {
    //! A short pass of every target on stable Rust: random inputs plus seeds that
    //! reach the interesting branches quickly.

    use std::time::Duration;

    /// How long each target runs in `make test` (override: `DATAFLOW_FUZZ_MS`).
    fn budget() -> u64 {
        std::env::var("DATAFLOW_FUZZ_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3_000)
    }

    fn run(target: fn(&[u8]), seeds: &[&[u8]]) {
        for seed in seeds {
            target(seed);
        }
        arbtest::arbtest(|u| {
            let len = u.arbitrary_len::<u8>()?;
            let data = u.bytes(len)?;
            target(data);
            Ok(())
        })
        .budget(Duration::from_millis(budget()));
    }

    #[test]
    fn spec() {
        run(
            super::spec,
            &[
                b"source: {type: stdin}\nsink: {type: stdout}\n",
                b"source: {type: kafka, kafka: {brokers: [a:1], topic: t, consumerGroup: g}}\nsink: {type: file, file: {path: x}}\ntransformations: [{type: filter, filter: {condition: \"a == 1 && !(b)\"}}]\n",
                b"kind: DataFlow\nspec: {source: {type: stdin}, sink: {type: stdout}}\n",
            ],
        );
    }

    #[test]
    fn json() {
        run(
            super::json,
            &[
                br#"{"a":[1,2.50,{"b":null}],"c":"\u00e9\n","d":12345678901234567890}"#,
                b"[[[[[[[]]]]]]]",
            ],
        );
    }

    #[test]
    fn paths_and_conditions() {
        run(
            super::paths_and_conditions,
            &[
                b"a.b == 'x' || !(c.#.d > 2)\n{\"a\":{\"b\":\"x\"},\"c\":[{\"d\":3}]}",
                b"$.items[*].sku\n{\"items\":[{\"sku\":1}]}",
                b"a.b.c\n{\"a\":1}",
            ],
        );
    }

    #[test]
    fn packed() {
        run(
            super::packed,
            &[b"\x02\0\0\0", b"{\"a\":1}\n[1,2]\nnot json"],
        );
    }
}
