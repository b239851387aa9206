//! Wiring of the DataFlow controller: what it watches and what wakes it.
//!
//! - DataFlows (the primary resource), in every namespace or in each namespace
//!   of `watchNamespaces` (one controller each).
//! - Deployments, Jobs, CronJobs and spec Secrets it owns (status changes, edits
//!   by hand).
//! - Secrets and transform ConfigMaps a DataFlow references, by their metadata
//!   only: a change wakes only the DataFlows that reference the changed object,
//!   whichever watched namespace they are in.
//! - The operator's own Deployment: when its images change, every DataFlow is
//!   reconciled so processors move to the new processor image.
//!
//! Beside it runs the DataFlowCron controller (`cron`), which keeps a DataFlow
//! for each DataFlowCron.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use dataflow_api::{DataFlow, DataFlowSpec};
use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, Stream, StreamExt, future};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use crate::reconcile::{self, Context};
use crate::scope::{Scope, api};
use dataflow_api::references::{self, ObjectKey};

/// The DataFlows in `dataflows` whose `references` (as listed for the DataFlow's
/// namespace) include `wanted`.
fn referencing(
    dataflows: &[Arc<DataFlow>],
    wanted: &ObjectKey,
    references: fn(&DataFlowSpec, &str) -> BTreeSet<ObjectKey>,
) -> Vec<ObjectRef<DataFlow>> {
    dataflows
        .iter()
        .filter(|df| references(&df.spec, &df.namespace().unwrap_or_default()).contains(wanted))
        .map(|df| ObjectRef::from_obj(df.as_ref()))
        .collect()
}

/// The DataFlows in `dataflows` that use the Secret `secret`.
pub fn using_secret(dataflows: &[Arc<DataFlow>], secret: &ObjectKey) -> Vec<ObjectRef<DataFlow>> {
    referencing(dataflows, secret, references::secret_keys)
}

/// The DataFlows in `dataflows` that load a custom transform from `config_map`.
pub fn using_config_map(
    dataflows: &[Arc<DataFlow>],
    config_map: &ObjectKey,
) -> Vec<ObjectRef<DataFlow>> {
    referencing(dataflows, config_map, references::transform_config_maps)
}

