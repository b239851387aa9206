//! Configs of the transforms that convert values or bring data in from outside
//! the document: `cast`, `timezone`, `debeziumUnwrap` and `headersToPayload`.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::FixedOffset;
use dataflow_core::ConfigError;
use dataflow_core::path::FieldPath;
use serde::{Deserialize, Serialize};

use crate::BuiltinConfig;

/// The type `cast` converts a field to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum CastType {
    /// A JSON string (objects and arrays become their JSON text).
    String,
    /// A whole number (floats are truncated toward zero).
    Integer,
    /// A floating-point number.
    Float,
    /// `true` or `false`.
    Boolean,
}

/// Configuration of `cast`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CastConfig {
    /// Field path to type: `string`, `integer`, `float` or `boolean`. Wildcards
    /// cast every match; missing fields and nulls are left alone.
    pub fields: BTreeMap<String, CastType>,
}

impl CastConfig {
    /// Each path with its type.
    pub fn fields(&self) -> Result<Vec<(FieldPath, CastType)>, ConfigError> {
        if self.fields.is_empty() {
            return Err(ConfigError::field("fields", "must not be empty"));
        }
        self.fields
            .iter()
            .map(|(path, to)| {
                FieldPath::parse(path)
                    .map(|path| (path, *to))
                    .map_err(|e| ConfigError::field(&format!("fields.{path}"), e))
            })
            .collect()
    }
}

impl BuiltinConfig for CastConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.fields().map(drop)
    }
}

/// A time zone: a named zone from the IANA database, or a fixed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// `Europe/Berlin`, `America/New_York`, `UTC`, ...
    Named(chrono_tz::Tz),
    /// `+05:30`, `-08:00`, `Z`.
    Fixed(FixedOffset),
}

impl Zone {
    /// Parses an IANA name or an offset `±HH:MM` (or `Z`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "Z" {
            return Ok(Zone::Named(chrono_tz::Tz::UTC));
        }
        if text.starts_with(['+', '-']) {
            return FixedOffset::from_str(text)
                .map(Zone::Fixed)
                .map_err(|_| format!("{text:?} is not an offset like +05:30"));
        }
        chrono_tz::Tz::from_str(text)
            .map(Zone::Named)
            .map_err(|_| format!("{text:?} is not a zone of the IANA database (e.g. Europe/Berlin) or an offset like +05:30"))
    }
}

/// How `timezone` reads a number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum EpochUnit {
    /// Seconds since 1970.
    Seconds,
    /// Milliseconds since 1970 (the default).
    #[default]
    Millis,
    /// Microseconds since 1970 (Debezium's `MicroTimestamp`).
    Micros,
}

/// Configuration of `timezone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TimezoneConfig {
    /// Paths of the timestamps to convert (wildcards convert every match; missing
    /// fields and nulls are left alone).
    pub fields: Vec<String>,
    /// The zone to write them in: an IANA name (`Europe/Berlin`) or an offset (`+05:30`).
    pub to: String,
    /// The zone of timestamps written without an offset; default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The unit of numeric timestamps; default `millis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_unit: Option<EpochUnit>,
}

impl TimezoneConfig {
    /// The field paths.
    pub fn fields(&self) -> Result<Vec<FieldPath>, ConfigError> {
        crate::fields::field_paths(&self.fields)
    }

    /// The target zone.
    pub fn to(&self) -> Result<Zone, ConfigError> {
        Zone::parse(&self.to).map_err(|e| ConfigError::field("to", e))
    }

    /// The zone of timestamps without an offset.
    pub fn from(&self) -> Result<Zone, ConfigError> {
        match self.from.as_deref().filter(|f| !f.is_empty()) {
            Some(from) => Zone::parse(from).map_err(|e| ConfigError::field("from", e)),
            None => Ok(Zone::Named(chrono_tz::Tz::UTC)),
        }
    }
}

impl BuiltinConfig for TimezoneConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.fields()?;
        self.to()?;
        self.from().map(drop)
    }
}

/// What `debeziumUnwrap` does with a delete event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum DeleteHandling {
    /// Emit the deleted row (`before`) with `__deleted: true`; every other row
    /// gets `__deleted: false` (the default).
    #[default]
    Rewrite,
    /// Drop delete events.
    Drop,
}

/// Configuration of `debeziumUnwrap`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DebeziumUnwrapConfig {
    /// `rewrite` (default) or `drop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_handling: Option<DeleteHandling>,
    /// Drop tombstones (a `null` message, or a `null` payload); default true.
    /// When false they pass on unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_tombstones: Option<bool>,
    /// Add the operation (`c`, `u`, `r`, `d`) as `__op`; default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_op: Option<bool>,
    /// Fields of the event's `source` block to add as `source_<name>`
    /// (e.g. `table`, `db`, `lsn`, `ts_ms`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_fields: Vec<String>,
}

impl BuiltinConfig for DebeziumUnwrapConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (i, name) in self.source_fields.iter().enumerate() {
            if name.is_empty() {
                return Err(ConfigError::field(
                    &format!("sourceFields[{i}]"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

/// Configuration of `headersToPayload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeadersToPayloadConfig {
    /// Names of the headers to copy (the source's `headers.<name>` metadata).
    pub headers: Vec<String>,
    /// Prefix of the field each header is written to (default none: the field is
    /// the header's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Path of an object to write them under, instead of the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl HeadersToPayloadConfig {
    /// Each metadata key to read, with the key to write it to.
    pub fn headers(&self) -> Result<Vec<(String, String)>, ConfigError> {
        if self.headers.is_empty() {
            return Err(ConfigError::field("headers", "must not be empty"));
        }
        let prefix = self.prefix.as_deref().unwrap_or("");
        self.headers
            .iter()
            .enumerate()
            .map(|(i, name)| {
                if name.is_empty() {
                    return Err(ConfigError::field(
                        &format!("headers[{i}]"),
                        "must not be empty",
                    ));
                }
                Ok((format!("headers.{name}"), format!("{prefix}{name}")))
            })
            .collect()
    }

    /// The object the headers go under, if not the top level.
    pub fn field(&self) -> Result<Option<FieldPath>, ConfigError> {
        self.field
            .as_deref()
            .filter(|f| !f.is_empty())
            .map(|f| crate::reshape::single_path("field", f))
            .transpose()
    }
}

impl BuiltinConfig for HeadersToPayloadConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.headers()?;
        self.field().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_by_name_and_offset() {
        assert!(matches!(Zone::parse("Europe/Berlin"), Ok(Zone::Named(_))));
        assert!(
            matches!(Zone::parse("+05:30"), Ok(Zone::Fixed(o)) if o.local_minus_utc() == 19_800)
        );
        assert_eq!(Zone::parse("Z"), Ok(Zone::Named(chrono_tz::Tz::UTC)));
        assert!(Zone::parse("Mars/Olympus").unwrap_err().contains("IANA"));
        assert!(Zone::parse("+25:00").is_err());
        let config = TimezoneConfig {
            fields: vec!["at".into()],
            to: "Nowhere".into(),
            from: None,
            epoch_unit: None,
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("to: ")
        );
    }

    #[test]
    fn cast_paths_are_checked() {
        let config = CastConfig {
            fields: BTreeMap::from([("a..b".to_owned(), CastType::Integer)]),
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("fields.a..b: ")
        );
    }
}
