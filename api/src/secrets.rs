//! Substituting Secret values for `*SecretRef` fields.
//!
//! `fooSecretRef` fills `foo`; the three TLS references fill the `*File` fields
//! that accept PEM content (`caSecretRef` -> `caFile`, and so on). A reference wins
//! over a direct value. Errors name the field, Secret and key, never a value.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value};

use crate::references::{ObjectKey, SECRET_REF_SUFFIX, walk_secret_refs};

/// Why a spec's secrets cannot be resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResolveError {
    /// The referenced Secret does not exist.
    #[error("{field}: secret {secret} not found")]
    SecretNotFound {
        /// Field holding the reference.
        field: String,
        /// The Secret.
        secret: ObjectKey,
    },
    /// The Secret exists but lacks the key.
    #[error("{field}: secret {secret} has no key {key:?}")]
    KeyNotFound {
        /// Field holding the reference.
        field: String,
        /// The Secret.
        secret: ObjectKey,
        /// The missing key.
        key: String,
    },
    /// The value is not UTF-8 text.
    #[error("{field}: key {key:?} of secret {secret} is not UTF-8 text")]
    NotText {
        /// Field holding the reference.
        field: String,
        /// The Secret.
        secret: ObjectKey,
        /// The key.
        key: String,
    },
    /// The reference itself is malformed.
    #[error("{field}: {reason}")]
    BadReference {
        /// Field holding the reference.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl ResolveError {
    /// Short machine-readable reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SecretNotFound { .. } => "SecretNotFound",
            Self::KeyNotFound { .. } => "SecretKeyNotFound",
            Self::NotText { .. } | Self::BadReference { .. } => "InvalidSecretRef",
        }
    }
}

/// The field a `*SecretRef` in the object at `parent` (a spec path) fills. The
/// Nessie connectors name their token `bearerToken`, so their `tokenSecretRef`
/// fills that.
pub fn target_field(parent: &str, reference_field: &str) -> String {
    let base = reference_field
        .strip_suffix(SECRET_REF_SUFFIX)
        .unwrap_or(reference_field);
    match base {
        "ca" | "cert" | "key" => format!("{base}File"),
        "token" if parent.ends_with(".nessie") => "bearerToken".to_owned(),
        other => other.to_owned(),
    }
}

/// Replaces every `*SecretRef` in `spec` (the spec as JSON) with the value it
/// points at. `secrets` holds the fetched Secrets by namespace/name; one missing
/// from the map does not exist. References without a namespace use `namespace`.
pub fn substitute(
    spec: &Value,
    namespace: &str,
    secrets: &BTreeMap<ObjectKey, Secret>,
) -> Result<Value, ResolveError> {
    // First collect what each reference resolves to, then rewrite; walking and
    // mutating at once would fight the borrow checker for no gain.
    let mut resolved: BTreeMap<String, String> = BTreeMap::new();
    let mut first_error = None;
    walk_secret_refs(spec, "spec", &mut |field, parsed| {
        if first_error.is_some() {
            return;
        }
        match parsed.map_err(|reason| ResolveError::BadReference {
            field: field.to_owned(),
            reason,
        }) {
            Ok(reference) => {
                let key = ObjectKey::new(
                    reference
                        .namespace
                        .clone()
                        .unwrap_or_else(|| namespace.to_owned()),
                    reference.name.clone(),
                );
                match lookup(secrets.get(&key), field, &key, &reference.key) {
                    Ok(value) => {
                        resolved.insert(field.to_owned(), value);
                    }
                    Err(e) => first_error = Some(e),
                }
            }
            Err(e) => first_error = Some(e),
        }
    });
    if let Some(error) = first_error {
        return Err(error);
    }
    let mut out = spec.clone();
    rewrite(&mut out, "spec", &mut resolved);
    Ok(out)
}

fn lookup(
    secret: Option<&Secret>,
    field: &str,
    key: &ObjectKey,
    data_key: &str,
) -> Result<String, ResolveError> {
    let secret = secret.ok_or_else(|| ResolveError::SecretNotFound {
        field: field.to_owned(),
        secret: key.clone(),
    })?;
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(data_key)) {
        return String::from_utf8(bytes.0.clone()).map_err(|_| ResolveError::NotText {
            field: field.to_owned(),
            secret: key.clone(),
            key: data_key.to_owned(),
        });
    }
    if let Some(text) = secret.string_data.as_ref().and_then(|d| d.get(data_key)) {
        return Ok(text.clone());
    }
    Err(ResolveError::KeyNotFound {
        field: field.to_owned(),
        secret: key.clone(),
        key: data_key.to_owned(),
    })
}

