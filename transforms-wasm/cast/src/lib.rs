//! `cast`: converts listed fields to string, integer, float or boolean.
//!
//! A value that cannot be converted fails the message (an error record naming the
//! field and the value), never a silent drop. Missing fields and nulls are left alone.

use dataflow_transform_config::{CastConfig, CastType};
use dataflow_transform_sdk::json::{Number, Value};
use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{
    ConfigError, Record, Transform, TransformError, parse_config, quoted_excerpt,
};

/// 2^63 as a float.
const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

/// The `cast` transform.
pub struct Cast {
    fields: Vec<(FieldPath, CastType)>,
}

impl Transform for Cast {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: CastConfig = parse_config(config)?;
        Ok(Self {
            fields: config.fields()?,
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        for (path, to) in &self.fields {
            let mut failure = None;
            path.for_each_mut(&mut record.value, &mut |value| {
                if failure.is_some() || matches!(value, Value::Null) {
                    return;
                }
                match cast(value, *to) {
                    Ok(Some(cast)) => *value = cast,
                    Ok(None) => {}
                    Err(reason) => failure = Some(reason),
                }
            });
            if let Some(reason) = failure {
                return Err(TransformError::invalid_data(format!(
                    "cannot cast {path} to {}: {reason}",
                    type_name(*to)
                )));
            }
        }
        out.push(record);
        Ok(())
    }
}

fn type_name(to: CastType) -> &'static str {
    match to {
        CastType::String => "string",
        CastType::Integer => "integer",
        CastType::Float => "float",
        CastType::Boolean => "boolean",
    }
}

/// The converted value; `None` when it already has the type.
fn cast(value: &Value, to: CastType) -> Result<Option<Value>, String> {
    match to {
        CastType::String => Ok(match value {
            Value::String(_) => None,
            Value::Number(n) => Some(Value::from(n.as_str())),
            other => Some(Value::from(other.to_string())),
        }),
        CastType::Integer => to_integer(value).map(|n| Some(Value::from(n))),
        CastType::Float => to_float(value).map(|f| Number::from_f64(f).map(Value::Number)),
        CastType::Boolean => to_boolean(value).map(|b| Some(Value::Bool(b))),
    }
}

fn to_integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| float_to_integer(n.as_f64(), n.as_str()), Ok),
        Value::String(s) => {
            let text = s.trim();
            text.parse::<i64>()
                .or_else(|_| float_to_integer(text.parse::<f64>().ok(), text))
        }
        Value::Bool(b) => Ok(i64::from(*b)),
        other => Err(not_scalar(other)),
    }
}

/// A float truncated toward zero, when it fits an `i64`.
fn float_to_integer(float: Option<f64>, text: &str) -> Result<i64, String> {
    match float {
        // -2^63 fits an `i64`, 2^63 does not.
        Some(f) if (-I64_LIMIT..I64_LIMIT).contains(&f) => Ok(f.trunc() as i64),
        Some(_) => Err(format!(
            "{} is out of the integer range",
            quoted_excerpt(text)
        )),
        None => Err(format!("{} is not a number", quoted_excerpt(text))),
    }
}

fn to_float(value: &Value) -> Result<f64, String> {
    let (parsed, text) = match value {
        Value::Number(n) => (n.as_f64(), n.as_str()),
        Value::String(s) => (s.trim().parse::<f64>().ok(), s.as_str()),
        Value::Bool(b) => return Ok(if *b { 1.0 } else { 0.0 }),
        other => return Err(not_scalar(other)),
    };
    match parsed {
        Some(f) if f.is_finite() => Ok(f),
        Some(_) => Err(format!(
            "{} is out of the float range",
            quoted_excerpt(text)
        )),
        None => Err(format!("{} is not a number", quoted_excerpt(text))),
    }
}

fn to_boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => match n.as_f64() {
            Some(f) => Ok(f != 0.0),
            None => Err(format!("{} is not a number", quoted_excerpt(n.as_str()))),
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" | "on" => Ok(true),
            "false" | "0" | "no" | "n" | "off" => Ok(false),
            _ => Err(format!("{} is not a boolean", quoted_excerpt(s))),
        },
        other => Err(not_scalar(other)),
    }
}

fn not_scalar(value: &Value) -> String {
    let what = if value.is_array() {
        "an array"
    } else {
        "an object"
    };
    format!("the value is {what}")
}

dataflow_transform_sdk::export_if_component!(Cast);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_truncate_and_refuse_what_does_not_fit() {
        assert_eq!(to_integer(&Value::from("-3.9")), Ok(-3));
        assert_eq!(to_integer(&Value::from(" 42 ")), Ok(42));
        assert!(
            to_integer(&Value::from("1e30"))
                .unwrap_err()
                .contains("out of the integer range")
        );
        assert!(
            to_integer(&Value::from("abc"))
                .unwrap_err()
                .contains("not a number")
        );
        let long = "x".repeat(1000);
        assert!(to_integer(&Value::from(long.as_str())).unwrap_err().len() < 100);
    }
}
