//! `remove`: deletes fields.

use dataflow_transform_config::RemoveConfig;
use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// The `remove` transform.
pub struct Remove {
    fields: Vec<FieldPath>,
}

impl Transform for Remove {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let fields = parse_config::<RemoveConfig>(config)?.fields()?;
        Ok(Self { fields })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        for field in &self.fields {
            field.remove(&mut record.value);
        }
        out.push(record);
        Ok(())
    }
}

dataflow_transform_sdk::export_if_component!(Remove);
