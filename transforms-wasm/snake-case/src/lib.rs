//! `snakeCase`: renames object keys, `userID` -> `user_id`.

use dataflow_transform_config::SnakeCaseConfig;
use dataflow_transform_sdk::rename::{KeyCase, KeyRenamer};
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// The `snakeCase` transform.
pub struct SnakeCase {
    renamer: KeyRenamer,
}

impl Transform for SnakeCase {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: SnakeCaseConfig = parse_config(config)?;
        Ok(Self {
            renamer: KeyRenamer::new(KeyCase::Snake, config.deep.unwrap_or(false)),
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        self.renamer.rename(&mut record.value);
        out.push(record);
        Ok(())
    }
}

dataflow_transform_sdk::export_if_component!(SnakeCase);
