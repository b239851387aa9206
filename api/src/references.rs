//! What a DataFlow refers to outside itself: Secrets (through `*SecretRef` fields
//! anywhere in the spec) and ConfigMaps holding custom transforms.
//!
//! The controller uses these lists to fetch what the reconcile needs and to map a
//! changed Secret or ConfigMap back to the DataFlows that use it.

use std::collections::BTreeSet;

use crate::{DataFlowSpec, SecretRef, TransformationSpec};
use serde_json::Value;

/// Suffix of every field that points at a Secret.
pub const SECRET_REF_SUFFIX: &str = "SecretRef";

/// A Secret or ConfigMap by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One `*SecretRef` found in a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundSecretRef {
    /// Field path of the reference, e.g. `spec.source.kafka.sasl.passwordSecretRef`.
    pub field: String,
    /// The reference.
    pub secret: SecretRef,
}

/// Calls `visit` for every `*SecretRef` object in a spec given as JSON, with the
/// field path. Values that do not parse
/// as a SecretRef are passed as `Err` with the reason, so callers can report them.
pub fn walk_secret_refs(
    value: &Value,
    path: &str,
    visit: &mut dyn FnMut(&str, Result<SecretRef, String>),
) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if key.ends_with(SECRET_REF_SUFFIX) && child.is_object() {
                    let parsed = serde_json::from_value::<SecretRef>(child.clone())
                        .map_err(|e| e.to_string());
                    visit(&child_path, parsed);
                } else {
                    walk_secret_refs(child, &child_path, visit);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk_secret_refs(child, &format!("{path}[{i}]"), visit);
            }
        }
        _ => {}
    }
}

/// Every well-formed `*SecretRef` in the spec, in document order.
pub fn secret_refs(spec: &DataFlowSpec) -> Vec<FoundSecretRef> {
    let Ok(json) = serde_json::to_value(spec) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    walk_secret_refs(&json, "spec", &mut |field, parsed| {
        if let Ok(secret) = parsed {
            found.push(FoundSecretRef {
                field: field.to_owned(),
                secret,
            });
        }
    });
    found
}

/// The Secrets a DataFlow in `namespace` reads; a reference without a namespace
/// means the DataFlow's own.
pub fn secret_keys(spec: &DataFlowSpec, namespace: &str) -> BTreeSet<ObjectKey> {
    secret_refs(spec)
        .into_iter()
        .map(|r| {
            let ns = r.secret.namespace.unwrap_or_else(|| namespace.to_owned());
            ObjectKey::new(ns, r.secret.name)
        })
        .collect()
}

/// Annotation by which a Secret in one namespace lets DataFlows of other
/// namespaces refer to it: a comma-separated list of those namespaces, e.g.
/// `dataflow.dataflow.io/allowed-namespaces: team-a,team-b`. Without it, a
/// `*SecretRef` into another namespace is refused (in the spirit of Gateway
/// API's ReferenceGrant: the owner of the object consents, not the referrer).
pub const ALLOWED_NAMESPACES_ANNOTATION: &str = "dataflow.dataflow.io/allowed-namespaces";

/// Whether an object with these annotations lets DataFlows of `namespace`
/// refer to it ([`ALLOWED_NAMESPACES_ANNOTATION`]).
pub fn grants_namespace(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
    namespace: &str,
) -> bool {
    annotations
        .and_then(|a| a.get(ALLOWED_NAMESPACES_ANNOTATION))
        .is_some_and(|list| list.split(',').any(|granted| granted.trim() == namespace))
}

/// The `*SecretRef`s of a DataFlow in `namespace` that name another namespace,
/// with the Secret each names.
pub fn cross_namespace_secret_refs(
    spec: &DataFlowSpec,
    namespace: &str,
) -> Vec<(FoundSecretRef, ObjectKey)> {
    secret_refs(spec)
        .into_iter()
        .filter_map(|found| {
            let other = found.secret.namespace.clone()?;
            (other != namespace).then(|| {
                let key = ObjectKey::new(other, found.secret.name.clone());
                (found, key)
            })
        })
        .collect()
}

