//! One watched message as a client sees it: payload masked and cut to size.

use dataflow_core::Message;
use dataflow_core::json::Value;
use dataflow_core::path::FieldPath;
use dataflow_core::rename::KeyCase;
use serde::Serialize;

/// The default most payload bytes a sample carries.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;
/// The largest payload size a client may ask for.
pub const MAX_MAX_BYTES: usize = 1024 * 1024;
/// What a masked field's value becomes.
pub const MASKED: &str = "***";

/// A message seen at a point.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    /// The point's count of messages offered so far when this one was taken.
    pub seq: u64,
    /// The step that put it out (the last transformation before the point).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// When it was taken (RFC 3339, milliseconds).
    pub time: String,
    /// Its metadata (topic, partition, offset, key, route, ...).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The payload: the JSON document when it is JSON and whole, else text.
    pub payload: serde_json::Value,
    /// Whether the payload was cut at the size limit (it is then text).
    pub cut: bool,
    /// The payload's size before any cut.
    pub bytes: usize,
    /// For the error sink: the error (message, type, stage, step, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

/// The path `text` with each key respelled in `case` (`$`, indices and
/// other punctuation kept): `user.homeAddress` as `user.home_address`.
fn respelled(text: &str, case: KeyCase) -> String {
    text.split('.')
        .map(|segment| {
            let end = segment.find('[').unwrap_or(segment.len());
            let (name, rest) = segment.split_at(end);
            if name.is_empty() || name == "$" {
                segment.to_owned()
            } else {
                format!("{}{rest}", case.convert(name))
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Masks configured fields and cuts payloads to a size.
#[derive(Debug, Clone, Default)]
pub struct Shaper {
    masked: Vec<FieldPath>,
}

impl Shaper {
    /// A shaper masking the fields at `paths` (the flow's
    /// `observability.maskFields`, already checked).
    pub fn new(masked: Vec<FieldPath>) -> Self {
        Self { masked }
    }

    /// A shaper masking the fields `fields` name (dotted or `$` paths), each
    /// also as the `snakeCase` and `camelCase` steps spell it: a flow that
    /// renames keys must not show after that step the value it masks before
    /// it. A path that does not parse is skipped (the spec's validation
    /// reports it).
    pub fn for_fields<'a>(fields: impl IntoIterator<Item = &'a str>) -> Self {
        let mut texts: Vec<String> = Vec::new();
        for field in fields {
            let spellings = [
                field.to_owned(),
                respelled(field, KeyCase::Snake),
                respelled(field, KeyCase::UpperCamel),
            ];
            for text in spellings {
                if !texts.contains(&text) {
                    texts.push(text);
                }
            }
        }
        Self::new(
            texts
                .iter()
                .filter_map(|t| FieldPath::parse(t).ok())
                .collect(),
        )
    }

    /// `payload` with every masked field replaced by `***`, when it is JSON
    /// (bytes that are not JSON are kept: nothing in them can be found).
    pub fn masked<'a>(&self, payload: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        if self.masked.is_empty() {
            return std::borrow::Cow::Borrowed(payload);
        }
        let Ok(mut doc) = Value::parse(payload) else {
            return std::borrow::Cow::Borrowed(payload);
        };
        let mut hits = 0;
        for path in &self.masked {
            hits += path.for_each_mut(&mut doc, &mut |value| {
                *value = Value::String(MASKED.into());
            });
        }
        if hits == 0 {
            return std::borrow::Cow::Borrowed(payload);
        }
        let mut out = Vec::with_capacity(payload.len());
        doc.write_json(&mut out);
        std::borrow::Cow::Owned(out)
    }

    /// The payload as a sample carries it: masked, then the JSON document if
    /// it is whole and JSON, else its first `max_bytes` as text; whether it was cut.
    pub fn payload(&self, payload: &[u8], max_bytes: usize) -> (serde_json::Value, bool) {
        let masked = self.masked(payload);
        if masked.len() <= max_bytes {
            if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&masked) {
                return (doc, false);
            }
            return (
                serde_json::Value::String(String::from_utf8_lossy(&masked).into_owned()),
                false,
            );
        }
        // Cut at a character's start, so the text ends with whole characters.
        let mut end = max_bytes;
        while end > 0 && (masked[end] & 0b1100_0000) == 0b1000_0000 {
            end -= 1;
        }
        let text = String::from_utf8_lossy(&masked[..end]);
        (serde_json::Value::String(text.into_owned()), true)
    }

    /// A sample of `message` seen at a point.
    pub fn sample(
        &self,
        message: &Message,
        seq: u64,
        step: Option<usize>,
        max_bytes: usize,
    ) -> Sample {
        let (payload, cut) = self.payload(&message.payload, max_bytes);
        Sample {
            seq,
            step,
            time: now(),
            metadata: metadata(&message.metadata),
            payload,
            cut,
            bytes: message.payload.len(),
            error: None,
        }
    }
}