fn rewrite(value: &mut Value, path: &str, resolved: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            let refs: Vec<String> = map
                .keys()
                .filter(|k| resolved.contains_key(&format!("{path}.{k}")))
                .cloned()
                .collect();
            for key in &refs {
                if let Some(secret) = resolved.remove(&format!("{path}.{key}")) {
                    map.remove(key);
                    map.insert(target_field(path, key), Value::String(secret));
                }
            }
            rewrite_children(map, path, resolved);
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                rewrite(child, &format!("{path}[{i}]"), resolved);
            }
        }
        _ => {}
    }
}

fn rewrite_children(
    map: &mut Map<String, Value>,
    path: &str,
    resolved: &mut BTreeMap<String, String>,
) {
    for (key, child) in map.iter_mut() {
        rewrite(child, &format!("{path}.{key}"), resolved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn secret(pairs: &[(&str, &[u8])]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn reference_wins_and_is_removed() {
        let spec = json!({
            "source": {"type": "kafka", "kafka": {
                "brokers": "direct:9092",
                "brokersSecretRef": {"name": "kafka", "key": "brokers"},
                "topic": "t",
                "tls": {"caSecretRef": {"name": "tls", "key": "ca.crt", "namespace": "certs"}},
                "sasl": {"mechanism": "plain", "passwordSecretRef": {"name": "kafka", "key": "password"}}
            }},
            "sink": {"type": "stdout"}
        });
        let mut secrets = BTreeMap::new();
        secrets.insert(
            ObjectKey::new("team", "kafka"),
            secret(&[("brokers", b"k1:9092,k2:9092"), ("password", b"s3cret")]),
        );
        secrets.insert(
            ObjectKey::new("certs", "tls"),
            secret(&[("ca.crt", b"-----BEGIN CERTIFICATE-----\n...")]),
        );
        let out = substitute(&spec, "team", &secrets).unwrap();
        let kafka = &out["source"]["kafka"];
        assert_eq!(kafka["brokers"], "k1:9092,k2:9092");
        assert!(kafka.get("brokersSecretRef").is_none());
        assert_eq!(kafka["tls"]["caFile"], "-----BEGIN CERTIFICATE-----\n...");
        assert_eq!(kafka["sasl"]["password"], "s3cret");
        assert_eq!(kafka["topic"], "t");
        assert!(!out.to_string().contains("SecretRef"));
    }

    #[test]
    fn missing_secret_and_key_name_both_never_the_value() {
        let spec = json!({"sink": {"postgresql": {
            "connectionStringSecretRef": {"name": "pg", "key": "url"}}}});
        let err = substitute(&spec, "team", &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.sink.postgresql.connectionStringSecretRef: secret team/pg not found"
        );
        assert_eq!(err.reason(), "SecretNotFound");

        let mut secrets = BTreeMap::new();
        secrets.insert(
            ObjectKey::new("team", "pg"),
            secret(&[("other", b"hidden-value")]),
        );
        let err = substitute(&spec, "team", &secrets).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.sink.postgresql.connectionStringSecretRef: secret team/pg has no key \"url\""
        );
        assert!(!err.to_string().contains("hidden-value"));
    }

    #[test]
    fn binary_values_are_refused() {
        let spec = json!({"a": {"tokenSecretRef": {"name": "s", "key": "k"}}});
        let mut secrets = BTreeMap::new();
        secrets.insert(ObjectKey::new("ns", "s"), secret(&[("k", &[0xff, 0xfe])]));
        let err = substitute(&spec, "ns", &secrets).unwrap_err();
        assert_eq!(err.reason(), "InvalidSecretRef");
    }

    #[test]
    fn target_fields() {
        let at = "spec.sink.trino";
        assert_eq!(target_field(at, "passwordSecretRef"), "password");
        assert_eq!(target_field(at, "serverURLSecretRef"), "serverURL");
        assert_eq!(target_field(at, "clientSecretSecretRef"), "clientSecret");
        assert_eq!(target_field(at, "keySecretRef"), "keyFile");
        assert_eq!(
            target_field(
                "spec.transformations[0].wasm.image",
                "dockerConfigSecretRef"
            ),
            "dockerConfig"
        );
        assert_eq!(
            target_field("spec.sink.trino.keycloak", "tokenSecretRef"),
            "token"
        );
        assert_eq!(
            target_field("spec.source.nessie", "tokenSecretRef"),
            "bearerToken"
        );
        assert_eq!(
            target_field("spec.errors.nessie", "baseURLSecretRef"),
            "baseURL"
        );
    }
}
