//! `insertField`: sets fields to literal values, metadata or the current time.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use dataflow_transform_config::{InsertFieldConfig, InsertValue, TemplatePart};
use dataflow_transform_sdk::json::Value;
use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// What is written at one path.
enum Insert {
    /// A fixed value (a JSON value, or a string without placeholders).
    Fixed(Value),
    /// Exactly one metadata placeholder: the value, or `null` when the key is unset.
    Metadata(String),
    /// Text and placeholders joined (an unset metadata key writes nothing).
    Template(Vec<TemplatePart>),
}

/// The `insertField` transform.
pub struct InsertField {
    fields: Vec<(FieldPath, Insert)>,
    /// Whether any template reads the clock.
    reads_clock: bool,
}

impl Transform for InsertField {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: InsertFieldConfig = parse_config(config)?;
        let mut reads_clock = false;
        let fields = config
            .fields()?
            .into_iter()
            .map(|(path, value)| {
                let insert = match value {
                    InsertValue::Json(text) => Insert::Fixed(
                        Value::parse(text.as_bytes())
                            .map_err(|e| ConfigError::field(&format!("fields.{path}"), e))?,
                    ),
                    InsertValue::Template(mut parts) => match parts.as_mut_slice() {
                        [TemplatePart::Literal(text)] => {
                            Insert::Fixed(Value::from(std::mem::take(text)))
                        }
                        [TemplatePart::Metadata(key)] => Insert::Metadata(std::mem::take(key)),
                        _ => {
                            reads_clock |= parts.contains(&TemplatePart::Now);
                            Insert::Template(parts)
                        }
                    },
                };
                Ok((path, insert))
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self {
            fields,
            reads_clock,
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        if !record.value.is_object() {
            return Err(TransformError::invalid_data(
                "the message is not a JSON object: insertField can only add fields to an object",
            ));
        }
        let now = if self.reads_clock {
            now()?
        } else {
            String::new()
        };
        for (path, insert) in &self.fields {
            let value = match insert {
                Insert::Fixed(value) => value.clone(),
                Insert::Metadata(key) => record.meta(key).map_or(Value::Null, Value::from),
                Insert::Template(parts) => {
                    let mut text = String::new();
                    for part in parts {
                        match part {
                            TemplatePart::Literal(literal) => text.push_str(literal),
                            TemplatePart::Metadata(key) => {
                                text.push_str(record.meta(key).unwrap_or_default());
                            }
                            TemplatePart::Now => text.push_str(&now),
                        }
                    }
                    Value::from(text)
                }
            };
            if !path.set(&mut record.value, value) {
                return Err(TransformError::invalid_data(format!(
                    "cannot set {path}: it runs through a missing array element"
                )));
            }
        }
        out.push(record);
        Ok(())
    }
}

/// The current UTC time, RFC 3339 with milliseconds.
fn now() -> Result<String, TransformError> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| TransformError::failed("the wall clock is before 1970"))?;
    let secs = i64::try_from(since.as_secs())
        .map_err(|_| TransformError::failed("the wall clock is out of range"))?;
    let time = DateTime::<Utc>::from_timestamp(secs, since.subsec_nanos())
        .ok_or_else(|| TransformError::failed("the wall clock is out of range"))?;
    Ok(time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

dataflow_transform_sdk::export_if_component!(InsertField);
