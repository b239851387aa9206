//! The operator's part of a DataFlow's status: phase, message, conditions and
//! `observedGeneration`. The counters belong to the processor, which patches them
//! itself; the operator's patch never touches them.

use dataflow_api::{DataFlowStatus, Phase};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::{Value, json};

/// Condition type: the processor is up.
pub const READY: &str = "Ready";
/// Condition type: the spec was resolved and applied.
pub const RECONCILED: &str = "Reconciled";

/// What one reconcile pass found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Phase to report.
    pub phase: Phase,
    /// Detail for `status.message`.
    pub message: String,
    /// `Reconciled` condition: `Ok(())` when applied, else reason and message.
    pub applied: Result<(), (String, String)>,
}

impl Observation {
    /// A failure before anything could be applied (missing secret, bad transform).
    pub fn failed(reason: &str, message: String) -> Self {
        Self {
            phase: Phase::Error,
            message: message.clone(),
            applied: Err((reason.to_owned(), message)),
        }
    }
}

/// Phase and message from a job run's status: `Succeeded` once its processor
/// exited 0, `Failed` once Kubernetes gave up on it (`backoffLimit`).
pub fn from_job(job: Option<&Job>) -> Observation {
    let applied = Ok(());
    let name = job
        .and_then(|j| j.metadata.name.clone())
        .unwrap_or_default();
    let status = job.and_then(|j| j.status.clone()).unwrap_or_default();
    let failed = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Failed" && c.status == "True");
    let (phase, message) = if status.succeeded.unwrap_or(0) > 0 {
        (
            Phase::Succeeded,
            format!("job {name} read its source to the end"),
        )
    } else if let Some(condition) = failed {
        let reason = condition.reason.unwrap_or_default();
        let detail = condition.message.unwrap_or_default();
        (
            Phase::Failed,
            format!("job {name} failed: {reason}: {detail}"),
        )
    } else if status.active.unwrap_or(0) > 0 {
        (Phase::Running, format!("job {name} is running"))
    } else {
        (Phase::Pending, format!("waiting for job {name} to start"))
    };
    Observation {
        phase,
        message,
        applied,
    }
}

/// Phase and message from a scheduled flow's CronJob: `Running` while a run is
/// active, else how the last run ended.
pub fn from_cron_job(cron_job: Option<&CronJob>) -> Observation {
    let applied = Ok(());
    let status = cron_job.and_then(|c| c.status.clone()).unwrap_or_default();
    let active = status.active.as_ref().map_or(0, Vec::len);
    let (phase, message) = match (status.last_schedule_time, status.last_successful_time) {
        _ if active > 0 => (Phase::Running, "a scheduled run is in progress".to_owned()),
        (None, _) => (
            Phase::Pending,
            "waiting for the first scheduled run".to_owned(),
        ),
        (Some(scheduled), Some(succeeded)) if succeeded.0 >= scheduled.0 => (
            Phase::Succeeded,
            format!("the last run, started {}, succeeded", scheduled.0),
        ),
        (Some(scheduled), _) => (
            Phase::Failed,
            format!("the last run, started {}, did not succeed", scheduled.0),
        ),
    };
    Observation {
        phase,
        message,
        applied,
    }
}

/// Phase and message from the processor Deployment's status, and from the error
/// a stopped processor reported (`processor_error`).
pub fn from_deployment(
    deployment: Option<&Deployment>,
    processor_error: Option<&str>,
) -> Observation {
    let applied = Ok(());
    let Some(deployment) = deployment else {
        return Observation {
            phase: Phase::Pending,
            message: "waiting for the processor Deployment".into(),
            applied,
        };
    };
    let desired = deployment.spec.replicas.unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    if ready > 0 {
        return Observation {
            phase: Phase::Running,
            message: format!("{ready}/{desired} processor replicas ready"),
            applied,
        };
    }
    if let Some(error) = processor_error {
        return Observation {
            phase: Phase::Error,
            message: format!("the processor stopped: {error}"),
            applied,
        };
    }
    let failure = status.conditions.unwrap_or_default().into_iter().find(|c| {
        let is = |kind: &str, status: &str| {
            c.type_.as_deref() == Some(kind) && c.status.as_deref() == Some(status)
        };
        is("ReplicaFailure", "True") || is("Progressing", "False")
    });
    if let Some(condition) = failure {
        let reason = condition.reason.or(condition.type_).unwrap_or_default();
        let detail = condition.message.unwrap_or_default();
        return Observation {
            phase: Phase::Error,
            message: format!("processor Deployment failed: {reason}: {detail}"),
            applied,
        };
    }
    let message = if desired == 0 {
        "spec.replicas is 0: no processor runs".to_owned()
    } else {
        format!("0/{desired} processor replicas ready")
    };
    Observation {
        phase: Phase::Pending,
        message,
        applied,
    }
}

