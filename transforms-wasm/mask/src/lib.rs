//! `mask`: hides the values of sensitive fields.

use dataflow_transform_sdk::json::{SmolStr, Value};
use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};
use serde::{Deserialize, Serialize};

/// Configuration of `mask`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MaskConfig {
    /// Paths of the fields to mask (wildcards mask every match).
    pub fields: Vec<String>,
    /// The mask character (exactly one character); default `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_char: Option<String>,
    /// Keep the value's length (in characters of its string form); default false,
    /// which writes exactly three mask characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_length: Option<bool>,
}

/// The `mask` transform.
pub struct Mask {
    fields: Vec<FieldPath>,
    mask_char: char,
    keep_length: bool,
    fixed: SmolStr,
}

impl Transform for Mask {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: MaskConfig = parse_config(config)?;
        if config.fields.is_empty() {
            return Err(ConfigError::field("fields", "must not be empty"));
        }
        let fields = config
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                FieldPath::parse(f).map_err(|e| ConfigError::field(&format!("fields[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let text = config.mask_char.as_deref().unwrap_or("*");
        let mut chars = text.chars();
        let mask_char = match (chars.next(), chars.next()) {
            (Some(c), None) => c,
            _ => {
                return Err(ConfigError::field(
                    "maskChar",
                    format!("must be exactly one character, got {text:?}"),
                ));
            }
        };
        Ok(Self {
            fields,
            mask_char,
            keep_length: config.keep_length.unwrap_or(false),
            fixed: SmolStr::from_iter(std::iter::repeat_n(mask_char, 3)),
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        for field in &self.fields {
            field.for_each_mut(&mut record.value, &mut |value| {
                let masked = if self.keep_length {
                    SmolStr::from_iter(std::iter::repeat_n(self.mask_char, char_len(value)))
                } else {
                    self.fixed.clone()
                };
                *value = Value::String(masked);
            });
        }
        out.push(record);
        Ok(())
    }
}

/// Length in characters of a value's string form: a string's own characters, any
/// other value's JSON text.
fn char_len(value: &Value) -> usize {
    match value {
        Value::String(s) => s.chars().count(),
        Value::Bool(true) | Value::Null => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => n.as_str().len(),
        other => other.to_string().chars().count(),
    }
}

dataflow_transform_sdk::export_if_component!(Mask);
