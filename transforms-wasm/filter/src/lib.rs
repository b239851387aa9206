//! `filter`: keeps the messages for which a condition holds.

use dataflow_transform_sdk::condition::Condition;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};
use serde::{Deserialize, Serialize};

/// Configuration of `filter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FilterConfig {
    /// The condition, e.g. `$.active` or `level == 'error' && code >= 500`.
    pub condition: String,
}

/// The `filter` transform.
pub struct Filter {
    condition: Condition,
}

impl Transform for Filter {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: FilterConfig = parse_config(config)?;
        let condition =
            Condition::parse(&config.condition).map_err(|e| ConfigError::field("condition", e))?;
        Ok(Self { condition })
    }

    fn apply(&mut self, record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        if self.condition.matches(&record.value) {
            out.push(record);
        }
        Ok(())
    }
}

dataflow_transform_sdk::export_if_component!(Filter);
