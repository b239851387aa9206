//! One reconcile pass for one DataFlow, following the seed's loop: on delete clean
//! up and report `Stopped`; otherwise validate, check references into other
//! namespaces, resolve secrets and custom transforms, apply the spec Secret and
//! the Deployment (server-side apply), and report the Deployment's state in the
//! status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dataflow_api::{DataFlow, Phase, RESET_ANNOTATION, requested_reset};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::runtime::finalizer::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::Instrument;

use crate::desired::{self, ProcessorSettings};
use crate::grants::{self, ReferencePolicy};
use crate::hash_key::HashKey;
use crate::objects::{apply_object, delete, delete_legacy_spec, ensure_tap_secret};
use crate::status::{self, Observation};
use crate::telemetry::Metrics;
use crate::{FINALIZER, transforms, workload};
use dataflow_api::references::{self, ObjectKey};
use dataflow_api::secrets;

/// How long to wait before looking again when nothing changes.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How long to wait after a failed pass.
pub const RETRY: Duration = Duration::from_secs(15);

/// What every reconcile pass shares.
pub struct Context {
    /// API client.
    pub client: Client,
    /// How processor Deployments look.
    pub settings: ProcessorSettings,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Operator metrics.
    pub metrics: Metrics,
    /// The key of the pod template's spec hash.
    pub hash_key: HashKey,
    /// Whether references into other namespaces need a grant.
    pub references: ReferencePolicy,
    passes: AtomicU64,
}

impl Context {
    /// A context for the controller.
    pub fn new(
        client: Client,
        settings: ProcessorSettings,
        recorder: Recorder,
        metrics: Metrics,
        hash_key: HashKey,
        references: ReferencePolicy,
    ) -> Self {
        Self {
            client,
            settings,
            recorder,
            metrics,
            hash_key,
            references,
            passes: AtomicU64::new(0),
        }
    }
}

