//! `dataflow tap --dataflow NAME`: the flow's pod and tap token found with the
//! current kubeconfig, as `kubectl` would, and the tap read through the API
//! server's pod proxy as the user (`pods/proxy` and reading the Secret
//! `dataflow-<name>-tap` are the RBAC rights it takes). The token travels in
//! `X-Dataflow-Tap-Token`: the API server keeps the user's own `Authorization`.

use anyhow::Context;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::ListParams;
use kube::{Api, Client};

use super::{Stream, refusal};

/// The processor's port when its pod names none `metrics`.
const DEFAULT_PORT: i32 = 9090;

/// The container port named `metrics` of `pod`.
fn metrics_port(pod: &Pod) -> i32 {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some("metrics"))
        .map_or(DEFAULT_PORT, |p| p.container_port)
}

/// Opens the tap of DataFlow `name` in `namespace` (the kubeconfig's by default).
pub async fn open(name: &str, namespace: Option<&str>, query: &str) -> anyhow::Result<Stream> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default()
        .await
        .context("cannot reach the cluster of the current kubeconfig")?;
    let namespace = namespace.map_or_else(|| client.default_namespace().to_owned(), str::to_owned);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let listed = pods
        .list(&ListParams::default().labels(&format!("dataflow.dataflow.io/name={name}")))
        .await
        .with_context(|| format!("cannot list the pods of DataFlow {namespace}/{name}"))?;
    let chosen = listed
        .items
        .iter()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .or_else(|| listed.items.first())
        .with_context(|| format!("DataFlow {namespace}/{name} has no processor pod"))?;
    let port = metrics_port(chosen);
    let pod = chosen
        .metadata
        .name
        .clone()
        .with_context(|| format!("a pod of DataFlow {namespace}/{name} has no name"))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let secret_name = format!("dataflow-{name}-tap");
    let secret = secrets
        .get(&secret_name)
        .await
        .with_context(|| format!("cannot read the tap token (Secret {namespace}/{secret_name})"))?;
    let token = secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
        .with_context(|| format!("Secret {namespace}/{secret_name} has no key token"))?;
    let path = format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/api/v1/tap?{query}");
    let request = http::Request::get(path)
        .header("x-dataflow-tap-token", token)
        .header("accept", "text/event-stream")
        .body(Vec::new())
        .context("cannot make the request")?;
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .with_context(|| format!("cannot reach pod {namespace}/{pod} through the API server"))?;
    let status = response.status().as_u16();
    let body = response.into_body();
    if status != 200 {
        use http_body_util::BodyExt as _;
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(refusal(status, &String::from_utf8_lossy(&bytes)));
    }
    Ok(Stream::Proxy(body))
}