/// Container images of a Deployment's pod template.
pub fn images(deployment: &Deployment) -> Vec<String> {
    deployment
        .spec
        .template
        .spec
        .as_ref()
        .map(|pod| {
            pod.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Turns a stream of the operator's own Deployment into one tick per image change
/// (the first sighting is not a change).
pub fn image_changes(
    deployments: impl Stream<Item = Deployment> + Send + 'static,
) -> impl Stream<Item = ()> + Send + 'static {
    deployments
        .scan(None::<Vec<String>>, |last, deployment| {
            let now = images(&deployment);
            let changed = last.as_ref().is_some_and(|before| *before != now);
            *last = Some(now);
            future::ready(Some(changed))
        })
        .filter(|changed| future::ready(*changed))
        .map(|_| ())
}

fn object_key(namespace: Option<String>, name: String) -> ObjectKey {
    ObjectKey::new(namespace.unwrap_or_default(), name)
}

/// Label of every object the operator makes.
const MANAGED: &str = "app.kubernetes.io/managed-by=dataflow-operator";

/// Where a changed Secret or ConfigMap is sent: the controller of each watched
/// namespace, with the DataFlows it knows.
#[derive(Clone)]
struct Routes(Vec<(Store<DataFlow>, mpsc::Sender<ObjectRef<DataFlow>>)>);

impl Routes {
    /// Wakes, in every controller, the DataFlows `find` picks from its store.
    async fn wake(&self, find: impl Fn(&[Arc<DataFlow>]) -> Vec<ObjectRef<DataFlow>>) {
        for (store, sender) in &self.0 {
            for dataflow in find(&store.state()) {
                // A closed channel means that controller has stopped.
                let _ = sender.clone().send(dataflow).await;
            }
        }
    }
}

/// Runs the controllers of `scope` until `shutdown` resolves: one DataFlow
/// controller per watched namespace (one for all of them when every namespace
/// is watched), and the DataFlowCron controller beside it.
pub async fn run(
    client: Client,
    ctx: Arc<Context>,
    scope: Scope,
    operator_deployment: Option<ObjectKey>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = shutdown.shared();
    let managed = watcher::Config::default().labels(MANAGED);
    let mut routes = Vec::new();
    let mut controllers = Vec::new();
    for partition in scope.partitions() {
        let controller = Controller::new(
            api::<DataFlow>(&client, partition),
            watcher::Config::default(),
        );
        let (wake, woken) = mpsc::channel(256);
        routes.push((controller.store(), wake));
        let mut controller = controller
            .owns(api::<Deployment>(&client, partition), managed.clone())
            .owns(api::<Secret>(&client, partition), managed.clone())
            .owns(api::<Job>(&client, partition), managed.clone())
            .owns(api::<CronJob>(&client, partition), managed.clone())
            .reconcile_on(woken);
        if let Some(own) = &operator_deployment {
            controller = controller.reconcile_all_on(image_changes(own_deployment(&client, own)));
        }
        controllers.push(
            controller
                .graceful_shutdown_on(shutdown.clone())
                .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
                .for_each(|result| {
                    if let Err(error) = result {
                        tracing::debug!(%error, "controller event");
                    }
                    future::ready(())
                }),
        );
    }
    let routes = Routes(routes);
    let references = reference_changes(&client, &scope, routes);
    let stop_references = shutdown.clone();
    let references = async move {
        tokio::select! {
            () = references => {}
            () = stop_references => {}
        }
    };
    future::join3(
        future::join_all(controllers),
        references,
        crate::cron::run(client.clone(), &scope, shutdown),
    )
    .await;
}

/// The operator's own Deployment as it changes.
fn own_deployment(
    client: &Client,
    own: &ObjectKey,
) -> impl Stream<Item = Deployment> + Send + 'static {
    let api: Api<Deployment> = Api::namespaced(client.clone(), &own.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", own.name));
    watcher(api, config)
        .applied_objects()
        .filter_map(|event| future::ready(event.ok()))
}

/// Wakes the DataFlows that use a Secret or a custom transform's ConfigMap when
/// that object changes. Only metadata is watched: the operator never holds the
/// data of Secrets and ConfigMaps it does not use.
async fn reference_changes(client: &Client, scope: &Scope, routes: Routes) {
    let mut watches = Vec::new();
    for partition in scope.partitions() {
        let routes = routes.clone();
        watches.push(
            watcher(
                api::<PartialObjectMeta<Secret>>(client, partition),
                watcher::Config::default(),
            )
            .touched_objects()
            .for_each(move |changed| {
                let routes = routes.clone();
                async move {
                    if let Ok(secret) = changed {
                        let key = object_key(secret.namespace(), secret.name_any());
                        routes.wake(|dataflows| using_secret(dataflows, &key)).await;
                    }
                }
            })
            .boxed(),
        );
    }
    for partition in scope.partitions() {
        let routes = routes.clone();
        watches.push(
            watcher(
                api::<PartialObjectMeta<ConfigMap>>(client, partition),
                watcher::Config::default(),
            )
            .touched_objects()
            .for_each(move |changed| {
                let routes = routes.clone();
                async move {
                    if let Ok(config_map) = changed {
                        let key = object_key(config_map.namespace(), config_map.name_any());
                        routes
                            .wake(|dataflows| using_config_map(dataflows, &key))
                            .await;
                    }
                }
            })
            .boxed(),
        );
    }
    future::join_all(watches).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    fn dataflow(name: &str, secret: &str, config_map: &str) -> Arc<DataFlow> {
        let yaml = format!(
            r#"
apiVersion: dataflow.dataflow.io/v1
kind: DataFlow
metadata: {{name: {name}, namespace: team}}
spec:
  source: {{type: kafka, kafka: {{brokers: [b], topic: t, consumerGroupSecretRef: {{name: {secret}, key: g}}}}}}
  sink: {{type: stdout}}
  transformations:
    - type: wasm
      wasm: {{configMapRef: {{name: {config_map}, key: t.wasm}}}}
"#
        );
        Arc::new(serde_norway::from_str(&yaml).unwrap())
    }

    #[test]
    fn changes_map_to_the_dataflows_that_use_them() {
        let all = vec![dataflow("a", "s1", "c1"), dataflow("b", "s2", "c1")];
        let hit = using_secret(&all, &ObjectKey::new("team", "s1"));
        assert_eq!(
            hit.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert!(using_secret(&all, &ObjectKey::new("other", "s1")).is_empty());
        let hit = using_config_map(&all, &ObjectKey::new("team", "c1"));
        assert_eq!(hit.len(), 2);
        assert!(using_config_map(&all, &ObjectKey::new("team", "c2")).is_empty());
    }

    fn operator(image: &str, replicas: i32) -> Deployment {
        Deployment {
            spec: DeploymentSpec {
                replicas: Some(replicas),
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "operator".into(),
                            image: Some(image.into()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                    ..PodTemplateSpec::default()
                },
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        }
    }

    #[tokio::test]
    async fn only_image_changes_tick() {
        let seen = futures::stream::iter(vec![
            operator("op:1", 1),
            operator("op:1", 2),
            operator("op:2", 2),
            operator("op:2", 1),
            operator("op:3", 1),
        ]);
        let ticks: Vec<()> = image_changes(seen).collect().await;
        assert_eq!(ticks.len(), 2);
    }
}
