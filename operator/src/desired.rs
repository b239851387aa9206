//! The objects the operator keeps for one DataFlow, built as pure functions of the
//! DataFlow, the resolved spec and the operator's settings.
//!
//! | object | name | purpose |
//! |---|---|---|
//! | ConfigMap | `dataflow-<name>-spec` | `spec.json`, the resolved spec |
//! | Deployment | `dataflow-<name>` | the processor |
//! | ServiceAccount, Role, RoleBinding | `dataflow-<name>-processor` | lets the processor patch its own DataFlow's status, nothing else |

use std::collections::BTreeMap;

use dataflow_api::{DataFlow, requested_reset};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, HTTPGetAction, KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecurityContext, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::transforms::TransformPlan;

/// Where the spec ConfigMap is mounted in the processor container.
pub const SPEC_DIR: &str = "/etc/dataflow";
/// Key of the resolved spec in the spec ConfigMap.
pub const SPEC_KEY: &str = "spec.json";
/// Pod-template annotation holding the hash of everything the processor reads.
pub const SPEC_HASH_ANNOTATION: &str = "dataflow.dataflow.io/spec-hash";
/// Label carrying the DataFlow's name on every object made for it.
pub const NAME_LABEL: &str = "dataflow.dataflow.io/name";
/// Port of the processor's metrics and health endpoints.
pub const METRICS_PORT: i32 = 9090;
/// Directory for the processor's compiled-component cache (an emptyDir, since the
/// root filesystem is read-only).
pub const CACHE_DIR: &str = "/var/cache/dataflow";
/// UID and GID the processor runs as.
pub const RUN_AS: i64 = 65532;

/// Operator settings that shape processor Deployments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorSettings {
    /// Processor image (`PROCESSOR_IMAGE`).
    pub image: String,
    /// `LOG_LEVEL` of processors (`PROCESSOR_LOG_LEVEL`).
    pub log_level: String,
}

/// Why the desired objects cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredError {
    /// The DataFlow has no uid or namespace yet (not read from the API server).
    #[error("DataFlow {0} has no uid or namespace; it must come from the API server")]
    NotStored(String),
}

/// Name of the spec ConfigMap.
pub fn config_map_name(dataflow: &str) -> String {
    format!("dataflow-{dataflow}-spec")
}

/// Name of the processor Deployment.
pub fn deployment_name(dataflow: &str) -> String {
    format!("dataflow-{dataflow}")
}

/// Name of the processor's ServiceAccount, Role and RoleBinding.
pub fn processor_account_name(dataflow: &str) -> String {
    format!("dataflow-{dataflow}-processor")
}

/// Labels on every object made for `dataflow` (also the Deployment's selector).
pub fn labels(dataflow: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "dataflow-processor".to_owned(),
        ),
        ("app.kubernetes.io/instance".to_owned(), dataflow.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            crate::FIELD_MANAGER.to_owned(),
        ),
        (NAME_LABEL.to_owned(), dataflow.to_owned()),
    ])
}

fn selector_labels(dataflow: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "dataflow-processor".to_owned(),
        ),
        (NAME_LABEL.to_owned(), dataflow.to_owned()),
    ])
}

/// The hash that rolls the processor: the resolved spec bytes plus the digest of
/// every custom component it loads, and the position reset asked for (so a new
/// reset restarts the processor, or runs a new Job).
pub fn spec_hash(resolved_spec: &str, plan: &TransformPlan, reset: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(resolved_spec.as_bytes());
    for (key, digest) in &plan.digests {
        hasher.update([0]);
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(digest.as_bytes());
    }
    if let Some(reset) = reset {
        hasher.update([1]);
        hasher.update(reset.as_bytes());
    }
    hex::encode(hasher.finalize())
}

pub(crate) struct Owned {
    pub(crate) name: String,
    namespace: String,
    owner: OwnerReference,
}

pub(crate) fn owned(dataflow: &DataFlow) -> Result<Owned, DesiredError> {
    let name = dataflow.name_any();
    let namespace = dataflow
        .namespace()
        .ok_or_else(|| DesiredError::NotStored(name.clone()))?;
    let owner = dataflow
        .controller_owner_ref(&())
        .ok_or_else(|| DesiredError::NotStored(name.clone()))?;
    Ok(Owned {
        name,
        namespace,
        owner,
    })
}

