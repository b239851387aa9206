//! The `DataFlow` custom resource: spec and status types, defaults and validation.
//!
//! Shared by the processor, the operator and its webhook so that all three read and
//! check a spec the same way. No I/O happens here.

pub mod connectors;
mod resource;
mod secret;
mod sink;
mod source;
mod transform;
mod validate;

pub use resource::{DataFlow, DataFlowSpec, DataFlowStatus, Phase};
pub use secret::SecretRef;
pub use sink::{SinkSpec, SinkType};
pub use source::{SourceSpec, SourceType};
pub use transform::{
    ConfigMapKeyRef, RouteSpec, RouterSpec, TransformType, TransformationSpec, WasmLimits,
    WasmTransformSpec,
};
pub use validate::{FieldError, ValidationErrors, validate};
