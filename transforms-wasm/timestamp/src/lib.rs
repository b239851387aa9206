//! `timestamp`: sets a field to the current UTC time (WASI wall clock).

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use dataflow_transform_config::{TimestampConfig, TimestampFormat as Format};
use dataflow_transform_sdk::json::{Number, Value};
use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// The `timestamp` transform.
pub struct Timestamp {
    field: FieldPath,
    format: Format,
    /// The last rendered value and the clock reading (in the format's resolution) it is for.
    cached: Option<(i128, Value)>,
}

/// The clock reading at the format's resolution; equal readings render equally.
fn resolution_key(format: &Format, secs: i64, nanos: u32) -> i128 {
    match format {
        Format::Rfc3339
        | Format::Unix
        | Format::Pattern {
            sub_second: false, ..
        } => i128::from(secs),
        Format::UnixMilli => i128::from(secs) * 1000 + i128::from(nanos / 1_000_000),
        Format::Rfc3339Nano
        | Format::Pattern {
            sub_second: true, ..
        } => i128::from(secs) * 1_000_000_000 + i128::from(nanos),
    }
}

/// The time `secs`.`nanos` in `format`.
fn render(format: &Format, secs: i64, nanos: u32) -> Value {
    let time = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap_or_default();
    match format {
        Format::Rfc3339 => Value::from(time.to_rfc3339_opts(SecondsFormat::Secs, true)),
        Format::Rfc3339Nano => {
            let mut text = time.format("%Y-%m-%dT%H:%M:%S").to_string();
            if nanos != 0 {
                let digits = format!("{nanos:09}");
                text.push('.');
                text.push_str(digits.trim_end_matches('0'));
            }
            text.push('Z');
            Value::from(text)
        }
        Format::Unix => Value::Number(Number::from(secs)),
        Format::UnixMilli => {
            Value::Number(Number::from(secs * 1000 + i64::from(nanos / 1_000_000)))
        }
        Format::Pattern { items, .. } => {
            Value::from(time.format_with_items(items.iter()).to_string())
        }
    }
}

impl Transform for Timestamp {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: TimestampConfig = parse_config(config)?;
        Ok(Self {
            field: config.field()?,
            format: config.format()?,
            cached: None,
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        // Only an object has fields: any other document passes through untouched,
        // as in the Go original.
        if !matches!(record.value, Value::Object(_)) {
            out.push(record);
            return Ok(());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| TransformError::failed("the wall clock is before 1970"))?;
        let secs = i64::try_from(now.as_secs())
            .map_err(|_| TransformError::failed("the wall clock is out of range"))?;
        let nanos = now.subsec_nanos();
        let key = resolution_key(&self.format, secs, nanos);
        let value = match &self.cached {
            Some((cached_key, value)) if *cached_key == key => value.clone(),
            _ => {
                let value = render(&self.format, secs, nanos);
                self.cached = Some((key, value.clone()));
                value
            }
        };
        if !self.field.set(&mut record.value, value) {
            return Err(TransformError::invalid_data(format!(
                "cannot set {}: it runs through a missing array element",
                self.field
            )));
        }
        out.push(record);
        Ok(())
    }
}

dataflow_transform_sdk::export_if_component!(Timestamp);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_format() {
        let secs = 1_700_000_000; // 2023-11-14T22:13:20Z
        let cases = [
            ("RFC3339", Value::from("2023-11-14T22:13:20Z")),
            ("RFC3339Nano", Value::from("2023-11-14T22:13:20.5Z")),
            ("Unix", Value::from(1_700_000_000i64)),
            ("UnixMilli", Value::from(1_700_000_000_500i64)),
            ("2006-01-02 15:04:05", Value::from("2023-11-14 22:13:20")),
            ("%Y/%m/%d", Value::from("2023/11/14")),
        ];
        for (format, expected) in cases {
            let f = Format::parse(format).unwrap();
            assert_eq!(render(&f, secs, 500_000_000), expected, "{format}");
        }
    }
}