pub(crate) fn metadata(owned: &Owned, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(owned.namespace.clone()),
        labels: Some(labels(&owned.name)),
        owner_references: Some(vec![owned.owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// The spec ConfigMap holding `resolved_spec` as `spec.json`.
pub fn config_map(dataflow: &DataFlow, resolved_spec: &str) -> Result<ConfigMap, DesiredError> {
    let owned = owned(dataflow)?;
    Ok(ConfigMap {
        metadata: metadata(&owned, config_map_name(&owned.name)),
        data: Some(BTreeMap::from([(
            SPEC_KEY.to_owned(),
            resolved_spec.to_owned(),
        )])),
        ..ConfigMap::default()
    })
}

/// The processor's ServiceAccount.
pub fn service_account(dataflow: &DataFlow) -> Result<ServiceAccount, DesiredError> {
    let owned = owned(dataflow)?;
    Ok(ServiceAccount {
        metadata: metadata(&owned, processor_account_name(&owned.name)),
        ..ServiceAccount::default()
    })
}

/// A Role allowing exactly `get` and `patch` of this DataFlow's status, so the
/// processor can publish its counters and nothing more.
pub fn status_role(dataflow: &DataFlow) -> Result<Role, DesiredError> {
    let owned = owned(dataflow)?;
    Ok(Role {
        metadata: metadata(&owned, processor_account_name(&owned.name)),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![DataFlow::group(&()).into_owned()]),
            resources: Some(vec!["dataflows/status".to_owned()]),
            resource_names: Some(vec![owned.name.clone()]),
            verbs: vec!["get".to_owned(), "patch".to_owned()],
            ..PolicyRule::default()
        }]),
    })
}

/// Binds [`status_role`] to [`service_account`].
pub fn status_role_binding(dataflow: &DataFlow) -> Result<RoleBinding, DesiredError> {
    let owned = owned(dataflow)?;
    let name = processor_account_name(&owned.name);
    Ok(RoleBinding {
        metadata: metadata(&owned, name.clone()),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "Role".to_owned(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name,
            namespace: Some(owned.namespace.clone()),
            ..Subject::default()
        }]),
    })
}

/// The processor binary in the image (see the Dockerfile).
pub const PROCESSOR_BINARY: &str = "/usr/local/bin/dataflow-processor";

/// An HTTP probe of the processor's metrics port (served by `--metrics-addr`).
/// The endpoint comes up once the transforms are compiled, hence the delay.
fn http_probe(path: &str, period_seconds: i32, initial_delay_seconds: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("metrics".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        initial_delay_seconds: Some(initial_delay_seconds),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// The processor Deployment.
pub fn deployment(
    dataflow: &DataFlow,
    settings: &ProcessorSettings,
    plan: &TransformPlan,
    hash: &str,
) -> Result<Deployment, DesiredError> {
    let owned = owned(dataflow)?;
    Ok(Deployment {
        metadata: metadata(&owned, deployment_name(&owned.name)),
        spec: DeploymentSpec {
            replicas: Some(dataflow.spec.replicas.unwrap_or(1)),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&owned.name)),
                ..LabelSelector::default()
            },
            template: pod_template(dataflow, settings, plan, hash)?,
            // A flow's position (cursor row, replication slot, consumer group
            // commit) has one owner: the old processor stops before the new one
            // starts, so they never read the same rows twice or fight for a slot.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                ..DeploymentStrategy::default()
            }),
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    })
}

/// The processor's arguments; a valid reset annotation is passed on (the
/// processor applies a given request once, as its status records).
fn processor_args(dataflow: &DataFlow, owned: &Owned) -> Vec<String> {
    let mut args = vec![
        format!("--spec-path={SPEC_DIR}/{SPEC_KEY}"),
        format!("--namespace={}", owned.namespace),
        format!("--name={}", owned.name),
        format!("--metrics-addr=0.0.0.0:{METRICS_PORT}"),
    ];
    if let Some(Ok(reset)) = requested_reset(dataflow.metadata.annotations.as_ref(), &dataflow.spec)
    {
        args.push(format!("--reset-position={}", reset.text));
    }
    args
}

