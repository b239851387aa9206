use dataflow_transform_camel_case::CamelCaseConfig;
use dataflow_transform_filter::FilterConfig;
use dataflow_transform_flatten::FlattenConfig;
use dataflow_transform_mask::MaskConfig;
use dataflow_transform_remove::RemoveConfig;
use dataflow_transform_select::SelectConfig;
use dataflow_transform_snake_case::SnakeCaseConfig;
use dataflow_transform_timestamp::TimestampConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SinkSpec;

/// Transformation types: the nine built-ins and user components (`wasm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TransformType {
    /// Set a field to the current time.
    Timestamp,
    /// Expand an array into one message per element.
    Flatten,
    /// Keep messages matching a condition.
    Filter,
    /// Mask sensitive fields.
    Mask,
    /// Send messages to other sinks by condition.
    Router,
    /// Keep only some fields.
    Select,
    /// Delete fields.
    Remove,
    /// Keys to snake_case.
    SnakeCase,
    /// Keys to PascalCase.
    CamelCase,
    /// A user-supplied WebAssembly component.
    Wasm,
}

impl TransformType {
    /// The name used in specs, component configs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            TransformType::Timestamp => "timestamp",
            TransformType::Flatten => "flatten",
            TransformType::Filter => "filter",
            TransformType::Mask => "mask",
            TransformType::Router => "router",
            TransformType::Select => "select",
            TransformType::Remove => "remove",
            TransformType::SnakeCase => "snakeCase",
            TransformType::CamelCase => "camelCase",
            TransformType::Wasm => "wasm",
        }
    }
}

/// One transformation: `type` plus the block named after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransformationSpec {
    /// Transformation type.
    #[serde(rename = "type")]
    pub kind: TransformType,
    /// `timestamp` settings (all optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<TimestampConfig>,
    /// `flatten` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flatten: Option<FlattenConfig>,
    /// `filter` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterConfig>,
    /// `mask` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<MaskConfig>,
    /// `router` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterSpec>,
    /// `select` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<SelectConfig>,
    /// `remove` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<RemoveConfig>,
    /// `snakeCase` settings (all optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snake_case: Option<SnakeCaseConfig>,
    /// `camelCase` settings (all optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camel_case: Option<CamelCaseConfig>,
    /// User component settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<WasmTransformSpec>,
}

/// `router` settings: routes in priority order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterSpec {
    /// Routes; the first whose condition holds takes the message.
    pub routes: Vec<RouteSpec>,
}

/// One route of a router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteSpec {
    /// Condition, e.g. `$.level == 'error'`.
    pub condition: String,
    /// Sink for the messages of this route.
    pub sink: SinkSpec,
}

/// A user WebAssembly component implementing the `dataflow:transform` world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmTransformSpec {
    /// Path of the `.wasm` file (local runs; set by the operator in cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// ConfigMap key holding the component (in cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
    /// Expected SHA-256 of the component (hex); loading fails on mismatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Configuration handed to the component's constructor as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub config: Option<serde_json::Value>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<WasmLimits>,
}

/// A key of a ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapKeyRef {
    /// ConfigMap name (same namespace as the DataFlow).
    pub name: String,
    /// Key (in `binaryData` or `data`).
    pub key: String,
}

/// Limits of a user component.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmLimits {
    /// Linear memory limit in MiB (default 64).
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    /// Time limit per call in milliseconds (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

impl WasmLimits {
    /// Default memory limit, MiB.
    pub const DEFAULT_MEMORY_MIB: u32 = 64;
    /// Default time limit per call, ms.
    pub const DEFAULT_TIMEOUT_MS: u32 = 1000;

    /// The memory limit with its default applied.
    pub fn memory_mib(&self) -> u32 {
        self.memory_mib.unwrap_or(Self::DEFAULT_MEMORY_MIB)
    }

    /// The time limit with its default applied.
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms.unwrap_or(Self::DEFAULT_TIMEOUT_MS)
    }
}

impl TransformationSpec {
    /// The JSON configuration handed to the component, or `None` when the block for
    /// this type is missing (an error for types that need one). For `router` only the
    /// conditions go to the component; the sinks stay with the processor.
    pub fn component_config(&self) -> Option<serde_json::Value> {
        fn json<T: Serialize>(value: &T) -> Option<serde_json::Value> {
            serde_json::to_value(value).ok()
        }
        let empty = || Some(serde_json::Value::Object(serde_json::Map::new()));
        match self.kind {
            TransformType::Timestamp => self.timestamp.as_ref().map_or_else(empty, json),
            TransformType::Flatten => self.flatten.as_ref().and_then(json),
            TransformType::Filter => self.filter.as_ref().and_then(json),
            TransformType::Mask => self.mask.as_ref().and_then(json),
            TransformType::Router => self.router.as_ref().map(|r| {
                serde_json::json!({
                    "routes": r.routes.iter().map(|route| serde_json::json!({"condition": route.condition})).collect::<Vec<_>>()
                })
            }),
            TransformType::Select => self.select.as_ref().and_then(json),
            TransformType::Remove => self.remove.as_ref().and_then(json),
            TransformType::SnakeCase => self.snake_case.as_ref().map_or_else(empty, json),
            TransformType::CamelCase => self.camel_case.as_ref().map_or_else(empty, json),
            TransformType::Wasm => self
                .wasm
                .as_ref()
                .map(|w| w.config.clone().unwrap_or(serde_json::Value::Null)),
        }
    }
}
