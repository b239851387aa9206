//! The raw envelope `{"value": <message>, "_metadata": {...}}` that sources in
//! `rawMode` emit and sinks in `rawMode` store: a message already in that shape
//! is kept as it is; any other message becomes the `value`, with its metadata
//! (topic, partition, key, headers ...) as the `_metadata` object.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use dataflow_core::Message;

/// A message that is already an envelope: `value` and, optionally, `_metadata`
/// (an object), nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    value: &'a RawValue,
    #[serde(borrow, rename = "_metadata")]
    metadata: Option<&'a RawValue>,
}

/// Appends `message` as an envelope to `out`; says why not when its payload is
/// not JSON.
pub fn write_envelope(message: &Message, out: &mut Vec<u8>) -> Result<(), String> {
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(&message.payload)
        && envelope
            .metadata
            .is_none_or(|m| m.get().trim_start().starts_with('{'))
    {
        out.extend_from_slice(b"{\"value\":");
        out.extend_from_slice(envelope.value.get().as_bytes());
        out.extend_from_slice(b",\"_metadata\":");
        out.extend_from_slice(envelope.metadata.map_or("{}", |m| m.get()).as_bytes());
        out.push(b'}');
        return Ok(());
    }
    serde_json::from_slice::<IgnoredAny>(&message.payload)
        .map_err(|e| format!("not valid JSON: {e}"))?;
    out.extend_from_slice(b"{\"value\":");
    out.extend_from_slice(&message.payload);
    out.extend_from_slice(b",\"_metadata\":{");
    for (i, (key, value)) in message.metadata.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
        let _ = serde_json::to_writer(&mut *out, value);
    }
    out.extend_from_slice(b"}}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(payload: &str, metadata: &[(&str, &str)]) -> Result<String, String> {
        let message = Message {
            payload: payload.as_bytes().to_vec(),
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let mut out = Vec::new();
        write_envelope(&message, &mut out)?;
        String::from_utf8(out).map_err(|e| e.to_string())
    }

    #[test]
    fn a_plain_message_is_wrapped_with_its_metadata() {
        assert_eq!(
            envelope(
                r#"{"a":1.50}"#,
                &[("topic", "t\"1"), ("headers.trace", "x")]
            )
            .unwrap(),
            r#"{"value":{"a":1.50},"_metadata":{"topic":"t\"1","headers.trace":"x"}}"#
        );
        assert_eq!(
            envelope("[1,2]", &[]).unwrap(),
            r#"{"value":[1,2],"_metadata":{}}"#
        );
    }

    #[test]
    fn an_envelope_is_kept_as_it_is() {
        assert_eq!(
            envelope(
                r#"{"value":{"a":1},"_metadata":{"offset":7}}"#,
                &[("topic", "t")]
            )
            .unwrap(),
            r#"{"value":{"a":1},"_metadata":{"offset":7}}"#
        );
        assert_eq!(
            envelope(r#"{"value":"x"}"#, &[]).unwrap(),
            r#"{"value":"x","_metadata":{}}"#
        );
    }

    #[test]
    fn a_lookalike_with_other_fields_is_wrapped() {
        assert_eq!(
            envelope(r#"{"value":1,"unit":"kg"}"#, &[]).unwrap(),
            r#"{"value":{"value":1,"unit":"kg"},"_metadata":{}}"#
        );
        assert_eq!(
            envelope(r#"{"value":1,"_metadata":5}"#, &[]).unwrap(),
            r#"{"value":{"value":1,"_metadata":5},"_metadata":{}}"#
        );
    }

    #[test]
    fn a_payload_that_is_not_json_is_refused() {
        assert!(
            envelope("{oops", &[])
                .unwrap_err()
                .contains("not valid JSON")
        );
    }
}