fn condition(
    current: &[Condition],
    kind: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    // Keep the transition time unless the status flips, as Kubernetes expects.
    let since = current
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The operator-owned status fields after `observation`.
pub fn next_status(
    current: Option<&DataFlowStatus>,
    generation: Option<i64>,
    observation: &Observation,
    now: Time,
) -> DataFlowStatus {
    let existing = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let phase_name = phase_name(observation.phase);
    let ready = condition(
        existing,
        READY,
        observation.phase == Phase::Running,
        phase_name,
        &observation.message,
        generation,
        &now,
    );
    let reconciled = match &observation.applied {
        Ok(()) => condition(
            existing,
            RECONCILED,
            true,
            "Applied",
            "resolved spec and processor Deployment are applied",
            generation,
            &now,
        ),
        Err((reason, message)) => condition(
            existing, RECONCILED, false, reason, message, generation, &now,
        ),
    };
    DataFlowStatus {
        phase: Some(observation.phase),
        message: Some(observation.message.clone()),
        observed_generation: generation,
        conditions: vec![ready, reconciled],
        ..DataFlowStatus::default()
    }
}

/// A JSON merge patch for the status subresource carrying only the operator's
/// fields, or `None` when they already hold these values (so a second pass writes
/// nothing).
pub fn patch(current: Option<&DataFlowStatus>, next: &DataFlowStatus) -> Option<Value> {
    let unchanged = current.is_some_and(|c| {
        c.phase == next.phase
            && c.message == next.message
            && c.observed_generation == next.observed_generation
            && c.conditions == next.conditions
    });
    (!unchanged).then(|| {
        json!({"status": {
            "phase": next.phase,
            "message": next.message,
            "observedGeneration": next.observed_generation,
            "conditions": next.conditions,
        }})
    })
}

/// The phase as it appears in the API.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Pending",
        Phase::Running => "Running",
        Phase::Error => "Error",
        Phase::Stopped => "Stopped",
        Phase::Succeeded => "Succeeded",
        Phase::Failed => "Failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::jiff::Timestamp;

    fn deployment(ready: i32, conditions: Vec<DeploymentCondition>) -> Deployment {
        Deployment {
            spec: DeploymentSpec {
                replicas: Some(2),
                ..DeploymentSpec::default()
            },
            status: Some(DeploymentStatus {
                ready_replicas: Some(ready),
                conditions: Some(conditions),
                ..DeploymentStatus::default()
            }),
            ..Deployment::default()
        }
    }

    fn time(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn phases_from_the_deployment() {
        assert_eq!(from_deployment(None, None).phase, Phase::Pending);
        let running = from_deployment(Some(&deployment(1, vec![])), None);
        assert_eq!(running.phase, Phase::Running);
        assert_eq!(running.message, "1/2 processor replicas ready");
        assert_eq!(
            from_deployment(Some(&deployment(0, vec![])), None).phase,
            Phase::Pending
        );
        let stuck = DeploymentCondition {
            type_: Some("Progressing".into()),
            status: Some("False".into()),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet has timed out progressing.".into()),
            ..DeploymentCondition::default()
        };
        let failed = from_deployment(Some(&deployment(0, vec![stuck])), None);
        assert_eq!(failed.phase, Phase::Error);
        let stopped = from_deployment(
            Some(&deployment(0, vec![])),
            Some("postgresql sink t: insert: stack depth limit exceeded"),
        );
        assert_eq!(stopped.phase, Phase::Error);
        assert!(stopped.message.contains("stack depth limit exceeded"));
        let restarted = from_deployment(Some(&deployment(1, vec![])), Some("old failure"));
        assert_eq!(restarted.phase, Phase::Running, "a ready processor wins");
        assert!(
            failed.message.contains("ProgressDeadlineExceeded"),
            "{}",
            failed.message
        );
    }

    #[test]
    fn second_pass_patches_nothing_and_keeps_transition_times() {
        let seen = from_deployment(None, None);
        let first = next_status(None, Some(1), &seen, time(100));
        assert!(patch(None, &first).is_some());
        let second = next_status(Some(&first), Some(1), &seen, time(200));
        assert_eq!(second.conditions[0].last_transition_time, time(100));
        assert_eq!(patch(Some(&first), &second), None);

        let running = from_deployment(Some(&deployment(2, vec![])), None);
        let third = next_status(Some(&second), Some(1), &running, time(300));
        assert_eq!(third.conditions[0].status, "True");
        assert_eq!(third.conditions[0].last_transition_time, time(300));
        assert_eq!(third.conditions[1].last_transition_time, time(100));
        let body = patch(Some(&second), &third).unwrap();
        assert_eq!(body["status"]["phase"], "Running");
        assert!(body["status"].get("processedCount").is_none());
    }

    #[test]
    fn failure_sets_reconciled_false() {
        let failed = Observation::failed("SecretNotFound", "spec.x: secret a/b not found".into());
        let status = next_status(None, Some(4), &failed, time(1));
        assert_eq!(status.phase, Some(Phase::Error));
        assert_eq!(status.observed_generation, Some(4));
        let reconciled = &status.conditions[1];
        assert_eq!(
            (reconciled.status.as_str(), reconciled.reason.as_str()),
            ("False", "SecretNotFound")
        );
    }
}
