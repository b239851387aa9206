//! `camelCase`: renames object keys, `first_name` -> `FirstName` (PascalCase, as in the Go original).

use dataflow_transform_config::CamelCaseConfig;
use dataflow_transform_sdk::rename::{KeyCase, KeyRenamer};
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// The `camelCase` transform.
pub struct CamelCase {
    renamer: KeyRenamer,
}

impl Transform for CamelCase {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: CamelCaseConfig = parse_config(config)?;
        Ok(Self {
            renamer: KeyRenamer::new(KeyCase::UpperCamel, config.deep.unwrap_or(false)),
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        self.renamer.rename(&mut record.value);
        out.push(record);
        Ok(())
    }
}

dataflow_transform_sdk::export_if_component!(CamelCase);
