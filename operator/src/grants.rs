//! References into other namespaces, and the consent they need.
//!
//! The operator may read Secrets in every namespace it watches; a user who may
//! create a DataFlow in one namespace must not borrow that right to read a
//! Secret of another. So a `*SecretRef` naming another namespace is followed
//! only when the Secret's owner granted the DataFlow's namespace, by the
//! annotation `dataflow.dataflow.io/allowed-namespaces`, or when the operator
//! was installed with `allowCrossNamespaceReferences: true`. The check reads
//! only the Secret's metadata: a refused Secret's data is never fetched.
//! (`configMapRef` has no namespace field: a custom transform always comes from
//! the DataFlow's own namespace.)

use dataflow_api::DataFlowSpec;
use dataflow_api::references::{
    cross_namespace_refusal, cross_namespace_secret_refs, grants_namespace,
};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

/// Whether references into other namespaces need the referenced object's grant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReferencePolicy {
    /// Follow every reference into another namespace without a grant (the
    /// chart's `allowCrossNamespaceReferences`, off by default).
    pub allow_cross_namespace: bool,
}

/// One message per `*SecretRef` of a DataFlow in `namespace` that names a
/// Secret of another namespace not granting it, each naming the field. A
/// Secret that does not exist, or that the operator may not read, is refused in
/// the same words as one that does not grant: the refusal tells nothing about
/// another namespace.
pub async fn refused_references(
    client: &Client,
    spec: &DataFlowSpec,
    namespace: &str,
    policy: ReferencePolicy,
) -> Result<Vec<String>, kube::Error> {
    if policy.allow_cross_namespace {
        return Ok(Vec::new());
    }
    let mut refused = Vec::new();
    for (found, secret) in cross_namespace_secret_refs(spec, namespace) {
        let api: Api<Secret> = Api::namespaced(client.clone(), &secret.namespace);
        let granted = match api.get_metadata_opt(&secret.name).await {
            Ok(Some(meta)) => grants_namespace(meta.metadata.annotations.as_ref(), namespace),
            Ok(None) => false,
            Err(kube::Error::Api(status)) if status.code == 403 => false,
            Err(e) => return Err(e),
        };
        if !granted {
            refused.push(cross_namespace_refusal(&found.field, &secret, namespace));
        }
    }
    Ok(refused)
}
