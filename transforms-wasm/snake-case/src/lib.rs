//! `snakeCase`: renames object keys, `userID` -> `user_id`.

use dataflow_transform_sdk::rename::{KeyCase, KeyRenamer};
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};
use serde::{Deserialize, Serialize};

/// Configuration of `snakeCase`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SnakeCaseConfig {
    /// Also rename keys of nested objects and of objects inside arrays; default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep: Option<bool>,
}

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
