//! `remove`: deletes fields.

use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};
use serde::{Deserialize, Serialize};

/// Configuration of `remove`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RemoveConfig {
    /// Paths to delete (wildcards delete every match; missing paths are skipped).
    pub fields: Vec<String>,
}

/// The `remove` transform.
pub struct Remove {
    fields: Vec<FieldPath>,
}

impl Transform for Remove {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: RemoveConfig = parse_config(config)?;
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
