//! Configuration of `timestamp`, and its formats.

use chrono::format::{Item, StrftimeItems};
use dataflow_core::ConfigError;
use dataflow_core::path::FieldPath;
use serde::{Deserialize, Serialize};

use crate::{BuiltinConfig, non_empty};

/// Configuration of `timestamp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TimestampConfig {
    /// Field to set (a dotted path or JSONPath); default (also when empty) `created_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_name: Option<String>,
    /// `RFC3339` (default), `RFC3339Nano`, `Unix`, `UnixMilli`, a Go layout such as
    /// `2006-01-02 15:04:05`, or a strftime pattern containing `%`; empty means the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl TimestampConfig {
    /// The field to set, which must name one location.
    pub fn field(&self) -> Result<FieldPath, ConfigError> {
        let text = non_empty(self.field_name.as_deref()).unwrap_or("created_at");
        let field = FieldPath::parse(text).map_err(|e| ConfigError::field("fieldName", e))?;
        if field.has_wildcard() {
            return Err(ConfigError::field(
                "fieldName",
                "must not contain wildcards",
            ));
        }
        Ok(field)
    }

    /// The output format.
    pub fn format(&self) -> Result<TimestampFormat, ConfigError> {
        TimestampFormat::parse(non_empty(self.format.as_deref()).unwrap_or("RFC3339"))
    }
}

impl BuiltinConfig for TimestampConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.field()?;
        self.format().map(drop)
    }
}

/// How `timestamp` writes the time.
#[derive(Debug, Clone)]
pub enum TimestampFormat {
    /// `2023-11-14T22:13:20Z`
    Rfc3339,
    /// `2023-11-14T22:13:20.5Z` (trailing zeros trimmed)
    Rfc3339Nano,
    /// Seconds since 1970, a number.
    Unix,
    /// Milliseconds since 1970, a number.
    UnixMilli,
    /// A strftime pattern (a Go layout is translated into one).
    Pattern {
        /// The parsed pattern.
        items: Vec<Item<'static>>,
        /// Whether it shows fractions of a second.
        sub_second: bool,
    },
}

impl TimestampFormat {
    /// Parses a format name, Go layout or strftime pattern.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let pattern = match text {
            "RFC3339" => return Ok(TimestampFormat::Rfc3339),
            "RFC3339Nano" => return Ok(TimestampFormat::Rfc3339Nano),
            "Unix" => return Ok(TimestampFormat::Unix),
            "UnixMilli" => return Ok(TimestampFormat::UnixMilli),
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
        Ok(TimestampFormat::Pattern { items, sub_second })
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
    fn bad_formats_are_config_errors() {
        for bad in ["banana", "%Q%"] {
            let err = TimestampFormat::parse(bad).err().unwrap();
            assert!(err.to_string().starts_with("format:"), "{err}");
        }
    }
}
