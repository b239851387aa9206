//! Configuration of `router` as its component sees it.

use dataflow_core::ConfigError;
use dataflow_core::condition::Condition;
use serde::{Deserialize, Serialize};

use crate::BuiltinConfig;

/// Routes in priority order. The API's router spec adds a sink to each route; the
/// component gets only the conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouterConfig {
    /// Routes; the first whose condition holds takes the message.
    pub routes: Vec<RouteConfig>,
}

/// One route's condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteConfig {
    /// The condition selecting this route.
    pub condition: String,
    /// The route's sink: the processor's business; the component ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<serde_json::Value>,
}

/// Parses route conditions in order, refusing an empty list; errors name
/// `routes[i].condition`.
pub fn compile_routes<'a>(
    conditions: impl ExactSizeIterator<Item = &'a str>,
) -> Result<Vec<Condition>, ConfigError> {
    if conditions.len() == 0 {
        return Err(ConfigError::field("routes", "must not be empty"));
    }
    conditions
        .enumerate()
        .map(|(i, text)| {
            Condition::parse(text)
                .map_err(|e| ConfigError::field(&format!("routes[{i}].condition"), e))
        })
        .collect()
}

impl RouterConfig {
    /// The parsed conditions, in route order.
    pub fn conditions(&self) -> Result<Vec<Condition>, ConfigError> {
        compile_routes(self.routes.iter().map(|r| r.condition.as_str()))
    }
}

impl BuiltinConfig for RouterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.conditions().map(drop)
    }
}
