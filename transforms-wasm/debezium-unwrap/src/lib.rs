//! `debeziumUnwrap`: turns Debezium change events into plain rows.
//!
//! Reads the envelope bare (`{"before", "after", "op", "source", ...}`) or inside
//! Kafka Connect's JSON wrapper (`{"schema": ..., "payload": {...}}`). Creates (`c`),
//! snapshot reads (`r`) and updates (`u`) become their `after` row; deletes (`d`)
//! become their `before` row with `__deleted: true`, or are dropped; truncate (`t`)
//! and logical messages (`m`) carry no row and are dropped; tombstones are dropped
//! or passed on.

use dataflow_transform_config::{DebeziumUnwrapConfig, DeleteHandling};
use dataflow_transform_sdk::json::{Map, Value};
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// The `debeziumUnwrap` transform.
pub struct DebeziumUnwrap {
    deletes: DeleteHandling,
    drop_tombstones: bool,
    add_op: bool,
    /// Each `source` field with the row key it is written to.
    source_fields: Vec<(String, String)>,
}

impl Transform for DebeziumUnwrap {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: DebeziumUnwrapConfig = parse_config(config)?;
        dataflow_transform_config::BuiltinConfig::validate(&config)?;
        Ok(Self {
            deletes: config.delete_handling.unwrap_or_default(),
            drop_tombstones: config.drop_tombstones.unwrap_or(true),
            add_op: config.add_op.unwrap_or(false),
            source_fields: config
                .source_fields
                .iter()
                .map(|name| (name.clone(), format!("source_{name}")))
                .collect(),
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let Some(mut envelope) = take_envelope(&mut record.value)? else {
            if !self.drop_tombstones {
                out.push(record);
            }
            return Ok(());
        };
        let op = match envelope.get("op") {
            Some(Value::String(op)) => op.clone(),
            Some(_) => {
                return Err(TransformError::invalid_data(
                    "the event's op is not a string",
                ));
            }
            None => {
                return Err(TransformError::invalid_data(
                    "the message is not a Debezium change event: it has no op",
                ));
            }
        };
        let (row_key, deleted) = match op.as_str() {
            "c" | "r" | "u" => ("after", false),
            "d" if self.deletes == DeleteHandling::Drop => return Ok(()),
            "d" => ("before", true),
            "t" | "m" => return Ok(()),
            other => {
                return Err(TransformError::invalid_data(format!(
                    "unknown Debezium op {other:?} (expected c, r, u, d, t or m)"
                )));
            }
        };
        let mut row = match envelope.remove(row_key) {
            Some(Value::Object(row)) => row,
            _ => {
                return Err(TransformError::invalid_data(format!(
                    "the {op:?} event has no {row_key} row (for deletes, the table needs a replica identity that logs the old row)"
                )));
            }
        };
        if self.deletes == DeleteHandling::Rewrite {
            row.insert("__deleted", Value::Bool(deleted));
        }
        if self.add_op {
            row.insert("__op", Value::String(op));
        }
        if !self.source_fields.is_empty() {
            let source = envelope.get("source").and_then(Value::as_object);
            for (name, key) in &self.source_fields {
                let value = source
                    .and_then(|s| s.get(name))
                    .cloned()
                    .unwrap_or_default();
                row.insert(key.as_str(), value);
            }
        }
        record.value = Value::Object(row);
        out.push(record);
        Ok(())
    }
}

/// The change event, out of its Kafka Connect wrapper if it has one; `None` for a
/// tombstone (a `null` message or a `null` payload).
fn take_envelope(value: &mut Value) -> Result<Option<Map>, TransformError> {
    match std::mem::take(value) {
        Value::Null => Ok(None),
        Value::Object(mut map) if !map.contains_key("op") && map.contains_key("payload") => {
            match map.remove("payload") {
                Some(Value::Object(inner)) => Ok(Some(inner)),
                Some(Value::Null) | None => Ok(None),
                Some(_) => Err(TransformError::invalid_data(
                    "the message's payload is not a Debezium change event",
                )),
            }
        }
        Value::Object(map) => Ok(Some(map)),
        _ => Err(TransformError::invalid_data(
            "the message is not a Debezium change event: it is not a JSON object",
        )),
    }
}

dataflow_transform_sdk::export_if_component!(DebeziumUnwrap);
