//! `timestamp`: sets a field to the current UTC time (WASI wall clock).

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, SecondsFormat, Utc};
use dataflow_transform_sdk::json::{Number, Value};
use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};
use serde::{Deserialize, Serialize};

/// Configuration of `timestamp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TimestampConfig {
    /// Field to set (a dotted path or JSONPath); default `created_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_name: Option<String>,
    /// `RFC3339` (default), `RFC3339Nano`, `Unix`, `UnixMilli`, a Go layout such as
    /// `2006-01-02 15:04:05`, or a strftime pattern containing `%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// The `timestamp` transform.
pub struct Timestamp {
    field: FieldPath,
    format: Format,
    /// The last rendered value and the clock reading (in the format's resolution) it is for.
    cached: Option<(i128, Value)>,
}

enum Format {
    Rfc3339,
    Rfc3339Nano,
    Unix,
    UnixMilli,
    Pattern {
        items: Vec<Item<'static>>,
        sub_second: bool,
    },
}

impl Format {
    fn parse(text: &str) -> Result<Self, ConfigError> {
        let pattern = match text {
            "RFC3339" => return Ok(Format::Rfc3339),
            "RFC3339Nano" => return Ok(Format::Rfc3339Nano),
            "Unix" => return Ok(Format::Unix),
            "UnixMilli" => return Ok(Format::UnixMilli),
            _ if text.contains('%') => text.to_owned(),
            _ => go_layout_to_strftime(text).ok_or_else(|| {
                ConfigError::field(
                    "format",
                    format!(
                        "{text:?} is not RFC3339, RFC3339Nano, Unix, UnixMilli, a Go layout or a strftime pattern"
                    ),
                )
            })?,
        };
        let items = StrftimeItems::new(&pattern).parse_to_owned().map_err(|_| {
            ConfigError::field("format", format!("invalid strftime pattern {text:?}"))
        })?;
        // chrono's fractional-second items (public and internal) all carry
        // "Nanosecond" in their names; only those need sub-second rendering.
        let sub_second = items
            .iter()
            .any(|item| format!("{item:?}").contains("Nanosecond"));
        Ok(Format::Pattern { items, sub_second })
    }

    /// The clock reading at this format's resolution; equal readings render equally.
    fn resolution_key(&self, secs: i64, nanos: u32) -> i128 {
        match self {
            Format::Rfc3339
            | Format::Unix
            | Format::Pattern {
                sub_second: false, ..
            } => i128::from(secs),
            Format::UnixMilli => i128::from(secs) * 1000 + i128::from(nanos / 1_000_000),
            Format::Rfc3339Nano
            | Format::Pattern {
                sub_second: true, ..
            } => i128::from(secs) * 1_000_000_000 + i128::from(nanos),
        }
    }

    fn render(&self, secs: i64, nanos: u32) -> Value {
        let time = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap_or_default();
        match self {
            Format::Rfc3339 => Value::from(time.to_rfc3339_opts(SecondsFormat::Secs, true)),
            Format::Rfc3339Nano => {
                let mut text = time.format("%Y-%m-%dT%H:%M:%S").to_string();
                if nanos != 0 {
                    let digits = format!("{nanos:09}");
                    text.push('.');
                    text.push_str(digits.trim_end_matches('0'));
                }
                text.push('Z');
                Value::from(text)
            }
            Format::Unix => Value::Number(Number::from(secs)),
            Format::UnixMilli => {
                Value::Number(Number::from(secs * 1000 + i64::from(nanos / 1_000_000)))
            }
            Format::Pattern { items, .. } => {
                Value::from(time.format_with_items(items.iter()).to_string())
            }
        }
    }
}

