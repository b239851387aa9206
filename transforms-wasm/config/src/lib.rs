//! The configuration of every built-in transform: plain serde structs, and the
//! checks that turn them into what a transform runs with.
//!
//! The API crate validates a DataFlow with these checks and the transforms build
//! themselves through them, so a spec is accepted exactly when its transforms can
//! be built. [`for_each_builtin!`] is the one list of built-ins every other crate
//! expands.

mod convert;
mod fields;
mod reshape;
mod router;
mod timestamp;

use dataflow_core::ConfigError;
use serde::{Deserialize, Serialize};

pub use convert::{
    CastConfig, CastType, DebeziumUnwrapConfig, DeleteHandling, EpochUnit, HeadersToPayloadConfig,
    TimezoneConfig, Zone,
};
pub use fields::{FlattenConfig, MaskConfig, RemoveConfig, SelectConfig};
pub use reshape::{
    ExtractFieldConfig, FieldSelection, HoistFieldConfig, InsertFieldConfig, InsertValue,
    MAX_FLATTEN_DEPTH, ReplaceFieldConfig, StructFlattenConfig, TemplatePart, parse_template,
};
pub use router::{RouteConfig, RouterConfig, compile_routes};
pub use timestamp::{TimestampConfig, TimestampFormat};

/// A built-in's configuration: checked the same way by the API and the transform.
pub trait BuiltinConfig {
    /// Every problem a transform would refuse at creation, with the key it is about.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// `text`, unless it is empty: the Go original reads `""` in an optional setting as
/// "use the default".
fn non_empty(text: Option<&str>) -> Option<&str> {
    text.filter(|text| !text.is_empty())
}

/// Configuration of `filter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FilterConfig {
    /// The condition, e.g. `$.active` or `level == 'error' && code >= 500`.
    pub condition: String,
}

impl FilterConfig {
    /// The parsed condition.
    pub fn condition(&self) -> Result<dataflow_core::condition::Condition, ConfigError> {
        dataflow_core::condition::Condition::parse(&self.condition)
            .map_err(|e| ConfigError::field("condition", e))
    }
}

impl BuiltinConfig for FilterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.condition().map(drop)
    }
}

/// Configuration of `snakeCase` and `camelCase`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyCaseConfig {
    /// Also rename keys of nested objects and of objects inside arrays; default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep: Option<bool>,
}

impl BuiltinConfig for KeyCaseConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// Configuration of `snakeCase`.
pub type SnakeCaseConfig = KeyCaseConfig;
/// Configuration of `camelCase`.
pub type CamelCaseConfig = KeyCaseConfig;

/// Expands `$callback! { ... }` with one entry per built-in transform, in the order
/// the CRD lists them:
///
/// `{ Variant, "specName", block_field, ConfigType, optional|required, transform_crate::Type }`
///
/// - `"specName"` is the `type:` value and the name of its settings block;
/// - `optional` blocks may be left out (their config has a `Default`);
/// - the last item is the transform's own type, for the fused built-ins component.
///
/// Adding a built-in: write its crate, add its config here and one line below.
#[macro_export]
macro_rules! for_each_builtin {
    ($callback:ident) => {
        $callback! {
            { Timestamp, "timestamp", timestamp, TimestampConfig, optional, dataflow_transform_timestamp::Timestamp }
            { Flatten, "flatten", flatten, FlattenConfig, required, dataflow_transform_flatten::Flatten }
            { Filter, "filter", filter, FilterConfig, required, dataflow_transform_filter::Filter }
            { Mask, "mask", mask, MaskConfig, required, dataflow_transform_mask::Mask }
            { Router, "router", router, RouterConfig, required, dataflow_transform_router::Router }
            { Select, "select", select, SelectConfig, required, dataflow_transform_select::Select }
            { Remove, "remove", remove, RemoveConfig, required, dataflow_transform_remove::Remove }
            { SnakeCase, "snakeCase", snake_case, SnakeCaseConfig, optional, dataflow_transform_snake_case::SnakeCase }
            { CamelCase, "camelCase", camel_case, CamelCaseConfig, optional, dataflow_transform_camel_case::CamelCase }
            { Cast, "cast", cast, CastConfig, required, dataflow_transform_cast::Cast }
            { InsertField, "insertField", insert_field, InsertFieldConfig, required, dataflow_transform_insert_field::InsertField }
            { ExtractField, "extractField", extract_field, ExtractFieldConfig, required, dataflow_transform_extract_field::ExtractField }
            { HoistField, "hoistField", hoist_field, HoistFieldConfig, required, dataflow_transform_hoist_field::HoistField }
            { StructFlatten, "structFlatten", struct_flatten, StructFlattenConfig, optional, dataflow_transform_struct_flatten::StructFlatten }
            { ReplaceField, "replaceField", replace_field, ReplaceFieldConfig, required, dataflow_transform_replace_field::ReplaceField }
            { Timezone, "timezone", timezone, TimezoneConfig, required, dataflow_transform_timezone::Timezone }
            { DebeziumUnwrap, "debeziumUnwrap", debezium_unwrap, DebeziumUnwrapConfig, optional, dataflow_transform_debezium_unwrap::DebeziumUnwrap }
            { HeadersToPayload, "headersToPayload", headers_to_payload, HeadersToPayloadConfig, required, dataflow_transform_headers_to_payload::HeadersToPayload }
        }
    };
}
