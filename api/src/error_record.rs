//! The error-sink record: `{error: {...}, original_message}`.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::{ErrorType, SinkType, Stage};

/// Everything known about one failed message.
#[derive(Debug, Clone, Copy)]
pub struct ErrorRecord<'a> {
    /// Readable reason.
    pub message: &'a str,
    /// Classified type.
    pub error_type: ErrorType,
    /// Pipeline stage.
    pub stage: Stage,
    /// Type of the sink the message was meant for.
    pub original_sink: SinkType,
    /// Index of the failing transformation, if any.
    pub transformer_index: Option<usize>,
    /// The message's metadata.
    pub metadata: &'a [(String, String)],
    /// The message as it was read from the source.
    pub original: &'a [u8],
}

/// Deepest original document embedded as JSON; deeper ones are kept as text, so
/// every record stays readable by common JSON parsers (most stop at 128 levels).
pub const MAX_EMBEDDED_DEPTH: usize = 64;

impl ErrorRecord<'_> {
    /// The JSON document written to the error sink. The original message is
    /// embedded as it was when it is JSON nested at most [`MAX_EMBEDDED_DEPTH`]
    /// deep; otherwise it is kept as text under `original_data`, or, when it is not
    /// UTF-8, as base64 under `original_data_base64`, so it can be replayed.
    pub fn to_json(&self) -> Vec<u8> {
        let mut error = Map::new();
        // An error text may quote a connection string or a credential.
        error.insert(
            "message".into(),
            Value::from(crate::redact::redact(self.message).as_ref()),
        );
        error.insert("type".into(), Value::from(self.error_type.as_str()));
        error.insert("stage".into(), Value::from(self.stage.as_str()));
        error.insert(
            "timestamp".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        error.insert(
            "original_sink".into(),
            Value::from(self.original_sink.as_str()),
        );
        if let Some(index) = self.transformer_index {
            error.insert("transformer_index".into(), Value::from(index));
        }
        if !self.metadata.is_empty() {
            let metadata: Map<String, Value> = self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            error.insert("metadata".into(), Value::Object(metadata));
        }
        let embeddable = json_depth(self.original) <= MAX_EMBEDDED_DEPTH;
        let original = match serde_json::from_slice::<&RawValue>(self.original) {
            Ok(raw) if embeddable => Original::Json(raw),
            _ => match std::str::from_utf8(self.original) {
                Ok(text) => Original::Text {
                    original_data: Cow::Borrowed(text),
                },
                Err(_) => Original::Binary {
                    original_data_base64: BASE64.encode(self.original),
                },
            },
        };
        let record = Wire {
            error,
            original_message: original,
        };
        // Serialising maps of strings and numbers and valid raw JSON cannot fail.
        serde_json::to_vec(&record).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct Wire<'a> {
    error: Map<String, Value>,
    original_message: Original<'a>,
}

/// The failed message: verbatim when it is JSON, as text or base64 otherwise.
#[derive(Serialize)]
#[serde(untagged)]
enum Original<'a> {
    Json(&'a RawValue),
    Text { original_data: Cow<'a, str> },
    Binary { original_data_base64: String },
}

/// The deepest nesting of arrays and objects in `bytes` (a cheap upper bound that
/// skips strings; it stops counting once past the limit).
fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > MAX_EMBEDDED_DEPTH {
                    return deepest;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The form of a record the error sink refused, for a second try: every text in
/// `error` without NUL characters (databases refuse them), the refusal noted, and
/// the original message as base64, which any sink can store.
pub fn fallback_record(record: &[u8], refusal: &str) -> Vec<u8> {
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(record).ok();
    let (mut error, original) = match parsed {
        Some(mut map) => {
            let error = match map.remove("error") {
                Some(Value::Object(error)) => error,
                _ => Map::new(),
            };
            let original = match map.remove("original_message") {
                Some(Value::Object(mut o))
                    if o.len() == 1 && o.contains_key("original_data_base64") =>
                {
                    o.remove("original_data_base64")
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                }
                Some(Value::Object(mut o)) if o.len() == 1 && o.contains_key("original_data") => o
                    .remove("original_data")
                    .and_then(|v| v.as_str().map(|t| BASE64.encode(t)))
                    .unwrap_or_default(),
                Some(other) => BASE64.encode(other.to_string()),
                None => String::new(),
            };
            (error, original)
        }
        None => (Map::new(), BASE64.encode(record)),
    };
    for value in error.values_mut() {
        strip_nul(value);
    }
    let mut refusal = refusal.to_owned();
    refusal.retain(|c| c != '\0');
    error.insert("error_sink_refusal".into(), Value::from(refusal));
    let mut wrapped = Map::new();
    wrapped.insert("original_data_base64".into(), Value::from(original));
    let mut out = Map::new();
    out.insert("error".into(), Value::Object(error));
    out.insert("original_message".into(), Value::Object(wrapped));
    serde_json::to_vec(&Value::Object(out)).unwrap_or_default()
}

/// Removes NUL characters from every string in `value`.
fn strip_nul(value: &mut Value) {
    match value {
        Value::String(text) => text.retain(|c| c != '\0'),
        Value::Object(map) => map.values_mut().for_each(strip_nul),
        Value::Array(items) => items.iter_mut().for_each(strip_nul),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn record_shape() {
        let metadata = vec![("topic".to_owned(), "in".to_owned())];
        let record = ErrorRecord {
            message: "boom",
            error_type: ErrorType::TransformTrap,
            stage: Stage::Transform,
            original_sink: SinkType::File,
            transformer_index: Some(2),
            metadata: &metadata,
            original: b"{\"a\":1.50,\"e\":1e3}",
        };
        let value: Value = serde_json::from_slice(&record.to_json()).unwrap();
        assert_eq!(value["error"]["type"], "transform_trap");
        assert_eq!(value["error"]["stage"], "transform");
        assert_eq!(value["error"]["transformer_index"], 2);
        assert_eq!(value["error"]["original_sink"], "file");
        assert_eq!(value["error"]["metadata"]["topic"], "in");
        assert!(value["error"]["timestamp"].as_str().unwrap().ends_with('Z'));
        let text = String::from_utf8(record.to_json()).unwrap();
        assert!(
            text.ends_with(r#""original_message":{"a":1.50,"e":1e3}}"#),
            "verbatim: {text}"
        );

        let text = ErrorRecord {
            original: b"not json",
            transformer_index: None,
            ..record
        };
        let value: Value = serde_json::from_slice(&text.to_json()).unwrap();
        assert_eq!(
            value["original_message"],
            json!({"original_data": "not json"})
        );
        assert!(value["error"].get("transformer_index").is_none());
    }

    #[test]
    fn originals_that_are_not_utf8_or_too_deep_stay_replayable_and_parseable() {
        let record = ErrorRecord {
            message: "bad",
            error_type: ErrorType::InvalidData,
            stage: Stage::Read,
            original_sink: SinkType::File,
            transformer_index: None,
            metadata: &[],
            original: b"caf\xe9 \xff",
        };
        let value: Value = serde_json::from_slice(&record.to_json()).unwrap();
        assert_eq!(
            BASE64
                .decode(
                    value["original_message"]["original_data_base64"]
                        .as_str()
                        .unwrap()
                )
                .unwrap(),
            b"caf\xe9 \xff"
        );
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let record = ErrorRecord {
            original: deep.as_bytes(),
            ..record
        };
        let value: Value = serde_json::from_slice(&record.to_json())
            .expect("the record parses with serde_json's default recursion limit");
        assert_eq!(
            value["original_message"]["original_data"]
                .as_str()
                .unwrap()
                .len(),
            deep.len()
        );
        let shallow = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        let record = ErrorRecord {
            original: shallow.as_bytes(),
            ..record
        };
        let value: Value = serde_json::from_slice(&record.to_json()).unwrap();
        assert!(value["original_message"].is_array(), "embedded as JSON");
    }

    #[test]
    fn the_fallback_drops_nul_and_carries_the_original_as_base64() {
        let metadata = vec![("topic".to_owned(), "in".to_owned())];
        let original = br#"{"orderId":"bad","s":"a\u0000b"}"#;
        let record = ErrorRecord {
            message: "invalid input \u{0} here",
            error_type: ErrorType::InvalidData,
            stage: Stage::SinkWrite,
            original_sink: SinkType::Postgresql,
            transformer_index: None,
            metadata: &metadata,
            original,
        }
        .to_json();
        let fallback = fallback_record(
            &record,
            "unsupported Unicode escape sequence (SQLSTATE 22P05)",
        );
        let text = String::from_utf8(fallback.clone()).unwrap();
        assert!(!text.contains("\\u0000"), "{text}");
        let value: Value = serde_json::from_slice(&fallback).unwrap();
        assert_eq!(value["error"]["type"], "invalid_data");
        assert_eq!(value["error"]["metadata"]["topic"], "in");
        assert!(
            value["error"]["error_sink_refusal"]
                .as_str()
                .unwrap()
                .contains("22P05")
        );
        let decoded = BASE64
            .decode(
                value["original_message"]["original_data_base64"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(decoded, original, "the original bytes, replayable");
    }
}
