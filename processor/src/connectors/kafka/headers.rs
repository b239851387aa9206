//! Kafka record headers: read into message metadata by the source, written from
//! message fields or metadata by the sink.
//!
//! A header `trace-id` becomes the metadata key `headers.trace-id`. Its value is
//! the header's text when it is UTF-8; other bytes are written as `base64:` and
//! their base64 form, which the sink turns back into the same bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use dataflow_core::find_meta;
use dataflow_core::json::Value;
use dataflow_core::path::FieldPath;
use rdkafka::message::{Header, Headers, OwnedHeaders};

use crate::connectors::ConnectorError;

/// Prefix of the metadata keys that hold a record's headers.
pub const HEADER_PREFIX: &str = "headers.";

/// Marker of a header value that is not UTF-8, carried as base64.
pub const BINARY_MARKER: &str = "base64:";

/// Most headers one record may carry into a flow; a record with more is rejected.
pub const MAX_HEADERS: usize = 64;

/// Appends the headers of a record to its metadata, or says why it has too many.
pub fn read_headers(
    headers: &impl Headers,
    metadata: &mut Vec<(String, String)>,
) -> Result<(), String> {
    if headers.count() > MAX_HEADERS {
        return Err(format!(
            "the record has {} headers; at most {MAX_HEADERS} are read",
            headers.count()
        ));
    }
    for header in headers.iter() {
        let value = match header.value {
            None => String::new(),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) if !text.starts_with(BINARY_MARKER) => text.to_owned(),
                _ => format!("{BINARY_MARKER}{}", STANDARD.encode(bytes)),
            },
        };
        metadata.push((format!("{HEADER_PREFIX}{}", header.key), value));
    }
    Ok(())
}

/// Where a written header's value comes from.
enum HeaderSource {
    /// A field of the message (strings as they are, other values as JSON text).
    Field(FieldPath),
    /// A metadata key (`metadata.<key>`, e.g. `metadata.headers.trace-id`).
    Metadata(String),
}

/// The headers a Kafka sink writes: name and where its value comes from.
pub struct HeaderWriter {
    headers: Vec<(String, HeaderSource)>,
}

impl HeaderWriter {
    /// Reads the sink's `headers` map (spec path `path`): header name to a field
    /// path, or to `metadata.<key>`.
    pub fn new<'a>(
        path: &str,
        headers: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<Self, ConnectorError> {
        let headers = headers
            .into_iter()
            .map(|(name, from)| {
                let source = match from.strip_prefix("metadata.") {
                    Some(key) if !key.is_empty() => HeaderSource::Metadata(key.to_owned()),
                    _ => HeaderSource::Field(FieldPath::parse(from).map_err(|e| {
                        ConnectorError::Config {
                            path: format!("{path}.headers.{name}"),
                            reason: e.to_string(),
                        }
                    })?),
                };
                Ok((name.clone(), source))
            })
            .collect::<Result<_, ConnectorError>>()?;
        Ok(Self { headers })
    }

    /// Whether no header is configured.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Whether a header reads the message's document.
    pub fn reads_document(&self) -> bool {
        self.headers
            .iter()
            .any(|(_, source)| matches!(source, HeaderSource::Field(_)))
    }

    /// The headers of one message; one whose source is missing or null is left out.
    pub fn headers(&self, document: Option<&Value>, metadata: &[(String, String)]) -> OwnedHeaders {
        let mut out = OwnedHeaders::new_with_capacity(self.headers.len());
        for (name, source) in &self.headers {
            let value: Option<Vec<u8>> = match source {
                HeaderSource::Field(path) => match document.and_then(|d| path.get(d)) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(text)) => Some(text.as_bytes().to_vec()),
                    Some(other) => Some(other.to_json()),
                },
                HeaderSource::Metadata(key) => find_meta(metadata, key).map(|text| {
                    text.strip_prefix(BINARY_MARKER)
                        .and_then(|encoded| STANDARD.decode(encoded).ok())
                        .unwrap_or_else(|| text.as_bytes().to_vec())
                }),
            };
            if let Some(value) = value {
                out = out.insert(Header {
                    key: name,
                    value: Some(&value),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_through_metadata_text_and_binary() {
        let incoming = OwnedHeaders::new()
            .insert(Header {
                key: "trace-id",
                value: Some("abc".as_bytes()),
            })
            .insert(Header {
                key: "blob",
                value: Some(&[0xff, 0x00, 0x01][..]),
            })
            .insert(Header {
                key: "tricky",
                value: Some("base64:not really".as_bytes()),
            })
            .insert(Header::<&[u8]> {
                key: "empty",
                value: None,
            });
        let mut metadata = vec![("topic".to_owned(), "t".to_owned())];
        read_headers(&incoming, &mut metadata).unwrap();
        assert_eq!(
            metadata[1..],
            [
                ("headers.trace-id".to_owned(), "abc".to_owned()),
                ("headers.blob".to_owned(), "base64:/wAB".to_owned()),
                (
                    "headers.tricky".to_owned(),
                    format!("base64:{}", STANDARD.encode("base64:not really"))
                ),
                ("headers.empty".to_owned(), String::new()),
            ]
        );
        let config: Vec<(String, String)> = [
            ("trace-id", "metadata.headers.trace-id"),
            ("blob", "metadata.headers.blob"),
            ("tricky", "metadata.headers.tricky"),
            ("customer", "customer.id"),
            ("missing", "nothing.here"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let writer =
            HeaderWriter::new("spec.sink.kafka", config.iter().map(|(k, v)| (k, v))).unwrap();
        let document = Value::parse(br#"{"customer": {"id": 42}}"#).unwrap();
        let out = writer.headers(Some(&document), &metadata);
        let got: Vec<(String, Vec<u8>)> = out
            .iter()
            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
            .collect();
        assert_eq!(
            got,
            [
                ("trace-id".to_owned(), b"abc".to_vec()),
                ("blob".to_owned(), vec![0xff, 0x00, 0x01]),
                ("tricky".to_owned(), b"base64:not really".to_vec()),
                ("customer".to_owned(), b"42".to_vec()),
            ]
        );
    }

    #[test]
    fn too_many_headers_are_refused_and_bad_paths_named() {
        let mut many = OwnedHeaders::new();
        for i in 0..=MAX_HEADERS {
            many = many.insert(Header {
                key: &format!("h{i}"),
                value: Some("x".as_bytes()),
            });
        }
        let err = read_headers(&many, &mut Vec::new()).unwrap_err();
        assert!(err.contains("65 headers"), "{err}");
        let bad = [("h".to_owned(), "$..x".to_owned())];
        let err = HeaderWriter::new("spec.sink.kafka", bad.iter().map(|(k, v)| (k, v)))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("spec.sink.kafka.headers.h"), "{err}");
    }
}
