//! The processor as a Job or a CronJob, for flows that run to completion
//! (`spec.execution`). A Deployment runs the streaming ones (`desired`).
//!
//! A Job's pod template cannot change, so each resolved spec gets its own Job,
//! named after the spec hash: the same spec keeps its finished Job (and does not
//! run again), a changed spec, Secret or component starts a new run, and the
//! operator deletes the Jobs of older hashes.

use dataflow_api::{ConcurrencyPolicy, DEFAULT_BACKOFF_LIMIT, DataFlow, TriggerSpec};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec, SecurityContext};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::desired::{
    DesiredError, ProcessorSettings, deployment_name, labels, metadata, owned, pod_template,
};
use crate::transforms::TransformPlan;

/// Hex digits of the spec hash in a Job's name.
const HASH_IN_NAME: usize = 10;

/// Name of the Job that runs the spec with `hash`.
pub fn job_name(dataflow: &str, hash: &str) -> String {
    let short = hash.get(..HASH_IN_NAME).unwrap_or(hash);
    format!("{}-{short}", deployment_name(dataflow))
}

/// Name of a scheduled flow's CronJob.
pub fn cron_job_name(dataflow: &str) -> String {
    deployment_name(dataflow)
}

/// The processor pod of a run: it is not restarted in place; a failed run is
/// retried as a new pod, up to `backoffLimit` times. With triggers, the
/// processor is the pod's init container and the triggers its containers, so
/// they start only after the flow has exited 0.
fn run_template(
    dataflow: &DataFlow,
    settings: &ProcessorSettings,
    plan: &TransformPlan,
    hash: &str,
) -> Result<(PodTemplateSpec, i32), DesiredError> {
    let mut template = pod_template(dataflow, settings, plan, hash)?;
    let execution = dataflow.spec.execution.as_ref();
    if let Some(pod) = &mut template.spec {
        pod.restart_policy = Some("Never".to_owned());
        let triggers = execution.map(|e| e.triggers.as_slice()).unwrap_or_default();
        if !triggers.is_empty() {
            let mut flow = std::mem::take(&mut pod.containers);
            // An init container may not have probes (the API server refuses
            // them), so with triggers no liveness probe restarts a stalled run.
            for container in &mut flow {
                container.liveness_probe = None;
                container.readiness_probe = None;
            }
            pod.init_containers = Some(flow);
            pod.containers = triggers.iter().map(trigger_container).collect();
        }
    }
    let backoff = execution
        .and_then(|e| e.backoff_limit)
        .unwrap_or(DEFAULT_BACKOFF_LIMIT);
    Ok((template, backoff))
}

