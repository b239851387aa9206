//! Configs of the transforms that act on listed fields.

use dataflow_core::ConfigError;
use dataflow_core::path::FieldPath;
use serde::{Deserialize, Serialize};

use crate::{BuiltinConfig, non_empty};

/// Parses `fields`, refusing an empty list; errors name `fields[i]`.
pub(crate) fn field_paths(fields: &[String]) -> Result<Vec<FieldPath>, ConfigError> {
    if fields.is_empty() {
        return Err(ConfigError::field("fields", "must not be empty"));
    }
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            FieldPath::parse(f).map_err(|e| ConfigError::field(&format!("fields[{i}]"), e))
        })
        .collect()
}

/// Configuration of `flatten`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FlattenConfig {
    /// Path to the array to expand (dotted or JSONPath).
    pub field: String,
}

impl FlattenConfig {
    /// The array's path, which must name one location.
    pub fn field(&self) -> Result<FieldPath, ConfigError> {
        let field = FieldPath::parse(&self.field).map_err(|e| ConfigError::field("field", e))?;
        if field.has_wildcard() {
            return Err(ConfigError::field(
                "field",
                "must name one array, without wildcards",
            ));
        }
        Ok(field)
    }
}

impl BuiltinConfig for FlattenConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.field().map(drop)
    }
}

/// Configuration of `mask`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MaskConfig {
    /// Paths of the fields to mask (wildcards mask every match).
    pub fields: Vec<String>,
    /// The mask character (exactly one character); default (also when empty) `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_char: Option<String>,
    /// Keep the value's length (in characters of its string form); default false,
    /// which writes exactly three mask characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_length: Option<bool>,
}

impl MaskConfig {
    /// The parsed field paths.
    pub fn fields(&self) -> Result<Vec<FieldPath>, ConfigError> {
        field_paths(&self.fields)
    }

    /// The mask character.
    pub fn mask_char(&self) -> Result<char, ConfigError> {
        let text = non_empty(self.mask_char.as_deref()).unwrap_or("*");
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(ConfigError::field(
                "maskChar",
                format!("must be exactly one character, got {text:?}"),
            )),
        }
    }
}

impl BuiltinConfig for MaskConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.fields()?;
        self.mask_char().map(drop)
    }
}

/// Configuration of `select`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SelectConfig {
    /// Paths to keep; each found value is stored under the path's last segment.
    pub fields: Vec<String>,
}

impl SelectConfig {
    /// The parsed field paths.
    pub fn fields(&self) -> Result<Vec<FieldPath>, ConfigError> {
        field_paths(&self.fields)
    }
}

impl BuiltinConfig for SelectConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.fields().map(drop)
    }
}

/// Configuration of `remove`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RemoveConfig {
    /// Paths to delete (wildcards delete every match; missing paths are skipped).
    pub fields: Vec<String>,
}

impl RemoveConfig {
    /// The parsed field paths.
    pub fn fields(&self) -> Result<Vec<FieldPath>, ConfigError> {
        field_paths(&self.fields)
    }
}

impl BuiltinConfig for RemoveConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.fields().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_their_key() {
        let mask = MaskConfig {
            fields: vec!["a".into(), "$..x".into()],
            mask_char: None,
            keep_length: None,
        };
        assert!(
            mask.validate()
                .unwrap_err()
                .to_string()
                .starts_with("fields[1]: invalid path")
        );
        let mask = MaskConfig {
            fields: vec!["a".into()],
            mask_char: Some("ab".into()),
            keep_length: None,
        };
        assert_eq!(
            mask.validate().unwrap_err().to_string(),
            "maskChar: must be exactly one character, got \"ab\""
        );
        let empty = RemoveConfig { fields: vec![] };
        assert_eq!(
            empty.validate().unwrap_err().to_string(),
            "fields: must not be empty"
        );
        let wild = FlattenConfig {
            field: "a.*".into(),
        };
        assert!(
            wild.validate()
                .unwrap_err()
                .to_string()
                .starts_with("field: must name one array")
        );
    }
}
