//! `timezone`: rewrites listed timestamps in another time zone (RFC 3339 with the
//! zone's offset). The IANA zone database is compiled in, so the component needs
//! no file and no host call to resolve a zone.

use chrono::{DateTime, FixedOffset, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use dataflow_transform_config::{EpochUnit, TimezoneConfig, Zone};
use dataflow_transform_sdk::json::Value;
use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{
    ConfigError, Record, Transform, TransformError, parse_config, quoted_excerpt,
};

/// Layouts of timestamps written without an offset.
const NAIVE_LAYOUTS: [&str; 2] = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"];

/// The `timezone` transform.
pub struct Timezone {
    fields: Vec<FieldPath>,
    to: Zone,
    from: Zone,
    unit: EpochUnit,
}

impl Transform for Timezone {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: TimezoneConfig = parse_config(config)?;
        Ok(Self {
            fields: config.fields()?,
            to: config.to()?,
            from: config.from()?,
            unit: config.epoch_unit.unwrap_or_default(),
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        for path in &self.fields {
            let mut failure = None;
            path.for_each_mut(&mut record.value, &mut |value| {
                if failure.is_some() || matches!(value, Value::Null) {
                    return;
                }
                match self.read(value) {
                    Ok(time) => *value = Value::from(render(time, self.to)),
                    Err(reason) => failure = Some(reason),
                }
            });
            if let Some(reason) = failure {
                return Err(TransformError::invalid_data(format!(
                    "cannot convert {path}: {reason}"
                )));
            }
        }
        out.push(record);
        Ok(())
    }
}

impl Timezone {
    /// The instant a field holds.
    fn read(&self, value: &Value) -> Result<DateTime<Utc>, String> {
        match value {
            Value::String(text) => self.parse(text),
            Value::Number(n) => {
                let epoch = n.as_i64().ok_or_else(|| {
                    format!("{} is not a whole number", quoted_excerpt(n.as_str()))
                })?;
                let time = match self.unit {
                    EpochUnit::Seconds => DateTime::from_timestamp(epoch, 0),
                    EpochUnit::Millis => DateTime::from_timestamp_millis(epoch),
                    EpochUnit::Micros => DateTime::from_timestamp_micros(epoch),
                };
                time.ok_or_else(|| format!("{epoch} is out of the time range"))
            }
            _ => Err("the value is not a timestamp (a string or a number)".to_owned()),
        }
    }

    /// An RFC 3339 timestamp, or one without offset read in the `from` zone.
    fn parse(&self, text: &str) -> Result<DateTime<Utc>, String> {
        if let Ok(time) = DateTime::parse_from_rfc3339(text) {
            return Ok(time.with_timezone(&Utc));
        }
        let naive = NAIVE_LAYOUTS
            .iter()
            .find_map(|layout| NaiveDateTime::parse_from_str(text, layout).ok())
            .ok_or_else(|| format!("{} is not an RFC 3339 timestamp", quoted_excerpt(text)))?;
        let local = match self.from {
            Zone::Named(tz) => tz
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
            Zone::Fixed(offset) => offset
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
        };
        local.ok_or_else(|| format!("{} does not exist in the source zone", quoted_excerpt(text)))
    }
}

/// `time` in `zone`, RFC 3339 with the zone's offset and only the fraction digits needed.
fn render(time: DateTime<Utc>, zone: Zone) -> String {
    match zone {
        Zone::Named(tz) => time
            .with_timezone(&tz)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        Zone::Fixed(offset) => time
            .with_timezone::<FixedOffset>(&offset)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
    }
}

dataflow_transform_sdk::export_if_component!(Timezone);
