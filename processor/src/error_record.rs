//! The error-sink record: `{error: {...}, original_message}`.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Everything known about one failed message.
#[derive(Debug, Clone, Copy)]
pub struct ErrorRecord<'a> {
    /// Readable reason.
    pub message: &'a str,
    /// Classified type (`invalid_data`, `transform_trap`, ...).
    pub error_type: &'a str,
    /// Pipeline stage (`read`, `transform`, `sink_write`).
    pub stage: &'a str,
    /// Type of the sink the message was meant for.
    pub original_sink: &'a str,
    /// Index of the failing transformation, if any.
    pub transformer_index: Option<usize>,
    /// The message's metadata.
    pub metadata: &'a [(String, String)],
    /// The message as it was read from the source.
    pub original: &'a [u8],
}

impl ErrorRecord<'_> {
    /// The JSON document written to the error sink. A non-JSON original is kept as
    /// text under `original_data`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut error = Map::new();
        error.insert("message".into(), Value::from(self.message));
        error.insert("type".into(), Value::from(self.error_type));
        error.insert("stage".into(), Value::from(self.stage));
        error.insert(
            "timestamp".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        error.insert("original_sink".into(), Value::from(self.original_sink));
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
        let original = match serde_json::from_slice::<&RawValue>(self.original) {
            Ok(raw) => Original::Json(raw),
            Err(_) => Original::Text {
                original_data: String::from_utf8_lossy(self.original),
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

/// The failed message: verbatim when it is JSON, as text otherwise.
#[derive(Serialize)]
#[serde(untagged)]
enum Original<'a> {
    Json(&'a RawValue),
    Text { original_data: Cow<'a, str> },
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
            error_type: "transform_trap",
            stage: "transform",
            original_sink: "file",
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
}
