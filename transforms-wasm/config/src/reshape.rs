//! Configs of the transforms that reshape a document: `insertField`,
//! `extractField`, `hoistField`, `structFlatten` and `replaceField`.

use dataflow_core::ConfigError;
use dataflow_core::path::FieldPath;
use serde::{Deserialize, Serialize};

use crate::{BuiltinConfig, non_empty};

/// Parses a path that must name one location (no wildcards); errors name `key`.
pub(crate) fn single_path(key: &str, text: &str) -> Result<FieldPath, ConfigError> {
    let path = FieldPath::parse(text).map_err(|e| ConfigError::field(key, e))?;
    if path.has_wildcard() {
        return Err(ConfigError::field(
            key,
            "must name one field, without wildcards",
        ));
    }
    Ok(path)
}

/// Configuration of `insertField`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InsertFieldConfig {
    /// Field path to value, inserted in this order (an existing field is replaced).
    /// A string may hold `${metadata.<key>}` and `${now}` (UTC, RFC 3339 with
    /// milliseconds); `$${` writes a literal `${`. Other JSON values are inserted
    /// as they are.
    #[cfg_attr(feature = "schema", schemars(schema_with = "any_values"))]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// An object whose values may be any JSON: a structural schema for Kubernetes
/// (no `additionalProperties: true`, which the API server refuses there).
#[cfg(feature = "schema")]
fn any_values(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// One piece of an `insertField` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Text written as it is.
    Literal(String),
    /// The value of a metadata key.
    Metadata(String),
    /// The current UTC time.
    Now,
}

/// Splits an `insertField` string into its literal text and placeholders.
pub fn parse_template(text: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(escaped) = after.strip_prefix("$${") {
            literal.push_str("${");
            rest = escaped;
        } else if let Some(open) = after.strip_prefix("${") {
            let end = open
                .find('}')
                .ok_or_else(|| format!("unclosed placeholder in {text:?}"))?;
            let name = &open[..end];
            let part = match name {
                "now" => TemplatePart::Now,
                _ => match name.strip_prefix("metadata.") {
                    Some(key) if !key.is_empty() => TemplatePart::Metadata(key.to_owned()),
                    _ => {
                        return Err(format!(
                            "unknown placeholder ${{{name}}} (expected ${{now}} or ${{metadata.<key>}})"
                        ));
                    }
                },
            };
            if !literal.is_empty() {
                parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &open[end + 1..];
        } else {
            literal.push('$');
            rest = &after[1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() || parts.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    Ok(parts)
}

impl InsertFieldConfig {
    /// Each target path with its value, strings split into template parts.
    pub fn fields(&self) -> Result<Vec<(FieldPath, InsertValue)>, ConfigError> {
        if self.fields.is_empty() {
            return Err(ConfigError::field("fields", "must not be empty"));
        }
        self.fields
            .iter()
            .map(|(path, value)| {
                let key = format!("fields.{path}");
                let target = single_path(&key, path)?;
                let value = match value {
                    serde_json::Value::String(text) => InsertValue::Template(
                        parse_template(text).map_err(|e| ConfigError::field(&key, e))?,
                    ),
                    other => InsertValue::Json(other.to_string()),
                };
                Ok((target, value))
            })
            .collect()
    }
}

/// What `insertField` writes at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertValue {
    /// A string, from literal text and placeholders.
    Template(Vec<TemplatePart>),
    /// A JSON value other than a string, as JSON text.
    Json(String),
}

impl BuiltinConfig for InsertFieldConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.fields().map(drop)
    }
}

/// Configuration of `extractField`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtractFieldConfig {
    /// Path of the field whose value becomes the whole message.
    pub field: String,
}

impl ExtractFieldConfig {
    /// The field's path.
    pub fn field(&self) -> Result<FieldPath, ConfigError> {
        single_path("field", &self.field)
    }
}

impl BuiltinConfig for ExtractFieldConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.field().map(drop)
    }
}

/// Configuration of `hoistField`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HoistFieldConfig {
    /// Path the whole message is moved under (`payload` gives `{"payload": ...}`).
    pub field: String,
}

impl HoistFieldConfig {
    /// The field's path.
    pub fn field(&self) -> Result<FieldPath, ConfigError> {
        single_path("field", &self.field)
    }
}

impl BuiltinConfig for HoistFieldConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.field().map(drop)
    }
}

/// The deepest `structFlatten` may be told to go.
pub const MAX_FLATTEN_DEPTH: u32 = 64;
/// `structFlatten`'s depth when none is set.
const DEFAULT_FLATTEN_DEPTH: u32 = 16;

/// Configuration of `structFlatten`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StructFlattenConfig {
    /// Joins the keys of nested objects; default (also when empty) `.`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// Levels of nesting flattened (1 to 64, default 16); objects below it are kept
    /// whole under their joined key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
}

impl StructFlattenConfig {
    /// The delimiter.
    pub fn delimiter(&self) -> &str {
        non_empty(self.delimiter.as_deref()).unwrap_or(".")
    }

