//! The objects the operator keeps for one DataFlow, built as pure functions of the
//! DataFlow, the resolved spec and the operator's settings.
//!
//! | object | name | purpose |
//! |---|---|---|
//! | Secret | `dataflow-<name>-spec` | `spec.json`, the resolved spec (it holds secret values) |
//! | Deployment | `dataflow-<name>` | the processor |
//! | ServiceAccount, Role, RoleBinding | `dataflow-<name>-processor` | lets the processor patch its own DataFlow's status, nothing else |
//! | NetworkPolicy | `dataflow-<name>` | optional: who may reach the processor's port |

use std::collections::BTreeMap;

use dataflow_api::{DataFlow, requested_reset};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    HTTPGetAction, KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    Secret, SecretVolumeSource, SecurityContext, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use crate::transforms::TransformPlan;

mod network_policy;
pub use network_policy::{NetworkPolicySettings, network_policy};

/// Where the spec Secret is mounted in the processor container.
pub const SPEC_DIR: &str = "/etc/dataflow";
/// File mode of the mounted spec: readable by its owner and group only. The
/// kubelet gives a Secret volume's files the pod's `fsGroup` (the processor's
/// group, [`RUN_AS`]), and no other user runs in the pod.
pub const SPEC_FILE_MODE: i32 = 0o440;
/// Where the flow's tap token is mounted in the processor container.
pub const TAP_DIR: &str = "/etc/dataflow-tap";
/// Key of the token in the tap Secret.
pub const TAP_KEY: &str = "token";
/// Key of the resolved spec in the spec Secret.
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
    /// A NetworkPolicy beside each processor, when the chart asks for one.
    pub network_policy: Option<NetworkPolicySettings>,
}

/// Why the desired objects cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredError {
    /// The DataFlow has no uid or namespace yet (not read from the API server).
    #[error("DataFlow {0} has no uid or namespace; it must come from the API server")]
    NotStored(String),
}

/// Name of the spec Secret (and of the ConfigMap that held the spec before
/// secret values were kept out of ConfigMaps; see [`legacy_config_map_name`]).
pub fn spec_secret_name(dataflow: &str) -> String {
    format!("dataflow-{dataflow}-spec")
}

/// Name of the Secret holding the flow's tap token: whoever may read it may
/// use the processor's `/api/v1` (its tap, failures and playground).
pub fn tap_secret_name(dataflow: &str) -> String {
    format!("dataflow-{dataflow}-tap")
}

/// Name of the ConfigMap in which earlier operators kept the resolved spec, secret
/// values included; the operator deletes it once the spec Secret is in place.
pub fn legacy_config_map_name(dataflow: &str) -> String {
    spec_secret_name(dataflow)
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

/// The spec Secret holding `resolved_spec` as `spec.json`. Kubernetes' `view`
/// role and most read-only roles may read ConfigMaps but not Secrets, so the
/// secret values substituted into the spec are no more visible here than in the
/// Secrets they came from.
pub fn spec_secret(dataflow: &DataFlow, resolved_spec: &str) -> Result<Secret, DesiredError> {
    let owned = owned(dataflow)?;
    Ok(Secret {
        metadata: metadata(&owned, spec_secret_name(&owned.name)),
        data: Some(BTreeMap::from([(
            SPEC_KEY.to_owned(),
            ByteString(resolved_spec.as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    })
}

/// The tap Secret holding `token` (made once; never rewritten, so the token
/// stays what clients were given until the Secret is deleted).
pub fn tap_secret(dataflow: &DataFlow, token: &str) -> Result<Secret, DesiredError> {
    let owned = owned(dataflow)?;
    Ok(Secret {
        metadata: metadata(&owned, tap_secret_name(&owned.name)),
        data: Some(BTreeMap::from([(
            TAP_KEY.to_owned(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
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
        format!("--tap-token-file={TAP_DIR}/{TAP_KEY}"),
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
            secret: Some(SecretVolumeSource {
                secret_name: Some(spec_secret_name(&owned.name)),
                default_mode: Some(SPEC_FILE_MODE),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tap".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tap_secret_name(&owned.name)),
                default_mode: Some(SPEC_FILE_MODE),
                ..SecretVolumeSource::default()
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
            name: "tap".to_owned(),
            mount_path: TAP_DIR.to_owned(),
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
mod tests;
