//! Components named by `wasm.image`: pulled from an OCI registry when the flow
//! starts, checked against the step's pinned `sha256` before and after the
//! download, and kept in a cache directory (an `emptyDir` in the pod), so a
//! restarted container does not pull again and a registry outage after the
//! first start does not stop the flow.
//!
//! The artifact is the CNCF Wasm layout `wkg oci push` and `oras push` write:
//! an image manifest whose one `application/wasm` layer is the component.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dataflow_api::{
    DataFlowSpec, TransformationSpec, WASM_LAYER_MEDIA_TYPE, WasmImageSpec, WasmTransformSpec,
};
use dataflow_wasm_host::MAX_COMPONENT_BYTES;
use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

mod registry_auth;

/// Longest a registry may take to answer one request before the pull fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest a whole pull (manifest and component) may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a step's image could not be made a local component.
#[derive(Debug, thiserror::Error)]
#[error("spec.transformations[{index}].wasm.image {reference}: {reason}")]
pub struct PullError {
    /// Index of the step.
    pub index: usize,
    /// The image reference as written.
    pub reference: String,
    /// What went wrong.
    pub reason: String,
}

/// The default cache directory: `components` under the processor's cache
/// (`DATAFLOW_CACHE_DIR`, the pod's emptyDir in a cluster, else
/// `~/.cache/dataflow`), or under the temporary directory. A cached file is
/// used only when its digest is the pinned one.
pub fn default_cache_dir() -> PathBuf {
    dataflow_wasm_host::cache_dir()
        .unwrap_or_else(|| std::env::temp_dir().join("dataflow"))
        .join("components")
}

/// Whether any step names an image that has no local path yet.
pub fn has_images(spec: &DataFlowSpec) -> bool {
    spec.transformations
        .iter()
        .any(|step| matches!(&step.spec, TransformationSpec::Wasm(w) if needs_pull(w)))
}

fn needs_pull(wasm: &WasmTransformSpec) -> bool {
    wasm.image.is_some() && wasm.path.is_none()
}

/// Gives every `wasm.image` step the path of its component in `cache`, pulling
/// the ones not cached yet. Blocks on its own small runtime: it runs once,
/// before the flow's runtime starts.
pub fn pull_images(spec: &mut DataFlowSpec, cache: &Path) -> Result<(), PullError> {
    if !has_images(spec) {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PullError {
            index: 0,
            reference: String::new(),
            reason: format!("cannot start the async runtime: {e}"),
        })?;
    for (index, step) in spec.transformations.iter_mut().enumerate() {
        let TransformationSpec::Wasm(wasm) = &mut step.spec else {
            continue;
        };
        if !needs_pull(wasm) {
            continue;
        }
        let (Some(image), Some(pinned)) = (wasm.image.as_ref(), wasm.sha256.as_deref()) else {
            continue;
        };
        let fail = |reason: String| PullError {
            index,
            reference: image.reference.clone(),
            reason,
        };
        let path = runtime
            .block_on(async {
                tokio::time::timeout(PULL_TIMEOUT, fetch(image, pinned, cache))
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!(
                            "the pull took longer than {} s",
                            PULL_TIMEOUT.as_secs()
                        ))
                    })
            })
            .map_err(fail)?;
        wasm.path = Some(path.to_string_lossy().into_owned());
    }
    Ok(())
}

/// The cached component for `pinned`, pulled when missing or damaged.
async fn fetch(image: &WasmImageSpec, pinned: &str, cache: &Path) -> Result<PathBuf, String> {
    let pinned = pinned.to_ascii_lowercase();
    let target = cache.join(format!("{pinned}.wasm"));
    if cached(&target, &pinned).await {
        tracing::info!(reference = %image.reference, path = %target.display(), "component from the cache");
        return Ok(target);
    }
    let reference: Reference = image
        .reference
        .parse()
        .map_err(|e| format!("not an image reference: {e}"))?;
    let client = Client::new(ClientConfig {
        protocol: if image.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        read_timeout: Some(REQUEST_TIMEOUT),
        connect_timeout: Some(REQUEST_TIMEOUT),
        ..ClientConfig::default()
    });
    let credentials = registry_auth::credentials(image, reference.registry())?;
    let (manifest, _) = client
        .pull_image_manifest(&reference, &credentials.auth)
        .await
        .map_err(|e| match &credentials.anonymous_because {
            Some(why) => format!("cannot read the manifest: {e} ({why})"),
            None => format!("cannot read the manifest: {e}"),
        })?;
    let layer = component_layer(&manifest.layers)?;
    let expected = format!("sha256:{pinned}");
    if !layer.digest.eq_ignore_ascii_case(&expected) {
        return Err(format!(
            "its component layer is {}, but the step pins sha256 {pinned}: the tag now points at other bytes; pin the new digest to run them",
            layer.digest
        ));
    }
    let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
    if size > MAX_COMPONENT_BYTES {
        return Err(format!(
            "its component layer is {size} bytes; components of at most {MAX_COMPONENT_BYTES} bytes are accepted"
        ));
    }
    tokio::fs::create_dir_all(cache)
        .await
        .map_err(|e| format!("cannot create the cache {}: {e}", cache.display()))?;
    let partial = cache.join(format!("{pinned}.wasm.partial-{}", std::process::id()));
    let written = download(&client, &reference, layer, size, &pinned, &partial).await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    tokio::fs::rename(&partial, &target)
        .await
        .map_err(|e| format!("cannot store {}: {e}", target.display()))?;
    tracing::info!(reference = %image.reference, bytes = size, path = %target.display(), "component pulled");
    Ok(target)
}

