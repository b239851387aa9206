//! Reading connector settings: required values, and `*SecretRef`s the operator
//! should have resolved before the spec reached the processor.

use dataflow_api::SecretRef;

use super::ConnectorError;

/// The value of a setting that must be present. A `*SecretRef` left in the spec
/// means the spec did not come through the operator (which substitutes secrets), so
/// the error says to set the value directly for a local run.
pub(super) fn required<'a>(
    value: Option<&'a str>,
    secret: Option<&SecretRef>,
    path: &str,
    field: &str,
) -> Result<&'a str, ConnectorError> {
    unresolved(secret, path, field)?;
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConnectorError::Config {
            path: format!("{path}.{field}"),
            reason: "required".into(),
        }),
    }
}

/// An optional setting.
pub(super) fn optional<'a>(
    value: Option<&'a str>,
    secret: Option<&SecretRef>,
    path: &str,
    field: &str,
) -> Result<Option<&'a str>, ConnectorError> {
    unresolved(secret, path, field)?;
    Ok(value.filter(|v| !v.is_empty()))
}

fn unresolved(secret: Option<&SecretRef>, path: &str, field: &str) -> Result<(), ConnectorError> {
    match secret {
        Some(secret) => Err(ConnectorError::Config {
            path: format!("{path}.{field}SecretRef"),
            reason: format!(
                "secret {}/{} was not resolved: the operator substitutes secrets; for a local run set `{field}` directly",
                secret.name, secret.key
            ),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field() {
        let err = required(None, None, "spec.source.kafka", "topic").unwrap_err();
        assert_eq!(err.to_string(), "spec.source.kafka.topic: required");
        let secret = SecretRef {
            name: "creds".into(),
            namespace: None,
            key: "topic".into(),
        };
        let err = required(Some("t"), Some(&secret), "spec.source.kafka", "topic").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "spec.source.kafka.topicSecretRef: secret creds/topic was not resolved"
            ),
            "{err}"
        );
        assert_eq!(required(Some("t"), None, "p", "topic").unwrap(), "t");
        assert_eq!(optional(Some(""), None, "p", "x").unwrap(), None);
    }
}
