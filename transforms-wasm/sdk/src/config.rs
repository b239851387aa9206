use serde::de::DeserializeOwned;

use dataflow_core::ConfigError;

/// Parses a JSON configuration into `T`, reporting errors with the path of the
/// offending key (`routes[1].condition: invalid type: ...`).
///
/// An empty configuration text is treated as `{}`.
pub fn parse_config<T: DeserializeOwned>(config: &str) -> Result<T, ConfigError> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path.is_empty() || path == "." {
            ConfigError::new(inner.to_string())
        } else {
            ConfigError::field(&path, inner)
        }
    })?;
    de.end()
        .map_err(|err| ConfigError::new(format!("trailing data after config: {err}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Sample {
        #[allow(dead_code)]
        keep_length: Option<bool>,
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse_config::<Sample>(r#"{"keepLength": "yes"}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("keepLength: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse_config::<Sample>(r#"{"keepLenght": true}"#).unwrap_err();
        assert!(err.to_string().contains("keepLenght"), "{err}");
    }

    #[test]
    fn empty_text_is_an_empty_object() {
        assert!(parse_config::<Sample>("").is_ok());
    }
}