/// A trigger as a container: its image, command, arguments and environment,
/// with nothing of the processor's mounts or privileges.
fn trigger_container(trigger: &TriggerSpec) -> Container {
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    Container {
        name: trigger.name.clone(),
        image: Some(trigger.image.clone()),
        command: non_empty(&trigger.command),
        args: non_empty(&trigger.args),
        env: (!trigger.env.is_empty()).then(|| trigger.env.clone()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// The Job that runs the flow once.
pub fn job(
    dataflow: &DataFlow,
    settings: &ProcessorSettings,
    plan: &TransformPlan,
    hash: &str,
) -> Result<Job, DesiredError> {
    let owned = owned(dataflow)?;
    let (template, backoff) = run_template(dataflow, settings, plan, hash)?;
    Ok(Job {
        metadata: metadata(&owned, job_name(&owned.name, hash)),
        spec: Some(JobSpec {
            backoff_limit: Some(backoff),
            template,
            ..JobSpec::default()
        }),
        ..Job::default()
    })
}

/// The CronJob that runs the flow on its schedule, one run at a time.
pub fn cron_job(
    dataflow: &DataFlow,
    settings: &ProcessorSettings,
    plan: &TransformPlan,
    hash: &str,
    schedule: &str,
) -> Result<CronJob, DesiredError> {
    let owned = owned(dataflow)?;
    let (template, backoff) = run_template(dataflow, settings, plan, hash)?;
    Ok(CronJob {
        metadata: metadata(&owned, cron_job_name(&owned.name)),
        spec: CronJobSpec {
            schedule: schedule.to_owned(),
            // By default runs never overlap: two runs of one flow would read the
            // same positions.
            concurrency_policy: Some(
                dataflow
                    .spec
                    .execution
                    .as_ref()
                    .and_then(|e| e.concurrency_policy)
                    .unwrap_or(ConcurrencyPolicy::Forbid)
                    .as_str()
                    .to_owned(),
            ),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&owned.name)),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(backoff),
                    template,
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        },
        ..CronJob::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{SPEC_HASH_ANNOTATION, deployment};

    fn dataflow(execution: &str) -> DataFlow {
        let mut df: DataFlow = serde_norway::from_str(&format!(
            r#"
apiVersion: dataflow.dataflow.io/v1
kind: DataFlow
metadata: {{name: backfill, namespace: team, uid: u-1}}
spec:
  execution: {execution}
  source: {{type: generator, generator: {{count: 10}}}}
  sink: {{type: stdout}}
"#
        ))
        .unwrap();
        df.metadata.uid = Some("u-1".into());
        df
    }

    fn settings() -> ProcessorSettings {
        ProcessorSettings {
            image: "dataflow:test".into(),
            log_level: "info".into(),
            network_policy: None,
        }
    }

    #[test]
    fn a_job_runs_the_same_pod_once_per_spec_hash() {
        let df = dataflow("{mode: job, backoffLimit: 4}");
        let plan = TransformPlan::default();
        let job = job(&df, &settings(), &plan, "0123456789abcdef").unwrap();
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("dataflow-backfill-0123456789")
        );
        assert_eq!(job.metadata.owner_references.unwrap()[0].name, "backfill");
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(4));
        let pod = spec.template.spec.clone().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        // Everything else is the Deployment's pod.
        let mut streaming = deployment(&df, &settings(), &plan, "0123456789abcdef")
            .unwrap()
            .spec
            .template;
        assert_eq!(
            streaming
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[SPEC_HASH_ANNOTATION],
            "0123456789abcdef"
        );
        if let Some(pod) = &mut streaming.spec {
            pod.restart_policy = Some("Never".into());
        }
        assert_eq!(spec.template, streaming);
        assert_ne!(
            super::job(&df, &settings(), &plan, "fedcba9876543210")
                .unwrap()
                .metadata
                .name,
            Some("dataflow-backfill-0123456789".into()),
            "a new spec is a new run"
        );
    }

    #[test]
    fn triggers_run_after_the_flow_in_its_pod() {
        let df = dataflow(
            "{schedule: '*/10 * * * *', concurrencyPolicy: Replace, triggers: [{name: start-spark, image: 'bitnami/kubectl:latest', command: [kubectl], args: [apply, -f, /m.yaml]}]}",
        );
        let cron = cron_job(
            &df,
            &settings(),
            &TransformPlan::default(),
            "abc",
            "*/10 * * * *",
        )
        .unwrap();
        assert_eq!(cron.spec.concurrency_policy.as_deref(), Some("Replace"));
        let pod = cron.spec.job_template.spec.unwrap().template.spec.unwrap();
        let init = pod.init_containers.unwrap();
        assert_eq!(
            init.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["processor"],
            "the flow runs first, to its end"
        );
        assert!(
            init[0].liveness_probe.is_none() && init[0].readiness_probe.is_none(),
            "the API server refuses probes on init containers"
        );
        assert_eq!(pod.containers.len(), 1);
        let trigger = &pod.containers[0];
        assert_eq!(trigger.name, "start-spark");
        assert_eq!(trigger.image.as_deref(), Some("bitnami/kubectl:latest"));
        assert_eq!(
            trigger.command.as_deref(),
            Some(&["kubectl".to_owned()][..])
        );
        assert_eq!(trigger.args.as_ref().unwrap().len(), 3);
        assert!(
            trigger.volume_mounts.is_none(),
            "the flow's files stay its own"
        );
    }

    #[test]
    fn a_schedule_makes_a_cron_job_that_never_overlaps() {
        let df = dataflow("{schedule: '0 3 * * *'}");
        let cron = cron_job(
            &df,
            &settings(),
            &TransformPlan::default(),
            "abc",
            "0 3 * * *",
        )
        .unwrap();
        assert_eq!(cron.metadata.name.as_deref(), Some("dataflow-backfill"));
        let spec = cron.spec;
        assert_eq!(spec.schedule, "0 3 * * *");
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
        let job = spec.job_template.spec.unwrap();
        assert_eq!(job.backoff_limit, Some(DEFAULT_BACKOFF_LIMIT));
        assert_eq!(
            job.template.spec.unwrap().restart_policy.as_deref(),
            Some("Never")
        );
    }
}