/// Metadata pairs as a JSON object.
pub fn metadata(pairs: &[(String, String)]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect()
}

/// The current time as samples show it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaper(paths: &[&str]) -> Shaper {
        Shaper::new(paths.iter().map(|p| FieldPath::parse(p).unwrap()).collect())
    }

    #[test]
    fn a_masked_field_is_found_in_its_other_spellings() {
        let shaper = Shaper::for_fields(["customerName", "home_address.zip_code"]);
        let masked =
            |doc: &str| String::from_utf8(shaper.masked(doc.as_bytes()).into_owned()).unwrap();
        assert_eq!(
            masked(r#"{"customer_name":"A B"}"#),
            r#"{"customer_name":"***"}"#
        );
        assert_eq!(
            masked(r#"{"customerName":"A B"}"#),
            r#"{"customerName":"***"}"#
        );
        assert_eq!(
            masked(r#"{"HomeAddress":{"ZipCode":"1"}}"#),
            r#"{"HomeAddress":{"ZipCode":"***"}}"#
        );
        assert_eq!(
            respelled("$.user.homeAddress[0]", KeyCase::Snake),
            "$.user.home_address[0]"
        );
    }

    #[test]
    fn masked_fields_show_stars_and_numbers_keep_their_text() {
        let shaper = shaper(&["card.number", "$.items[*].email"]);
        let payload = br#"{"id":1.50,"card":{"number":"4111","exp":"12/30"},"items":[{"email":"a@b"},{"email":"c@d"}]}"#;
        let (doc, cut) = shaper.payload(payload, DEFAULT_MAX_BYTES);
        assert!(!cut);
        assert_eq!(doc["card"]["number"], "***");
        assert_eq!(doc["card"]["exp"], "12/30");
        assert_eq!(doc["items"][1]["email"], "***");
        let masked = shaper.masked(payload);
        assert!(
            std::str::from_utf8(&masked)
                .unwrap()
                .contains(r#""id":1.50"#)
        );
    }

    #[test]
    fn a_payload_over_the_limit_is_cut_text_and_says_so() {
        let shaper = shaper(&["secret"]);
        let payload = format!(r#"{{"secret":"s","pad":"{}"}}"#, "é".repeat(100));
        let (doc, cut) = shaper.payload(payload.as_bytes(), 40);
        assert!(cut);
        let text = doc.as_str().unwrap();
        assert!(text.starts_with(r#"{"secret":"***""#), "{text}");
        assert!(text.len() <= 40 && !text.contains('\u{fffd}'), "{text}");
        let sample = shaper.sample(
            &Message {
                payload: payload.clone().into_bytes(),
                metadata: vec![("topic".into(), "t".into())],
            },
            7,
            Some(2),
            40,
        );
        assert_eq!(sample.bytes, payload.len());
        assert_eq!(sample.metadata["topic"], "t");
        assert!(sample.cut);
    }

    #[test]
    fn text_that_is_not_json_is_shown_as_text() {
        let (doc, cut) = Shaper::default().payload(b"plain <b>text</b>", 100);
        assert_eq!(doc, serde_json::Value::String("plain <b>text</b>".into()));
        assert!(!cut);
    }
}
