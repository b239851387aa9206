//! Writing the operator's objects: server-side apply, deletes that accept an
//! object already gone, and the removal of what earlier versions left behind.

use dataflow_api::DataFlow;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::FIELD_MANAGER;
use crate::desired;
use crate::reconcile::{Context, Error};

/// Server-side apply of `object` in `namespace` (field manager
/// `dataflow-operator`, forced: the operator owns every field it writes).
pub(crate) async fn apply_object<K>(ctx: &Context, namespace: &str, object: &K) -> Result<K, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let name = object.meta().name.clone().unwrap_or_default();
    let mut body = serde_json::to_value(object)?;
    // Server-side apply needs the type in the body; k8s-openapi leaves it out.
    if let Some(map) = body.as_object_mut() {
        map.insert("apiVersion".into(), K::api_version(&()).into());
        map.insert("kind".into(), K::kind(&()).into());
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(&name, &params, &Patch::Apply(&body)).await?)
}

/// Deletes `namespace/name` (in the background); one already gone is fine.
pub(crate) async fn delete<K>(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the ConfigMap in which an earlier operator kept this flow's resolved
/// spec (secret values included), once the spec Secret and the workload that
/// mounts it are in place. Only a ConfigMap this DataFlow owns is deleted, and
/// only its metadata is read to find out.
pub(crate) async fn delete_legacy_spec(
    ctx: &Context,
    dataflow: &DataFlow,
    namespace: &str,
    name: &str,
) -> Result<(), Error> {
    let legacy = desired::legacy_config_map_name(name);
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(existing) = api.get_metadata_opt(&legacy).await? else {
        return Ok(());
    };
    let uid = dataflow.metadata.uid.as_deref();
    let owned = existing
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.kind == "DataFlow" && Some(owner.uid.as_str()) == uid);
    if owned {
        delete::<ConfigMap>(ctx, namespace, &legacy).await?;
        tracing::info!(config_map = %legacy, "deleted the spec ConfigMap of an earlier operator version");
    }
    Ok(())
}

/// Makes the flow's tap Secret with a new random token unless it exists (a
/// token is never replaced: clients keep theirs until the Secret is deleted).
pub(crate) async fn ensure_tap_secret(
    ctx: &Context,
    dataflow: &DataFlow,
    namespace: &str,
    name: &str,
) -> Result<(), Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    if api
        .get_metadata_opt(&desired::tap_secret_name(name))
        .await?
        .is_some()
    {
        return Ok(());
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    let secret = desired::tap_secret(dataflow, &hex::encode(bytes))?;
    match api.create(&kube::api::PostParams::default(), &secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
