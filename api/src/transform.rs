//! Transformations: the built-ins (one list, in the transform config crate), user
//! components and Python functions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tagged::tagged_connector;
use crate::{SinkSpec, WasmImageSpec};

/// The settings types the built-in list names. `router` takes its routes' sinks
/// here, so the API's router spec stands in for the component's config.
mod configs {
    pub use dataflow_transform_config::*;
    pub type RouterConfig = crate::transform::RouterSpec;
}

/// Expands the built-in list into the transformation types.
macro_rules! transformation_types {
    ($({ $variant:ident, $name:literal, $field:ident, $config:ident, $presence:ident, $($transform:ident)::+ })*) => {
        tagged_connector! {
            /// Transformation types: the built-ins and user components (`wasm`).
            kind TransformType;
            /// One transformation: `type` plus the settings block named after it.
            spec TransformationSpec;
            wire TransformationSpecWire;
            @common {
                /// A condition (the language of `filter`): the step runs only on the
                /// messages it holds for; the others pass it unchanged.
                when: String,
            }
            $(
                #[doc = concat!("The `", $name, "` built-in.")]
                $variant = $name ($field: configs::$config, $presence),
            )*
            /// A user-supplied WebAssembly component.
            Wasm = "wasm" (wasm: WasmTransformSpec),
            /// A Python function, run by the Python runtime component.
            Python = "python" (python: crate::ScriptTransformSpec),
            /// A JavaScript or TypeScript function, run by the JavaScript runtime.
            Javascript = "javascript" (javascript: crate::ScriptTransformSpec),
        }

        impl TransformationSpec {
            /// The settings of a built-in, to check them; `None` for a user component.
            pub fn builtin_config(&self) -> Option<&dyn dataflow_transform_config::BuiltinConfig> {
                match self {
                    $( TransformationSpec::$variant(config) => Some(config), )*
                    TransformationSpec::Wasm(_)
                    | TransformationSpec::Python(_)
                    | TransformationSpec::Javascript(_) => None,
                }
            }
        }
    };
}

dataflow_transform_config::for_each_builtin!(transformation_types);

/// One entry of `spec.transformations`: a transformation and its optional
/// `when` guard.
#[derive(Debug, Clone, PartialEq)]
pub struct Transformation {
    /// Condition under which the step runs; without it, it runs on every message.
    pub when: Option<String>,
    /// The transformation.
    pub spec: TransformationSpec,
}

impl From<TransformationSpec> for Transformation {
    fn from(spec: TransformationSpec) -> Self {
        Self { when: None, spec }
    }
}

impl Serialize for Transformation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut wire = TransformationSpecWire::from(&self.spec);
        wire.when.clone_from(&self.when);
        wire.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Transformation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut wire = TransformationSpecWire::deserialize(deserializer)?;
        let when = wire.when.take();
        let spec = TransformationSpec::try_from(wire).map_err(serde::de::Error::custom)?;
        Ok(Self { when, spec })
    }
}

impl JsonSchema for Transformation {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Transformation".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        TransformationSpecWire::json_schema(generator)
    }
}

impl TransformType {
    /// Whether this is one of the built-ins (run in the fused built-ins component).
    pub fn is_builtin(self) -> bool {
        !matches!(
            self,
            TransformType::Wasm | TransformType::Python | TransformType::Javascript
        )
    }
}

impl TransformationSpec {
    /// The JSON configuration handed to the component. For `router` only the
    /// conditions go to the component; the sinks stay with the processor.
    pub fn component_config(&self) -> serde_json::Value {
        match self {
            TransformationSpec::Router(router) => serde_json::json!({
                "routes": router
                    .routes
                    .iter()
                    .map(|route| serde_json::json!({"condition": route.condition}))
                    .collect::<Vec<_>>()
            }),
            TransformationSpec::Wasm(wasm) => {
                wasm.config.clone().unwrap_or(serde_json::Value::Null)
            }
            TransformationSpec::Python(script) | TransformationSpec::Javascript(script) => {
                script.config.clone().unwrap_or(serde_json::Value::Null)
            }
            other => match serde_json::to_value(TransformationSpecWire::from(other)) {
                Ok(serde_json::Value::Object(mut wire)) => wire
                    .remove(other.kind().as_str())
                    .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new())),
                _ => serde_json::Value::Object(serde_json::Map::new()),
            },
        }
    }

    /// A script step's language and settings.
    pub fn script(&self) -> Option<(crate::ScriptLanguage, &crate::ScriptTransformSpec)> {
        match self {
            TransformationSpec::Python(script) => Some((crate::ScriptLanguage::Python, script)),
            TransformationSpec::Javascript(script) => {
                Some((crate::ScriptLanguage::Javascript, script))
            }
            _ => None,
        }
    }

    /// A script step's settings, to change them.
    pub fn script_mut(&mut self) -> Option<&mut crate::ScriptTransformSpec> {
        match self {
            TransformationSpec::Python(script) | TransformationSpec::Javascript(script) => {
                Some(script)
            }
            _ => None,
        }
    }

    /// The router's settings, when this is a router.
    pub fn router(&self) -> Option<&RouterSpec> {
        match self {
            TransformationSpec::Router(router) => Some(router),
            _ => None,
        }
    }
}

/// `router` settings: routes in priority order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterSpec {
    /// Routes; the first whose condition holds takes the message.
    pub routes: Vec<RouteSpec>,
}

impl dataflow_transform_config::BuiltinConfig for RouterSpec {
    fn validate(&self) -> Result<(), dataflow_core::ConfigError> {
        dataflow_transform_config::compile_routes(self.routes.iter().map(|r| r.condition.as_str()))
            .map(drop)
    }
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
    /// OCI artifact holding the component, pulled by the processor when the flow
    /// starts and cached in the pod; needs `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<WasmImageSpec>,
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
