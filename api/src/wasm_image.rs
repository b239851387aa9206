//! A custom component published to an OCI registry (`wasm.image`), in the
//! CNCF Wasm artifact layout that `wkg oci push` and `oras push` produce: one
//! layer of media type `application/wasm` holding the component's bytes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SecretRef;

/// Longest image reference accepted (the distribution spec's own limits keep
/// real ones far below this).
pub const MAX_IMAGE_REFERENCE_BYTES: usize = 1024;

/// Media type of the layer holding a component in the CNCF Wasm artifact layout.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// Where a component is pulled from. The step's `sha256` is required with it:
/// it is the digest of the component layer, so what runs is what was pinned
/// whatever the tag points at later.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmImageSpec {
    /// Image reference: `registry/repository:tag` or `registry/repository@sha256:...`.
    pub reference: String,
    /// The registry speaks plain HTTP (a registry inside the cluster without TLS).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plain_http: bool,
    /// User name for a registry that asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Secret key holding the user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretRef>,
    /// Password or token (prefer `passwordSecretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Secret key holding the password or token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretRef>,
    /// A Docker config (the JSON of a `kubernetes.io/dockerconfigjson` Secret):
    /// the entry of its `auths` for the image's registry gives the credentials.
    /// Usually filled by `dockerConfigSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_config: Option<String>,
    /// Secret key holding a Docker config, as `imagePullSecrets` use it:
    /// `{name: regcred, key: .dockerconfigjson}` for the Secret
    /// `kubectl create secret docker-registry regcred ...` makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_config_secret_ref: Option<SecretRef>,
}

impl WasmImageSpec {
    /// Why `reference` cannot name an image, if it cannot: empty, too long,
    /// whitespace, or no repository after the registry.
    pub fn reference_problem(&self) -> Option<String> {
        let reference = self.reference.as_str();
        if reference.trim().is_empty() {
            return Some("must not be empty".into());
        }
        if reference.len() > MAX_IMAGE_REFERENCE_BYTES {
            return Some(format!(
                "is {} bytes; at most {MAX_IMAGE_REFERENCE_BYTES} are accepted",
                reference.len()
            ));
        }
        if reference
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Some("must not contain whitespace".into());
        }
        if !reference.contains('/') {
            return Some(
                "must name the registry and the repository, e.g. registry.example.com/transforms/pii:1.0"
                    .into(),
            );
        }
        None
    }

    /// Whether a user name or password is given, directly or by a Secret.
    pub fn has_password_credentials(&self) -> bool {
        self.username.is_some()
            || self.username_secret_ref.is_some()
            || self.password.is_some()
            || self.password_secret_ref.is_some()
    }

    /// Whether a Docker config is given, directly or by a Secret.
    pub fn has_docker_config(&self) -> bool {
        self.docker_config.is_some() || self.docker_config_secret_ref.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(reference: &str) -> WasmImageSpec {
        WasmImageSpec {
            reference: reference.into(),
            ..WasmImageSpec::default()
        }
    }

    #[test]
    fn a_reference_names_registry_and_repository() {
        assert_eq!(image("ghcr.io/team/pii:1.0").reference_problem(), None);
        assert_eq!(
            image("localhost:5000/pii@sha256:00").reference_problem(),
            None
        );
        for bad in ["", "  ", "pii", "ghcr.io/team/pii :1"] {
            assert!(image(bad).reference_problem().is_some(), "{bad:?}");
        }
        let long = format!("r.io/{}", "a".repeat(MAX_IMAGE_REFERENCE_BYTES));
        assert!(image(&long).reference_problem().is_some());
    }
}
