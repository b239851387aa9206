//! `router`: tags each message with the first route whose condition holds.

use dataflow_transform_sdk::condition::Condition;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};
use serde::Deserialize;

/// Configuration of `router` as the component sees it. Each route's `sink` is read
/// by the processor (which writes the tagged messages), not by the component.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouterConfig {
    /// Routes in priority order.
    pub routes: Vec<RouteConfig>,
}

/// One route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteConfig {
    /// The condition selecting this route.
    pub condition: String,
    /// The sink spec (opaque here).
    #[serde(default)]
    pub sink: serde_json::Value,
}

/// Metadata key holding the index of the matched route.
pub const ROUTE_METADATA_KEY: &str = "route";

/// The `router` transform.
pub struct Router {
    routes: Vec<(Condition, String)>,
}

impl Router {
    /// Parses the conditions of `routes`, naming the failing route on error.
    pub fn compile(routes: &[RouteConfig]) -> Result<Self, ConfigError> {
        if routes.is_empty() {
            return Err(ConfigError::field("routes", "must not be empty"));
        }
        let routes = routes
            .iter()
            .enumerate()
            .map(|(i, route)| {
                Condition::parse(&route.condition)
                    .map(|c| (c, i.to_string()))
                    .map_err(|e| ConfigError::field(&format!("routes[{i}].condition"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { routes })
    }
}

impl Transform for Router {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: RouterConfig = parse_config(config)?;
        Self::compile(&config.routes)
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        if let Some((_, index)) = self.routes.iter().find(|(c, _)| c.matches(&record.value)) {
            record.set_meta(ROUTE_METADATA_KEY, index.as_str());
        }
        out.push(record);
        Ok(())
    }
}

dataflow_transform_sdk::export_if_component!(Router);