/// A failed reconcile pass (retried after [`RETRY`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The DataFlow did not come from the API server.
    #[error(transparent)]
    Desired(#[from] desired::DesiredError),
    /// The resolved spec cannot be serialized.
    #[error("cannot serialize the resolved spec: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The system's random source failed (for a tap token).
    #[error("cannot draw a random token: {0}")]
    Random(String),
    /// Adding or removing the finalizer failed, or the inner pass did.
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

/// Reconciles one DataFlow.
pub async fn reconcile(dataflow: Arc<DataFlow>, ctx: Arc<Context>) -> Result<Action, Error> {
    let pass = ctx.passes.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!(
        "reconcile",
        dataflow_name = %dataflow.name_any(),
        dataflow_namespace = dataflow.namespace().unwrap_or_default(),
        reconcile_id = pass,
    );
    let started = Instant::now();
    let result = async {
        let namespace = dataflow
            .namespace()
            .ok_or_else(|| desired::DesiredError::NotStored(dataflow.name_any()))?;
        let api: Api<DataFlow> = Api::namespaced(ctx.client.clone(), &namespace);
        finalizer::finalizer(&api, FINALIZER, dataflow, |event| async {
            match event {
                Event::Apply(dataflow) => apply(&dataflow, &ctx).await,
                Event::Cleanup(dataflow) => cleanup(&dataflow, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    }
    .instrument(span.clone())
    .await;
    ctx.metrics.reconciled(result.is_ok(), started.elapsed());
    if let Err(error) = &result {
        span.in_scope(|| tracing::warn!(%error, "reconcile failed; retrying"));
    }
    result
}

/// What the controller does after a failed pass.
pub fn error_policy(_dataflow: Arc<DataFlow>, _error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(RETRY)
}

async fn apply(dataflow: &DataFlow, ctx: &Context) -> Result<Action, Error> {
    let namespace = dataflow.namespace().unwrap_or_default();
    let name = dataflow.name_any();
    let observation = match resolve(dataflow, &namespace, ctx).await? {
        Ok(resolved) => {
            let reset = resolved.reset.clone();
            let observation = deploy(dataflow, &namespace, &name, resolved, ctx).await?;
            if let Some(reset) = reset {
                announce_reset(dataflow, &namespace, &name, &reset, ctx).await?;
            }
            observation
        }
        Err(failure) => {
            // Nothing is applied for a spec that cannot be resolved: a running
            // processor keeps its last good spec, and the user sees why here.
            publish(
                ctx,
                dataflow,
                EventType::Warning,
                failure.reason,
                &failure.message,
                "Reconcile",
            )
            .await;
            Observation::failed(failure.reason, failure.message)
        }
    };
    write_status(dataflow, &namespace, &name, &observation, ctx).await?;
    Ok(Action::requeue(RESYNC))
}

/// A spec that cannot become a processor, and why (no secret values inside).
struct Unresolvable {
    reason: &'static str,
    message: String,
}

/// The resolved spec, the custom transforms it mounts, and the position reset
/// its annotation asks for.
struct Resolved {
    spec_json: String,
    plan: transforms::TransformPlan,
    reset: Option<String>,
}

async fn resolve(
    dataflow: &DataFlow,
    namespace: &str,
    ctx: &Context,
) -> Result<Result<Resolved, Unresolvable>, Error> {
    if let Err(errors) = dataflow_api::validate(&dataflow.spec) {
        return Ok(Err(Unresolvable {
            reason: "InvalidSpec",
            message: errors.to_string(),
        }));
    }
    let reset = match requested_reset(dataflow.metadata.annotations.as_ref(), &dataflow.spec) {
        None => None,
        Some(Ok(request)) => Some(request.text),
        Some(Err(error)) => {
            return Ok(Err(Unresolvable {
                reason: "InvalidReset",
                message: format!("annotation {RESET_ANNOTATION}: {error}"),
            }));
        }
    };
    let refused =
        grants::refused_references(&ctx.client, &dataflow.spec, namespace, ctx.references).await?;
    if !refused.is_empty() {
        return Ok(Err(Unresolvable {
            reason: "CrossNamespaceReference",
            message: refused.join("; "),
        }));
    }
    let mut secrets = BTreeMap::new();
    for key in references::secret_keys(&dataflow.spec, namespace) {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &key.namespace);
        if let Some(secret) = api.get_opt(&key.name).await? {
            secrets.insert(key, secret);
        }
    }
    let spec = serde_json::to_value(&dataflow.spec)?;
    let mut resolved = match secrets::substitute(&spec, namespace, &secrets) {
        Ok(resolved) => resolved,
        Err(e) => {
            return Ok(Err(Unresolvable {
                reason: e.reason(),
                message: e.to_string(),
            }));
        }
    };
    let mut config_maps = BTreeMap::new();
    for ObjectKey { namespace, name } in
        references::transform_config_maps(&dataflow.spec, namespace)
    {
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
        if let Some(cm) = api.get_opt(&name).await? {
            config_maps.insert(name, cm);
        }
    }
    let plan = match transforms::plan(&mut resolved, namespace, &config_maps) {
        Ok(plan) => plan,
        Err(e) => {
            return Ok(Err(Unresolvable {
                reason: "TransformNotFound",
                message: e.to_string(),
            }));
        }
    };
    Ok(Ok(Resolved {
        spec_json: serde_json::to_string(&resolved)?,
        plan,
        reset,
    }))
}

async fn deploy(
    dataflow: &DataFlow,
    namespace: &str,
    name: &str,
    resolved: Resolved,
    ctx: &Context,
) -> Result<Observation, Error> {
    let hash = ctx.hash_key.spec_hash(
        &resolved.spec_json,
        &resolved.plan,
        resolved.reset.as_deref(),
    );
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let deployment_name = desired::deployment_name(name);
    let previous_hash = deployments.get_opt(&deployment_name).await?.map(|d| {
        d.spec
            .template
            .metadata
            .and_then(|m| m.annotations)
            .and_then(|a| a.get(desired::SPEC_HASH_ANNOTATION).cloned())
            .unwrap_or_default()
    });

    apply_object(
        ctx,
        namespace,
        &desired::spec_secret(dataflow, &resolved.spec_json)?,
    )
    .await?;
    ensure_tap_secret(ctx, dataflow, namespace, name).await?;
    apply_object(ctx, namespace, &desired::service_account(dataflow)?).await?;
    if let Some(policy) = &ctx.settings.network_policy {
        apply_object(ctx, namespace, &desired::network_policy(dataflow, policy)?).await?;
    }
    apply_object(ctx, namespace, &desired::status_role(dataflow)?).await?;
    apply_object(ctx, namespace, &desired::status_role_binding(dataflow)?).await?;
    if let Some(execution) = dataflow
        .spec
        .execution
        .as_ref()
        .filter(|e| e.runs_to_completion())
    {
        delete::<Deployment>(ctx, namespace, &deployment_name).await?;
        let observation = match &execution.schedule {
            Some(schedule) => {
                schedule_runs(dataflow, namespace, name, &resolved, &hash, schedule, ctx).await?
            }
            None => run_once(dataflow, namespace, name, &resolved, &hash, ctx).await?,
        };
        delete_legacy_spec(ctx, dataflow, namespace, name).await?;
        return Ok(observation);
    }
    delete::<CronJob>(ctx, namespace, &workload::cron_job_name(name)).await?;
    delete_jobs_except(ctx, namespace, name, None).await?;
    let deployment = desired::deployment(dataflow, &ctx.settings, &resolved.plan, &hash)?;
    let applied: Deployment = apply_object(ctx, namespace, &deployment).await?;
    delete_legacy_spec(ctx, dataflow, namespace, name).await?;

    match previous_hash {
        None => {
            let note = format!(
                "created Deployment {deployment_name} and Secret {}",
                desired::spec_secret_name(name)
            );
            publish(ctx, dataflow, EventType::Normal, "Created", &note, "Create").await;
        }
        Some(previous) if previous != hash => {
            let note = format!(
                "spec, secrets or transforms changed: rolling Deployment {deployment_name}"
            );
            publish(ctx, dataflow, EventType::Normal, "Updated", &note, "Update").await;
        }
        Some(_) => {}
    }
    let processor_error = dataflow
        .status
        .as_ref()
        .and_then(|s| s.processor_error.as_deref());
    Ok(status::from_deployment(Some(&applied), processor_error))
}

/// A flow that runs to completion: its Job for this spec hash, and no other.
async fn run_once(
    dataflow: &DataFlow,
    namespace: &str,
    name: &str,
    resolved: &Resolved,
    hash: &str,
    ctx: &Context,
) -> Result<Observation, Error> {
    delete::<CronJob>(ctx, namespace, &workload::cron_job_name(name)).await?;
    let job_name = workload::job_name(name, hash);
    delete_jobs_except(ctx, namespace, name, Some(&job_name)).await?;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    let job = match jobs.get_opt(&job_name).await? {
        // A Job's pod template cannot change; the same hash means the same run.
        Some(existing) => existing,
        None => {
            let job = workload::job(dataflow, &ctx.settings, &resolved.plan, hash)?;
            let created: Job = apply_object(ctx, namespace, &job).await?;
            let note = format!("started job {job_name}");
            publish(ctx, dataflow, EventType::Normal, "Started", &note, "Run").await;
            created
        }
    };
    Ok(status::from_job(Some(&job)))
}

/// A scheduled flow: its CronJob, updated in place.
async fn schedule_runs(
    dataflow: &DataFlow,
    namespace: &str,
    name: &str,
    resolved: &Resolved,
    hash: &str,
    schedule: &str,
    ctx: &Context,
) -> Result<Observation, Error> {
    delete_jobs_except(ctx, namespace, name, None).await?;
    let cron_job = workload::cron_job(dataflow, &ctx.settings, &resolved.plan, hash, schedule)?;
    let applied: CronJob = apply_object(ctx, namespace, &cron_job).await?;
    Ok(status::from_cron_job(Some(&applied)))
}

/// Deletes the one-off Jobs of `dataflow` other than `keep` (older spec hashes,
/// or all of them when the flow no longer runs once), with their pods.
async fn delete_jobs_except(
    ctx: &Context,
    namespace: &str,
    dataflow: &str,
    keep: Option<&str>,
) -> Result<(), Error> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    let selector = format!("{}={dataflow}", desired::NAME_LABEL);
    for job in jobs.list(&ListParams::default().labels(&selector)).await? {
        let job_name = job.name_any();
        // Runs a CronJob started are the CronJob's to keep or remove.
        let scheduled = job
            .owner_references()
            .iter()
            .any(|owner| owner.kind == "CronJob");
        if Some(job_name.as_str()) != keep && !scheduled {
            delete::<Job>(ctx, namespace, &job_name).await?;
        }
    }
    Ok(())
}

async fn write_status(
    dataflow: &DataFlow,
    namespace: &str,
    name: &str,
    observation: &Observation,
    ctx: &Context,
) -> Result<(), Error> {
    let now = Time(Timestamp::now());
    let next = status::next_status(
        dataflow.status.as_ref(),
        dataflow.metadata.generation,
        observation,
        now,
    );
    if let Some(body) = status::patch(dataflow.status.as_ref(), &next) {
        let api: Api<DataFlow> = Api::namespaced(ctx.client.clone(), namespace);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
    }
    Ok(())
}

async fn cleanup(dataflow: &DataFlow, ctx: &Context) -> Result<Action, Error> {
    let namespace = dataflow.namespace().unwrap_or_default();
    let name = dataflow.name_any();
    delete::<Deployment>(ctx, &namespace, &desired::deployment_name(&name)).await?;
    delete::<CronJob>(ctx, &namespace, &workload::cron_job_name(&name)).await?;
    delete_jobs_except(ctx, &namespace, &name, None).await?;
    delete::<Secret>(ctx, &namespace, &desired::spec_secret_name(&name)).await?;
    delete::<Secret>(ctx, &namespace, &desired::tap_secret_name(&name)).await?;
    delete_legacy_spec(ctx, dataflow, &namespace, &name).await?;
    delete::<NetworkPolicy>(ctx, &namespace, &desired::deployment_name(&name)).await?;
    let account = desired::processor_account_name(&name);
    delete::<RoleBinding>(ctx, &namespace, &account).await?;
    delete::<Role>(ctx, &namespace, &account).await?;
    delete::<ServiceAccount>(ctx, &namespace, &account).await?;
    let observation = Observation {
        phase: Phase::Stopped,
        message: "DataFlow deleted; processor removed".into(),
        applied: Ok(()),
    };
    write_status(dataflow, &namespace, &name, &observation, ctx).await?;
    publish(
        ctx,
        dataflow,
        EventType::Normal,
        "Deleted",
        "processor Deployment and spec Secret removed",
        "Delete",
    )
    .await;
    Ok(Action::await_change())
}

/// A reset not announced yet: an event, and `status.positionReset.requested`
/// (the processor records in the same block when it has applied it).
async fn announce_reset(
    dataflow: &DataFlow,
    namespace: &str,
    name: &str,
    reset: &str,
    ctx: &Context,
) -> Result<(), Error> {
    let announced = dataflow
        .status
        .as_ref()
        .and_then(|s| s.position_reset.as_ref())
        .and_then(|r| r.requested.as_deref());
    if announced == Some(reset) {
        return Ok(());
    }
    let note =
        format!("moving the source's position ({reset}): restarting the processor with the reset");
    publish(
        ctx,
        dataflow,
        EventType::Normal,
        "PositionReset",
        &note,
        "Reset",
    )
    .await;
    let body = serde_json::json!({"status": {"positionReset": {"requested": reset}}});
    let api: Api<DataFlow> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    Ok(())
}

/// Publishes an Event about the DataFlow. Failing to publish is logged, never
/// fatal: events are advisory. Notes carry names, never secret values.
async fn publish(
    ctx: &Context,
    dataflow: &DataFlow,
    kind: EventType,
    reason: &str,
    note: &str,
    action: &str,
) {
    let event = KubeEvent {
        type_: kind,
        reason: reason.to_owned(),
        note: Some(note.to_owned()),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx
        .recorder
        .publish(&event, &dataflow.object_ref(&()))
        .await
    {
        tracing::warn!(%error, reason, "cannot publish event");
    }
}