/// Go reference-time tokens and their strftime equivalents, longest first. The
/// time is always UTC, so zone tokens become fixed text.
const GO_TOKENS: &[(&str, &str)] = &[
    ("January", "%B"),
    ("Monday", "%A"),
    ("Z07:00", "Z"),
    ("-07:00", "+00:00"),
    ("Z0700", "Z"),
    ("-0700", "+0000"),
    (".000000000", "%.9f"),
    (".999999999", "%.f"),
    (".000000", "%.6f"),
    (".999999", "%.f"),
    ("2006", "%Y"),
    (".000", "%.3f"),
    (".999", "%.f"),
    ("-07", "+00"),
    ("Jan", "%b"),
    ("Mon", "%a"),
    ("MST", "UTC"),
    ("002", "%j"),
    ("01", "%m"),
    ("02", "%d"),
    ("_2", "%e"),
    ("03", "%I"),
    ("04", "%M"),
    ("05", "%S"),
    ("06", "%y"),
    ("15", "%H"),
    ("PM", "%p"),
    ("pm", "%P"),
    ("1", "%-m"),
    ("2", "%-d"),
    ("3", "%-I"),
    ("4", "%-M"),
    ("5", "%-S"),
];

/// Translates a Go time layout into a strftime pattern; `None` when the text holds
/// no Go layout element at all.
fn go_layout_to_strftime(layout: &str) -> Option<String> {
    let mut out = String::with_capacity(layout.len() * 2);
    let mut rest = layout;
    let mut found = false;
    while !rest.is_empty() {
        if let Some((token, strftime)) = GO_TOKENS.iter().find(|(t, _)| rest.starts_with(t)) {
            out.push_str(strftime);
            rest = &rest[token.len()..];
            found = true;
        } else {
            let c = rest.chars().next()?;
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    found.then_some(out)
}

impl Transform for Timestamp {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: TimestampConfig = parse_config(config)?;
        let field_text = config.field_name.as_deref().unwrap_or("created_at");
        let field = FieldPath::parse(field_text).map_err(|e| ConfigError::field("fieldName", e))?;
        if field.has_wildcard() {
            return Err(ConfigError::field(
                "fieldName",
                "must not contain wildcards",
            ));
        }
        let format = Format::parse(config.format.as_deref().unwrap_or("RFC3339"))?;
        Ok(Self {
            field,
            format,
            cached: None,
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| TransformError::failed("the wall clock is before 1970"))?;
        let secs = i64::try_from(now.as_secs())
            .map_err(|_| TransformError::failed("the wall clock is out of range"))?;
        let nanos = now.subsec_nanos();
        let key = self.format.resolution_key(secs, nanos);
        let value = match &self.cached {
            Some((cached_key, value)) if *cached_key == key => value.clone(),
            _ => {
                let value = self.format.render(secs, nanos);
                self.cached = Some((key, value.clone()));
                value
            }
        };
        if !self.field.set(&mut record.value, value) {
            return Err(TransformError::invalid_data(format!(
                "cannot set {}: it runs through a missing array element",
                self.field
            )));
        }
        out.push(record);
        Ok(())
    }
}

dataflow_transform_sdk::export_if_component!(Timestamp);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_layouts_translate() {
        assert_eq!(
            go_layout_to_strftime("2006-01-02 15:04:05").unwrap(),
            "%Y-%m-%d %H:%M:%S"
        );
        assert_eq!(
            go_layout_to_strftime("02/01/06 3:04PM").unwrap(),
            "%d/%m/%y %-I:%M%p"
        );
        assert_eq!(
            go_layout_to_strftime("2006-01-02T15:04:05.000Z07:00").unwrap(),
            "%Y-%m-%dT%H:%M:%S%.3fZ"
        );
        assert!(go_layout_to_strftime("hello").is_none());
    }

    #[test]
    fn renders_each_format() {
        let secs = 1_700_000_000; // 2023-11-14T22:13:20Z
        let cases = [
            ("RFC3339", Value::from("2023-11-14T22:13:20Z")),
            ("RFC3339Nano", Value::from("2023-11-14T22:13:20.5Z")),
            ("Unix", Value::from(1_700_000_000i64)),
            ("UnixMilli", Value::from(1_700_000_000_500i64)),
            ("2006-01-02 15:04:05", Value::from("2023-11-14 22:13:20")),
            ("%Y/%m/%d", Value::from("2023/11/14")),
        ];
        for (format, expected) in cases {
            let f = Format::parse(format).unwrap();
            assert_eq!(f.render(secs, 500_000_000), expected, "{format}");
        }
    }

    #[test]
    fn bad_formats_are_config_errors() {
        for bad in ["banana", "%Q%"] {
            let err = Format::parse(bad).err().unwrap();
            assert!(err.to_string().starts_with("format:"), "{err}");
        }
    }
}
