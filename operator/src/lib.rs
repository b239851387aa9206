//! The DataFlow operator: turns `DataFlow` resources into processor Deployments.
//!
//! The reconcile loop resolves every `*SecretRef` and custom transform a DataFlow
//! uses, writes the resolved spec to a Secret the DataFlow owns, runs the
//! processor as a Deployment that mounts it, and reports the Deployment's state in the DataFlow's
//! status. Most of the work is in pure functions (`desired`, `transforms`,
//! `status`, and `dataflow_api::secrets`) so it can be tested field by field; `reconcile` is the
//! thin layer that talks to the API server.

pub mod controller;
pub mod crd;
pub mod cron;
pub mod desired;
pub mod grants;
pub mod hash_key;
pub mod leader;
mod objects;
pub mod rbac;
pub mod reconcile;
pub mod scope;
pub mod status;
pub mod telemetry;
pub mod transforms;
pub mod webhook;
pub mod workload;

/// Field manager used for every server-side apply and patch the operator makes.
pub const FIELD_MANAGER: &str = "dataflow-operator";

/// Finalizer that lets the operator clean up and report `Stopped` on delete.
pub const FINALIZER: &str = "dataflow.dataflow.io/cleanup";