/// The processor pod, as every workload (Deployment, Job, CronJob) runs it.
pub fn pod_template(
    dataflow: &DataFlow,
    settings: &ProcessorSettings,
    plan: &TransformPlan,
    hash: &str,
) -> Result<PodTemplateSpec, DesiredError> {
    let owned = owned(dataflow)?;
    let spec = &dataflow.spec;
    let mut volumes = vec![
        Volume {
            name: "spec".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(&owned.name),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "cache".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "spec".to_owned(),
            mount_path: SPEC_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "cache".to_owned(),
            mount_path: CACHE_DIR.to_owned(),
            ..VolumeMount::default()
        },
    ];
    for transform in &plan.volumes {
        volumes.push(Volume {
            name: transform.volume.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: transform.config_map.clone(),
                items: Some(
                    transform
                        .keys
                        .iter()
                        .map(|key| KeyToPath {
                            key: key.clone(),
                            path: key.clone(),
                            ..KeyToPath::default()
                        })
                        .collect(),
                ),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: transform.volume.clone(),
            mount_path: transform.mount_path.clone(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let env = |name: &str, value: &str| EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    };
    let container = Container {
        name: "processor".to_owned(),
        image: Some(settings.image.clone()),
        // The image's entrypoint is the operator; its pods run the processor.
        command: Some(vec![PROCESSOR_BINARY.to_owned()]),
        args: Some(processor_args(dataflow, &owned)),
        env: Some(vec![
            env("LOG_LEVEL", &settings.log_level),
            env("DATAFLOW_CACHE_DIR", CACHE_DIR),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".to_owned()),
            container_port: METRICS_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        // `/livez` also fails when input waits with no progress for the spec's
        // `progressDeadlineSeconds`.
        liveness_probe: Some(http_probe("/livez", 10, 15)),
        readiness_probe: Some(http_probe("/readyz", 5, 2)),
        resources: spec.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let mut pod_labels = labels(&owned.name);
    pod_labels.extend(selector_labels(&owned.name));
    Ok(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(BTreeMap::from([(
                SPEC_HASH_ANNOTATION.to_owned(),
                hash.to_owned(),
            )])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(processor_account_name(&owned.name)),
            containers: vec![container],
            volumes: Some(volumes),
            node_selector: spec.node_selector.clone(),
            affinity: spec.affinity.clone(),
            tolerations: spec.tolerations.clone(),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS),
                run_as_group: Some(RUN_AS),
                fs_group: Some(RUN_AS),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::TransformVolume;

    fn dataflow() -> DataFlow {
        let mut df: DataFlow = serde_norway::from_str(
            r#"
apiVersion: dataflow.dataflow.io/v1
kind: DataFlow
metadata: {name: orders, namespace: team, uid: 1234-abcd}
spec:
  source: {type: generator, generator: {}}
  sink: {type: stdout}
  replicas: 3
  resources: {limits: {memory: 256Mi}, requests: {cpu: 100m}}
  nodeSelector: {disk: ssd}
  tolerations: [{key: dedicated, operator: Equal, value: data, effect: NoSchedule}]
  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a]}]}]}}}
"#,
        )
        .unwrap();
        df.metadata.generation = Some(1);
        df
    }

    fn settings() -> ProcessorSettings {
        ProcessorSettings {
            image: "ghcr.io/example/dataflow:1.2.3".into(),
            log_level: "debug".into(),
        }
    }

    #[test]
    fn config_map_holds_the_resolved_spec_and_is_owned() {
        let cm = config_map(&dataflow(), r#"{"sink":{}}"#).unwrap();
        assert_eq!(cm.metadata.name.as_deref(), Some("dataflow-orders-spec"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(cm.data.unwrap()["spec.json"], r#"{"sink":{}}"#);
        let owner = &cm.metadata.owner_references.unwrap()[0];
        assert_eq!(owner.kind, "DataFlow");
        assert_eq!(owner.api_version, "dataflow.dataflow.io/v1");
        assert_eq!(owner.name, "orders");
        assert_eq!(owner.uid, "1234-abcd");
        assert_eq!(owner.controller, Some(true));
    }

    #[test]
    fn deployment_runs_the_processor_as_specified() {
        let plan = TransformPlan {
            volumes: vec![TransformVolume {
                volume: "transform-0".into(),
                config_map: "pii".into(),
                keys: ["pii.wasm".to_owned()].into(),
                mount_path: "/etc/dataflow-transforms/pii".into(),
            }],
            digests: BTreeMap::new(),
        };
        let df = dataflow();
        let dep = deployment(&df, &settings(), &plan, "abc123").unwrap();
        assert_eq!(dep.metadata.name.as_deref(), Some("dataflow-orders"));
        assert_eq!(
            dep.metadata.owner_references.as_ref().unwrap()[0].name,
            "orders"
        );
        let spec = dep.spec;
        assert_eq!(spec.replicas, Some(3));
        let selector = spec.selector.match_labels.unwrap();
        let template_meta = spec.template.metadata.unwrap();
        let pod_labels = template_meta.labels.unwrap();
        for (k, v) in &selector {
            assert_eq!(pod_labels.get(k), Some(v), "selector label {k} on the pod");
        }
        assert_eq!(
            template_meta.annotations.unwrap()[SPEC_HASH_ANNOTATION],
            "abc123"
        );
        let pod = spec.template.spec.unwrap();
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("dataflow-orders-processor")
        );
        assert_eq!(pod.node_selector, df.spec.node_selector);
        assert_eq!(pod.tolerations, df.spec.tolerations);
        assert_eq!(pod.affinity, df.spec.affinity);
        let pod_security = pod.security_context.unwrap();
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(
            pod_security.seccomp_profile.unwrap().type_,
            "RuntimeDefault"
        );
        let container = &pod.containers[0];
        assert_eq!(
            container.image.as_deref(),
            Some("ghcr.io/example/dataflow:1.2.3")
        );
        assert_eq!(
            container.command.as_deref().unwrap(),
            ["/usr/local/bin/dataflow-processor"]
        );
        assert_eq!(
            container.args.as_deref().unwrap(),
            [
                "--spec-path=/etc/dataflow/spec.json",
                "--namespace=team",
                "--name=orders",
                "--metrics-addr=0.0.0.0:9090"
            ]
        );
        let liveness = container.liveness_probe.as_ref().unwrap();
        let get = liveness.http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some("/livez"));
        assert_eq!(get.port, IntOrString::String("metrics".into()));
        let readiness = container.readiness_probe.as_ref().unwrap();
        assert_eq!(
            readiness.http_get.as_ref().unwrap().path.as_deref(),
            Some("/readyz")
        );
        let env = container.env.as_ref().unwrap();
        assert_eq!(env[0].name, "LOG_LEVEL");
        assert_eq!(env[0].value.as_deref(), Some("debug"));
        assert_eq!(container.resources, df.spec.resources);
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        let mounts = container.volume_mounts.as_ref().unwrap();
        let spec_mount = mounts.iter().find(|m| m.name == "spec").unwrap();
        assert_eq!(spec_mount.mount_path, "/etc/dataflow");
        assert_eq!(spec_mount.read_only, Some(true));
        let wasm_mount = mounts.iter().find(|m| m.name == "transform-0").unwrap();
        assert_eq!(wasm_mount.mount_path, "/etc/dataflow-transforms/pii");
        let volumes = pod.volumes.unwrap();
        let spec_volume = volumes.iter().find(|v| v.name == "spec").unwrap();
        assert_eq!(
            spec_volume.config_map.as_ref().unwrap().name,
            "dataflow-orders-spec"
        );
        let wasm_volume = volumes.iter().find(|v| v.name == "transform-0").unwrap();
        let items = wasm_volume
            .config_map
            .as_ref()
            .unwrap()
            .items
            .as_ref()
            .unwrap();
        assert_eq!(
            (items[0].key.as_str(), items[0].path.as_str()),
            ("pii.wasm", "pii.wasm")
        );
    }

    #[test]
    fn processor_may_patch_only_its_own_status() {
        let df = dataflow();
        let role = status_role(&df).unwrap();
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].resources.as_deref().unwrap(), ["dataflows/status"]);
        assert_eq!(rules[0].resource_names.as_deref().unwrap(), ["orders"]);
        assert_eq!(rules[0].verbs, ["get", "patch"]);
        let binding = status_role_binding(&df).unwrap();
        assert_eq!(binding.role_ref.name, "dataflow-orders-processor");
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!(subject.name, "dataflow-orders-processor");
        assert_eq!(subject.namespace.as_deref(), Some("team"));
        assert_eq!(
            service_account(&df).unwrap().metadata.name.as_deref(),
            Some("dataflow-orders-processor")
        );
    }

    #[test]
    fn hash_follows_spec_and_components() {
        let mut plan = TransformPlan::default();
        let a = spec_hash("{}", &plan, None);
        assert_eq!(a, spec_hash("{}", &plan, None));
        assert_ne!(a, spec_hash("{ }", &plan, None));
        plan.digests.insert("pii/pii.wasm".into(), "00".into());
        let b = spec_hash("{}", &plan, None);
        assert_ne!(a, b);
        plan.digests.insert("pii/pii.wasm".into(), "01".into());
        assert_ne!(b, spec_hash("{}", &plan, None));
        let reset = spec_hash("{}", &plan, Some("earliest"));
        assert_ne!(reset, spec_hash("{}", &plan, None));
        assert_ne!(reset, spec_hash("{}", &plan, Some("earliest#2")));
    }

    #[test]
    fn a_valid_reset_annotation_reaches_the_processor_and_a_bad_one_does_not() {
        let mut df = dataflow();
        let annotate = |df: &mut DataFlow, value: &str| {
            df.metadata.annotations = Some(BTreeMap::from([(
                dataflow_api::RESET_ANNOTATION.to_owned(),
                value.to_owned(),
            )]));
        };
        let args = |df: &DataFlow| {
            let owned = owned(df).unwrap();
            processor_args(df, &owned)
        };
        df.spec.source =
            serde_norway::from_str("{type: kafka, kafka: {brokers: [k:9092], topic: t}}").unwrap();
        assert_eq!(args(&df).len(), 4);
        annotate(&mut df, "earliest#2");
        assert_eq!(args(&df).last().unwrap(), "--reset-position=earliest#2");
        annotate(&mut df, "sometime");
        assert_eq!(args(&df).len(), 4, "refused in the status instead");
    }

    #[test]
    fn unsaved_dataflow_is_refused() {
        let mut df = dataflow();
        df.metadata.uid = None;
        assert!(matches!(
            config_map(&df, "{}"),
            Err(DesiredError::NotStored(_))
        ));
    }
}