/// Why a reference into another namespace is refused; the same words whether
/// or not the Secret exists, so a refusal tells nothing about other namespaces.
pub fn cross_namespace_refusal(field: &str, secret: &ObjectKey, namespace: &str) -> String {
    format!(
        "{field}: secret {secret} is in another namespace and does not grant namespace {namespace} (the Secret's owner may allow it with the annotation {ALLOWED_NAMESPACES_ANNOTATION}: {namespace})"
    )
}

/// The ConfigMaps holding custom transforms (components or Python sources) of a DataFlow in `namespace` (always
/// the DataFlow's own namespace).
pub fn transform_config_maps(spec: &DataFlowSpec, namespace: &str) -> BTreeSet<ObjectKey> {
    spec.transformations
        .iter()
        .filter_map(|t| match &t.spec {
            TransformationSpec::Wasm(wasm) => wasm.config_map_ref.as_ref(),
            other => other
                .script()
                .and_then(|(_, script)| script.code_config_map_ref.as_ref()),
        })
        .map(|r| ObjectKey::new(namespace, r.name.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> DataFlowSpec {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn finds_refs_in_source_sink_errors_and_routes() {
        let spec = spec(
            r#"
source:
  type: kafka
  kafka:
    topic: t
    brokersSecretRef: {name: kafka, key: brokers}
    sasl:
      mechanism: plain
      passwordSecretRef: {name: kafka, key: password, namespace: shared}
sink:
  type: postgresql
  postgresql:
    table: t
    connectionStringSecretRef: {name: pg, key: url}
transformations:
  - type: router
    router:
      routes:
        - condition: "$.a == 1"
          sink:
            type: postgresql
            postgresql: {table: x, connectionStringSecretRef: {name: pg2, key: url}}
errors:
  type: kafka
  kafka: {brokers: [b], topic: e}
"#,
        );
        let fields: Vec<_> = secret_refs(&spec).into_iter().map(|r| r.field).collect();
        assert_eq!(
            fields,
            [
                "spec.source.kafka.brokersSecretRef",
                "spec.source.kafka.sasl.passwordSecretRef",
                "spec.sink.postgresql.connectionStringSecretRef",
                "spec.transformations[0].router.routes[0].sink.postgresql.connectionStringSecretRef",
            ]
        );
        let keys: Vec<_> = secret_keys(&spec, "team")
            .into_iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(keys, ["shared/kafka", "team/kafka", "team/pg", "team/pg2"]);
    }

    #[test]
    fn references_into_other_namespaces_need_the_owners_grant() {
        let spec = spec(
            r#"
source:
  type: kafka
  kafka:
    topic: t
    brokers: [b]
    sasl:
      mechanism: plain
      passwordSecretRef: {name: kafka, key: password, namespace: shared}
sink:
  type: postgresql
  postgresql:
    table: t
    connectionStringSecretRef: {name: pg, key: url, namespace: team}
"#,
        );
        let found = cross_namespace_secret_refs(&spec, "team");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0.field, "spec.source.kafka.sasl.passwordSecretRef");
        assert_eq!(found[0].1, ObjectKey::new("shared", "kafka"));
        let annotated = |value: &str| {
            std::collections::BTreeMap::from([(
                ALLOWED_NAMESPACES_ANNOTATION.to_owned(),
                value.to_owned(),
            )])
        };
        assert!(grants_namespace(Some(&annotated("team")), "team"));
        assert!(grants_namespace(Some(&annotated("a, team ,b")), "team"));
        assert!(!grants_namespace(Some(&annotated("team-a")), "team"));
        assert!(!grants_namespace(Some(&annotated("*")), "team"));
        assert!(!grants_namespace(None, "team"));
        let refusal = cross_namespace_refusal(&found[0].0.field, &found[0].1, "team");
        assert!(
            refusal.starts_with("spec.source.kafka.sasl.passwordSecretRef: secret shared/kafka is in another namespace"),
            "{refusal}"
        );
    }

    #[test]
    fn finds_transform_config_maps() {
        let spec = spec(
            r#"
source: {type: generator, generator: {}}
sink: {type: stdout}
transformations:
  - type: wasm
    wasm: {configMapRef: {name: pii, key: pii.wasm}}
  - type: wasm
    wasm: {path: /local.wasm}
"#,
        );
        let keys: Vec<_> = transform_config_maps(&spec, "team").into_iter().collect();
        assert_eq!(keys, [ObjectKey::new("team", "pii")]);
    }
}
