//! The `DataFlow` custom resource: spec and status types, reading manifests,
//! defaults, validation, and the shape of error records.
//!
//! Shared by the processor, the operator and its webhook so that all three read and
//! check a spec the same way. No I/O happens here.

pub mod connectors;
mod cron;
mod error_record;
mod execution;
mod failure;
pub mod manifest;
mod observability;
pub mod redact;
pub mod references;
mod reset;
mod resource;
mod script_transform;
mod secret;
pub mod secrets;
mod sink;
mod source;
mod tagged;
mod transform;
mod validate;
mod wasm_image;

pub use cron::{DataFlowCron, DataFlowCronSpec, DataFlowCronStatus, dataflow_spec_of_cron};
pub use error_record::{ErrorRecord, MAX_EMBEDDED_DEPTH, fallback_record};
pub use execution::{
    ConcurrencyPolicy, DEFAULT_BACKOFF_LIMIT, ExecutionMode, ExecutionSpec, MAX_BACKOFF_LIMIT,
    MAX_TRIGGERS, TriggerSpec, check_schedule,
};
pub use failure::{ErrorType, Stage};
pub use observability::{MAX_MASK_FIELDS, ObservabilitySpec};
pub use reset::{
    MAX_RESET_BYTES, PositionReset, RESET_ANNOTATION, ResetError, ResetRequest, requested_reset,
};
pub use resource::{
    AckGranularity, DataFlow, DataFlowSpec, DataFlowStatus, MAX_CHANNEL_BUFFER_SIZE, Phase,
    PositionResetStatus,
};
pub use script_transform::{
    DEFAULT_SCRIPT_MEMORY_MIB, MAX_SCRIPT_BYTES, ScriptLanguage, ScriptTransformSpec,
};
pub use secret::SecretRef;
pub use sink::{AckPolicy, SinkSpec, SinkType};
pub use source::{SourceSpec, SourceType};
pub use transform::{
    ConfigMapKeyRef, RouteSpec, RouterSpec, TransformType, Transformation, TransformationSpec,
    WasmLimits, WasmTransformSpec,
};
pub use validate::{FieldError, ValidationErrors, validate};
pub use wasm_image::{MAX_IMAGE_REFERENCE_BYTES, WASM_LAYER_MEDIA_TYPE, WasmImageSpec};
