//! Settings of the embedded connectors: files and the generator.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A JSON-lines file: one message per line. As a sink it appends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSpec {
    /// File path.
    pub path: String,
}

/// Synthetic messages for demos and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratorSpec {
    /// Number of messages; 0 (default) generates until stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Message template: `orders` (default; the benchmark corpus shape) or `counter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Messages per second; 0 or unset means as fast as possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u64>,
}

/// Generator templates.
pub const GENERATOR_TEMPLATES: [&str; 2] = ["orders", "counter"];
