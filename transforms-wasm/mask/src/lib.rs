//! `mask`: hides the values of sensitive fields.

use dataflow_transform_config::MaskConfig;
use dataflow_transform_sdk::json::{SmolStr, Value};
use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

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
        let fields = config.fields()?;
        let mask_char = config.mask_char()?;
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