    /// The depth limit.
    pub fn max_depth(&self) -> Result<u32, ConfigError> {
        match self.max_depth {
            None => Ok(DEFAULT_FLATTEN_DEPTH),
            Some(depth @ 1..=MAX_FLATTEN_DEPTH) => Ok(depth),
            Some(depth) => Err(ConfigError::field(
                "maxDepth",
                format!("must be between 1 and {MAX_FLATTEN_DEPTH}, got {depth}"),
            )),
        }
    }
}

impl BuiltinConfig for StructFlattenConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.max_depth().map(drop)
    }
}

/// Configuration of `replaceField`: top-level fields kept, dropped and renamed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReplaceFieldConfig {
    /// Renames, each `old:new`, applied after `include` or `exclude`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renames: Vec<String>,
    /// Keep only these fields (not with `exclude`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Drop these fields (not with `include`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// Which top-level fields `replaceField` keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldSelection {
    /// Every field.
    All,
    /// Only these.
    Include(Vec<String>),
    /// All but these.
    Exclude(Vec<String>),
}

impl ReplaceFieldConfig {
    /// The renames as `(old, new)` pairs.
    pub fn renames(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(self.renames.len());
        for (i, rename) in self.renames.iter().enumerate() {
            let key = format!("renames[{i}]");
            let (old, new) = match rename.split_once(':') {
                Some((old, new)) if !old.is_empty() && !new.is_empty() && !new.contains(':') => {
                    (old, new)
                }
                _ => {
                    return Err(ConfigError::field(
                        &key,
                        format!("must be `old:new`, got {rename:?}"),
                    ));
                }
            };
            if pairs.iter().any(|(o, _)| o == old) {
                return Err(ConfigError::field(
                    &key,
                    format!("{old:?} is renamed twice"),
                ));
            }
            if pairs.iter().any(|(_, n)| n == new) {
                return Err(ConfigError::field(
                    &key,
                    format!("two fields are renamed to {new:?}"),
                ));
            }
            pairs.push((old.to_owned(), new.to_owned()));
        }
        Ok(pairs)
    }

    /// Which fields are kept.
    pub fn selection(&self) -> Result<FieldSelection, ConfigError> {
        match (self.include.is_empty(), self.exclude.is_empty()) {
            (false, false) => Err(ConfigError::field(
                "include",
                "cannot be set together with exclude",
            )),
            (false, true) => Ok(FieldSelection::Include(self.include.clone())),
            (true, false) => Ok(FieldSelection::Exclude(self.exclude.clone())),
            (true, true) if self.renames.is_empty() => Err(ConfigError::new(
                "set renames, include or exclude: this replaceField does nothing",
            )),
            (true, true) => Ok(FieldSelection::All),
        }
    }
}

impl BuiltinConfig for ReplaceFieldConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.renames()?;
        self.selection().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_text_and_placeholders() {
        assert_eq!(
            parse_template("at ${now} from ${metadata.topic}!").unwrap(),
            vec![
                TemplatePart::Literal("at ".into()),
                TemplatePart::Now,
                TemplatePart::Literal(" from ".into()),
                TemplatePart::Metadata("topic".into()),
                TemplatePart::Literal("!".into()),
            ]
        );
        assert_eq!(
            parse_template("cost $5 $${x}").unwrap(),
            vec![TemplatePart::Literal("cost $5 ${x}".into())]
        );
        assert_eq!(
            parse_template("").unwrap(),
            vec![TemplatePart::Literal(String::new())]
        );
        assert!(parse_template("${metadata.}").is_err());
        assert!(
            parse_template("${today}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(parse_template("${now").unwrap_err().contains("unclosed"));
    }

    #[test]
    fn replace_field_problems_name_their_key() {
        let both = ReplaceFieldConfig {
            include: vec!["a".into()],
            exclude: vec!["b".into()],
            ..Default::default()
        };
        assert_eq!(
            both.validate().unwrap_err().to_string(),
            "include: cannot be set together with exclude"
        );
        let bad = ReplaceFieldConfig {
            renames: vec!["a:b".into(), "c".into()],
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .starts_with("renames[1]: must be")
        );
        let twice = ReplaceFieldConfig {
            renames: vec!["a:b".into(), "c:b".into()],
            ..Default::default()
        };
        assert!(
            twice
                .validate()
                .unwrap_err()
                .to_string()
                .contains("two fields")
        );
        assert!(ReplaceFieldConfig::default().validate().is_err());
    }

    #[test]
    fn flatten_depth_is_bounded() {
        let deep = StructFlattenConfig {
            max_depth: Some(65),
            ..Default::default()
        };
        assert!(
            deep.validate()
                .unwrap_err()
                .to_string()
                .starts_with("maxDepth:")
        );
        assert_eq!(StructFlattenConfig::default().max_depth().unwrap(), 16);
    }
}