/// Whether `path` holds bytes whose digest is `pinned`; a damaged file is removed.
async fn cached(path: &Path, pinned: &str) -> bool {
    let Ok(bytes) = tokio::fs::read(path).await else {
        return false;
    };
    if hex::encode(Sha256::digest(&bytes)) == pinned {
        return true;
    }
    tracing::warn!(path = %path.display(), "cached component does not match its digest; pulling it again");
    let _ = tokio::fs::remove_file(path).await;
    false
}

/// The one `application/wasm` layer of the manifest.
fn component_layer(
    layers: &[oci_client::manifest::OciDescriptor],
) -> Result<&oci_client::manifest::OciDescriptor, String> {
    let mut wasm = layers
        .iter()
        .filter(|l| l.media_type == WASM_LAYER_MEDIA_TYPE);
    match (wasm.next(), wasm.next()) {
        (Some(layer), None) => Ok(layer),
        (Some(_), Some(_)) => Err(format!(
            "the manifest has more than one {WASM_LAYER_MEDIA_TYPE} layer; a component artifact has one"
        )),
        (None, _) => {
            let found: Vec<&str> = layers.iter().map(|l| l.media_type.as_str()).collect();
            Err(format!(
                "the manifest has no {WASM_LAYER_MEDIA_TYPE} layer (found {found:?}); push the component as one, e.g. `oras push REF component.wasm:{WASM_LAYER_MEDIA_TYPE}` or `wkg oci push REF component.wasm`"
            ))
        }
    }
}

/// Streams the layer into `partial`, stopping at more than `size` bytes, and
/// checks the bytes' digest against `pinned`.
async fn download(
    client: &Client,
    reference: &Reference,
    layer: &oci_client::manifest::OciDescriptor,
    size: u64,
    pinned: &str,
    partial: &Path,
) -> Result<(), String> {
    let mut blob = client
        .pull_blob_stream(reference, layer)
        .await
        .map_err(|e| format!("cannot read the component layer: {e}"))?;
    let mut file = tokio::fs::File::create(partial)
        .await
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    while let Some(chunk) = blob.stream.next().await {
        let chunk = chunk.map_err(|e| format!("the download broke off: {e}"))?;
        received = received.saturating_add(chunk.len() as u64);
        if received > size {
            return Err(format!(
                "the registry sent more than the {size} bytes the manifest announces"
            ));
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    }
    file.flush()
        .await
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    let actual = hex::encode(hasher.finalize());
    if actual != pinned {
        return Err(format!(
            "the downloaded component has sha256 {actual}, not the pinned {pinned}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::manifest::OciDescriptor;

    fn layer(media_type: &str) -> OciDescriptor {
        OciDescriptor {
            media_type: media_type.into(),
            digest: "sha256:00".into(),
            size: 1,
            urls: None,
            annotations: None,
            artifact_type: None,
        }
    }

    #[test]
    fn the_component_is_the_one_wasm_layer() {
        let layers = [
            layer("application/vnd.oci.empty.v1+json"),
            layer("application/wasm"),
        ];
        assert_eq!(
            component_layer(&layers).map(|l| l.media_type.as_str()),
            Ok("application/wasm")
        );
        let err = component_layer(&layers[..1]).unwrap_err();
        assert!(err.contains("no application/wasm layer"), "{err}");
        let two = [layer("application/wasm"), layer("application/wasm")];
        assert!(component_layer(&two).unwrap_err().contains("more than one"));
    }
}
