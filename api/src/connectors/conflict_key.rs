//! The `conflictKey` of upserting sinks: one column or several. The Go original's
//! CRD types it as a string (`conflictKey: id`, or `"a, b"`), its fault-tolerance
//! guide writes a list (`conflictKey: [id]`); both are read, and it is written
//! back as a list.

use schemars::JsonSchema;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Columns that identify a row for an upsert, in order. Never empty once read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ConflictKey(Vec<String>);

/// Longest column name accepted (PostgreSQL's limit is 63 bytes, ClickHouse has
/// none; a longer one is a mistake).
const MAX_COLUMN_BYTES: usize = 256;
/// Most columns in one key.
const MAX_COLUMNS: usize = 32;

impl ConflictKey {
    /// The key's columns.
    pub fn columns(&self) -> &[String] {
        &self.0
    }

    /// Reads `text` as comma-separated column names.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::from_columns(text.split(',').map(str::to_owned))
    }

    fn from_columns(columns: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut out = Vec::new();
        for column in columns {
            let column = column.trim();
            if column.is_empty() {
                return Err("a column name is empty".into());
            }
            if column.len() > MAX_COLUMN_BYTES {
                return Err(format!(
                    "a column name is longer than {MAX_COLUMN_BYTES} bytes"
                ));
            }
            if out.len() == MAX_COLUMNS {
                return Err(format!("more than {MAX_COLUMNS} columns"));
            }
            if !out.iter().any(|c: &String| c == column) {
                out.push(column.to_owned());
            }
        }
        if out.is_empty() {
            return Err("names no column".into());
        }
        Ok(Self(out))
    }
}

impl<'de> Deserialize<'de> for ConflictKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = ConflictKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a column name, comma-separated names, or a list of names")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ConflictKey, E> {
                ConflictKey::parse(text).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ConflictKey, A::Error> {
                let mut columns = Vec::new();
                while let Some(column) = seq.next_element::<String>()? {
                    if columns.len() > MAX_COLUMNS {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_COLUMNS} columns"
                        )));
                    }
                    columns.push(column);
                }
                ConflictKey::from_columns(columns).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

impl JsonSchema for ConflictKey {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ConflictKey".into()
    }

    /// A string or a list of strings: Kubernetes' structural schemas cannot say
    /// "one of two types", so the server keeps the value as given and the webhook
    /// checks it.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> Result<ConflictKey, String> {
        serde_norway::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_conflict_key_is_a_name_a_comma_list_or_a_yaml_list() {
        assert_eq!(read("id").unwrap().columns(), ["id"]);
        assert_eq!(read("\"a, b\"").unwrap().columns(), ["a", "b"]);
        assert_eq!(read("[id]").unwrap().columns(), ["id"]);
        assert_eq!(read("[a, b, a]").unwrap().columns(), ["a", "b"]);
    }

    #[test]
    fn an_empty_or_oversized_conflict_key_is_refused() {
        for bad in ["\"\"", "[]", "\"a,,b\"", "[\" \"]", "42", "{a: 1}"] {
            assert!(read(bad).is_err(), "{bad} was accepted");
        }
        let long = "x".repeat(MAX_COLUMN_BYTES + 1);
        assert!(read(&long).unwrap_err().contains("longer than"));
        let many = format!(
            "[{}]",
            (0..40)
                .map(|i| format!("c{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(read(&many).unwrap_err().contains("more than"));
    }

    #[test]
    fn a_conflict_key_is_written_as_a_list() {
        let key = read("\"a,b\"").unwrap();
        assert_eq!(serde_json::to_string(&key).unwrap(), r#"["a","b"]"#);
    }
}
