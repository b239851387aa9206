//! The key of the roll-on-change hash.
//!
//! The pod template's `dataflow.dataflow.io/spec-hash` must change whenever
//! anything the processor reads changes (its resolved spec with the secret
//! values in it, a custom component's bytes, a reset asked for), and must reveal
//! nothing about those secrets to whoever may read the Deployment. A plain
//! digest of the resolved spec would let a viewer who knows every other byte
//! test candidate passwords offline, so the hash is an HMAC-SHA256 under a key
//! only the operator holds: 32 random bytes in a Secret of the operator's own
//! namespace, made by the first replica that needs it and read by the others,
//! so every replica (and every restart) computes the same hash.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::Sha256;

use crate::transforms::TransformPlan;

/// Default name of the Secret holding the key (`HASH_KEY_SECRET` overrides it).
pub const DEFAULT_SECRET_NAME: &str = "dataflow-operator-hash-key";
/// Key of the Secret's data holding the bytes.
const DATA_KEY: &str = "key";
/// Bytes of a new key.
const KEY_BYTES: usize = 32;

/// Why the key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum HashKeyError {
    /// Reading or creating the Secret failed.
    #[error("the hash key Secret {namespace}/{name}: {source}")]
    Api {
        /// Namespace of the Secret.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The Secret exists but holds no usable key.
    #[error("the hash key Secret {namespace}/{name} has no key {DATA_KEY:?} of at least 16 bytes")]
    Malformed {
        /// Namespace of the Secret.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The system's random source failed.
    #[error("cannot draw a random hash key: {0}")]
    Random(String),
}

/// The key the spec hash is computed under.
#[derive(Clone)]
pub struct HashKey(Vec<u8>);

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(***)")
    }
}

impl HashKey {
    /// A key of the given bytes (tests, and keys read from the Secret).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The key in the Secret `namespace/name`, which is created with a new
    /// random key when missing (another replica creating it first is fine: its
    /// key is read).
    pub async fn load_or_create(
        client: Client,
        namespace: &str,
        name: &str,
    ) -> Result<Self, HashKeyError> {
        let api_error = |source| HashKeyError::Api {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        };
        let api: Api<Secret> = Api::namespaced(client, namespace);
        if let Some(existing) = api.get_opt(name).await.map_err(api_error)? {
            return Self::from_secret(&existing, namespace, name);
        }
        let mut bytes = vec![0u8; KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| HashKeyError::Random(e.to_string()))?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    crate::FIELD_MANAGER.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(DATA_KEY.to_owned(), ByteString(bytes))])),
            type_: Some("Opaque".to_owned()),
            ..Secret::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(created) => Self::from_secret(&created, namespace, name),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = api.get(name).await.map_err(api_error)?;
                Self::from_secret(&existing, namespace, name)
            }
            Err(e) => Err(api_error(e)),
        }
    }

    fn from_secret(secret: &Secret, namespace: &str, name: &str) -> Result<Self, HashKeyError> {
        secret
            .data
            .as_ref()
            .and_then(|data| data.get(DATA_KEY))
            .filter(|bytes| bytes.0.len() >= 16)
            .map(|bytes| Self(bytes.0.clone()))
            .ok_or_else(|| HashKeyError::Malformed {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
    }

    /// The hash that rolls the processor: an HMAC over the resolved spec bytes,
    /// the digest of every custom component it loads, and the position reset
    /// asked for (so a new reset restarts the processor, or runs a new Job).
    pub fn spec_hash(
        &self,
        resolved_spec: &str,
        plan: &TransformPlan,
        reset: Option<&str>,
    ) -> String {
        // HMAC takes a key of any length; this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            unreachable!("HMAC accepts keys of every length")
        };
        mac.update(resolved_spec.as_bytes());
        for (key, digest) in &plan.digests {
            mac.update(&[0]);
            mac.update(key.as_bytes());
            mac.update(&[0]);
            mac.update(digest.as_bytes());
        }
        if let Some(reset) = reset {
            mac.update(&[1]);
            mac.update(reset.as_bytes());
        }
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn plan() -> TransformPlan {
        TransformPlan::default()
    }

    #[test]
    fn the_hash_follows_every_input_and_differs_by_key() {
        let key = HashKey::from_bytes(vec![7u8; 32]);
        let a = key.spec_hash("{}", &plan(), None);
        assert_eq!(a, key.spec_hash("{}", &plan(), None));
        assert_ne!(a, key.spec_hash("{ }", &plan(), None));
        let mut with_component = plan();
        with_component.digests.insert("pii".into(), "abc".into());
        assert_ne!(a, key.spec_hash("{}", &with_component, None));
        let reset = key.spec_hash("{}", &plan(), Some("earliest"));
        assert_ne!(reset, a);
        assert_ne!(reset, key.spec_hash("{}", &plan(), Some("earliest#2")));
        let other = HashKey::from_bytes(vec![8u8; 32]);
        assert_ne!(a, other.spec_hash("{}", &plan(), None));
    }

    #[test]
    fn the_hash_is_not_a_plain_digest_of_the_spec() {
        let spec = r#"{"sink":{"postgresql":{"connectionString":"postgres://a:marker@db/x"}}}"#;
        let hash = HashKey::from_bytes(vec![1u8; 32]).spec_hash(spec, &plan(), None);
        assert_ne!(hash, hex::encode(Sha256::digest(spec.as_bytes())));
        assert!(
            !format!("{:?}", HashKey::from_bytes(b"0123456789abcdef".to_vec())).contains("0123")
        );
    }
}
