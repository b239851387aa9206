//! `extractField`: replaces the message with the value of one of its fields.

use dataflow_transform_config::ExtractFieldConfig;
use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// The `extractField` transform.
pub struct ExtractField {
    field: FieldPath,
}

impl Transform for ExtractField {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: ExtractFieldConfig = parse_config(config)?;
        Ok(Self {
            field: config.field()?,
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        // A missing field is an error record, not an empty message: a message whose
        // shape is wrong must be seen, not silently turned into `null`.
        let value = self.field.take(&mut record.value).ok_or_else(|| {
            TransformError::invalid_data(format!("the message has no field {}", self.field))
        })?;
        record.value = value;
        out.push(record);
        Ok(())
    }
}

dataflow_transform_sdk::export_if_component!(ExtractField);
