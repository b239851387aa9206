//! `hoistField`: moves the whole message under a field of a new object.

use dataflow_transform_config::HoistFieldConfig;
use dataflow_transform_sdk::json::{Map, Value};
use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// The `hoistField` transform.
pub struct HoistField {
    field: FieldPath,
}

impl Transform for HoistField {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: HoistFieldConfig = parse_config(config)?;
        Ok(Self {
            field: config.field()?,
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let inner = std::mem::replace(&mut record.value, Value::Object(Map::with_capacity(1)));
        if !self.field.set(&mut record.value, inner) {
            return Err(TransformError::invalid_data(format!(
                "cannot set {}: it runs through an array element",
                self.field
            )));
        }
        out.push(record);
        Ok(())
    }
}

dataflow_transform_sdk::export_if_component!(HoistField);
