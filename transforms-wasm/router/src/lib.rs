//! `router`: tags each message with the first route whose condition holds.

use dataflow_transform_config::RouterConfig;
use dataflow_transform_sdk::condition::Condition;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// Metadata key holding the index of the matched route.
pub const ROUTE_METADATA_KEY: &str = "route";

/// The `router` transform.
pub struct Router {
    routes: Vec<(Condition, String)>,
}

impl Transform for Router {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let conditions = parse_config::<RouterConfig>(config)?.conditions()?;
        Ok(Self {
            routes: conditions
                .into_iter()
                .enumerate()
                .map(|(i, condition)| (condition, i.to_string()))
                .collect(),
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        if let Some((_, index)) = self
            .routes
            .iter()
            .find(|(c, _)| c.matches(&record.value, &record.metadata))
        {
            record.set_meta(ROUTE_METADATA_KEY, index.as_str());
        }
        out.push(record);
        Ok(())
    }

    fn keeps_payload(&self) -> bool {
        true
    }
}

dataflow_transform_sdk::export_if_component!(Router);
