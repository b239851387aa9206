//! The DataFlowCron controller: each DataFlowCron (the Go original's scheduled
//! flow) is kept as a DataFlow of the same name that it owns, with the schedule,
//! concurrency policy and triggers under `spec.execution`; the DataFlow
//! controller makes its CronJob. The DataFlowCron's status names that DataFlow
//! and repeats its phase and message. Deleting the DataFlowCron deletes the
//! DataFlow through its owner reference.

use std::sync::Arc;
use std::time::Duration;

use dataflow_api::{DataFlow, DataFlowCron, DataFlowCronStatus, DataFlowSpec, Phase};
use futures::{StreamExt, future};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use crate::FIELD_MANAGER;
use crate::scope::{Scope, api};

/// How often a DataFlowCron is looked at again without a change (its DataFlow's
/// status changes wake it sooner).
const RESYNC: Duration = Duration::from_secs(300);

/// Why a DataFlowCron could not be reconciled (the API call that failed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CronError(#[from] kube::Error);

/// Runs the DataFlowCron controller until `shutdown` resolves, one per
/// watched namespace of `scope`.
pub async fn run(
    client: Client,
    scope: &Scope,
    shutdown: impl Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    let controllers = scope.partitions().into_iter().map(|partition| {
        Controller::new(
            api::<DataFlowCron>(&client, partition),
            watcher::Config::default(),
        )
        .owns(
            api::<DataFlow>(&client, partition),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(10)),
            Arc::new(client.clone()),
        )
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "DataFlowCron controller event");
            }
            future::ready(())
        })
    });
    future::join_all(controllers).await;
}

async fn reconcile(cron: Arc<DataFlowCron>, client: Arc<Client>) -> Result<Action, CronError> {
    let namespace = cron.namespace().unwrap_or_default();
    let name = cron.name_any();
    let crons: Api<DataFlowCron> = Api::namespaced(client.as_ref().clone(), &namespace);
    let dataflows: Api<DataFlow> = Api::namespaced(client.as_ref().clone(), &namespace);
    let status = match desired_dataflow(&cron) {
        Err(reason) => DataFlowCronStatus {
            data_flow: None,
            phase: Some(Phase::Error),
            message: Some(reason),
        },
        Ok(dataflow) => match dataflows.get_opt(&name).await? {
            Some(existing) if !owned_by(&existing, &cron) => DataFlowCronStatus {
                data_flow: None,
                phase: Some(Phase::Error),
                message: Some(format!(
                    "a DataFlow named {name} exists and is not this DataFlowCron's; rename one of them"
                )),
            },
            _ => match dataflows
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&dataflow),
                )
                .await
            {
                Ok(applied) => DataFlowCronStatus {
                    data_flow: Some(name.clone()),
                    phase: applied.status.as_ref().and_then(|s| s.phase),
                    message: applied.status.as_ref().and_then(|s| s.message.clone()),
                },
                // The DataFlow's own checks (its webhook) refused it: say why.
                Err(kube::Error::Api(refused)) if refused.code == 400 || refused.code == 422 => {
                    DataFlowCronStatus {
                        data_flow: None,
                        phase: Some(Phase::Error),
                        message: Some(refused.message),
                    }
                }
                Err(e) => return Err(e.into()),
            },
        },
    };
    if cron.status.as_ref() != Some(&status) {
        let patch = serde_json::json!({
            "apiVersion": "dataflow.dataflow.io/v1",
            "kind": "DataFlowCron",
            "status": status,
        });
        crons
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
    }
    Ok(Action::requeue(RESYNC))
}

/// The DataFlow a DataFlowCron describes, owned by it; or why it describes none.
fn desired_dataflow(cron: &DataFlowCron) -> Result<DataFlow, String> {
    let spec = serde_json::to_value(&cron.spec).map_err(|e| format!("spec: {e}"))?;
    let spec = dataflow_api::dataflow_spec_of_cron(&spec)?;
    let spec: DataFlowSpec = serde_json::from_value(spec).map_err(|e| format!("spec: {e}"))?;
    dataflow_api::validate(&spec).map_err(|e| e.to_string())?;
    let owner = cron
        .controller_owner_ref(&())
        .ok_or_else(|| "the DataFlowCron has no uid yet".to_owned())?;
    Ok(DataFlow {
        metadata: ObjectMeta {
            name: cron.metadata.name.clone(),
            namespace: cron.metadata.namespace.clone(),
            labels: cron.metadata.labels.clone(),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

fn owned_by(dataflow: &DataFlow, cron: &DataFlowCron) -> bool {
    let uid = cron.metadata.uid.as_deref();
    dataflow
        .owner_references()
        .iter()
        .any(|owner| owner.kind == "DataFlowCron" && Some(owner.uid.as_str()) == uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(yaml_spec: &str) -> DataFlowCron {
        let mut cron: DataFlowCron = serde_norway::from_str(&format!(
            "apiVersion: dataflow.dataflow.io/v1\nkind: DataFlowCron\nmetadata: {{name: nightly, namespace: team}}\nspec: {yaml_spec}\n"
        ))
        .unwrap();
        cron.metadata.uid = Some("cron-uid".into());
        cron
    }

    #[test]
    fn a_dataflowcron_becomes_the_scheduled_dataflow_it_owns() {
        let c = cron(
            "{schedule: '*/10 * * * *', concurrencyPolicy: Forbid, triggers: [{name: spark, image: kubectl}], source: {type: generator, generator: {count: 3}}, sink: {type: stdout}}",
        );
        let df = desired_dataflow(&c).unwrap();
        assert_eq!(df.metadata.name.as_deref(), Some("nightly"));
        let owner = &df.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("DataFlowCron", "cron-uid", Some(true))
        );
        let execution = df.spec.execution.as_ref().unwrap();
        assert_eq!(execution.schedule.as_deref(), Some("*/10 * * * *"));
        assert_eq!(execution.triggers[0].name, "spark");
        assert!(owned_by(&df, &c));
    }

    #[test]
    fn a_bad_dataflowcron_says_why() {
        let c = cron("{schedule: '99 * * * *', source: {type: stdin}, sink: {type: stdout}}");
        let err = desired_dataflow(&c).unwrap_err();
        assert!(err.contains("spec.execution.schedule"), "{err}");
    }
}
