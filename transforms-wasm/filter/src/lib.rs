//! `filter`: keeps the messages for which a condition holds.

use dataflow_transform_config::FilterConfig;
use dataflow_transform_sdk::condition::Condition;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// The `filter` transform.
pub struct Filter {
    condition: Condition,
}

impl Transform for Filter {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let condition = parse_config::<FilterConfig>(config)?.condition()?;
        Ok(Self { condition })
    }

    fn apply(&mut self, record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        if self.condition.matches(&record.value, &record.metadata) {
            out.push(record);
        }
        Ok(())
    }

    fn keeps_payload(&self) -> bool {
        true
    }
}

dataflow_transform_sdk::export_if_component!(Filter);
