//! The optional NetworkPolicy beside each processor (chart value
//! `processor.networkPolicy.enabled`): only pods of the listed namespaces (the
//! operator's and the monitoring namespace) may open a connection to the
//! processor's port, which serves `/metrics` and, where a flow allows it, the
//! tap. Egress is left open: connectors must reach their servers.

use dataflow_api::DataFlow;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{DesiredError, deployment_name, metadata, owned, selector_labels};

/// The label every namespace carries with its own name (Kubernetes 1.21+).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Who may reach a processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicySettings {
    /// Namespaces whose pods may connect to the processor's port.
    pub from_namespaces: Vec<String>,
}

/// The NetworkPolicy `dataflow-<name>` selecting this flow's processor pods.
pub fn network_policy(
    dataflow: &DataFlow,
    settings: &NetworkPolicySettings,
) -> Result<NetworkPolicy, DesiredError> {
    let owned = owned(dataflow)?;
    let peer = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: NAMESPACE_NAME_LABEL.to_owned(),
                operator: "In".to_owned(),
                values: Some(settings.from_namespaces.clone()),
            }]),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    Ok(NetworkPolicy {
        metadata: metadata(&owned, deployment_name(&owned.name)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&owned.name)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![peer]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::String("metrics".to_owned())),
                    protocol: Some("TCP".to_owned()),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    })
}
