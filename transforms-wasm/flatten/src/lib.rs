//! `flatten`: expands an array field into one message per element.

use dataflow_transform_config::FlattenConfig;
use dataflow_transform_sdk::json::{SmolStr, Value};
use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// The `flatten` transform.
///
/// For each element a copy of the message without the array is emitted: an object
/// element's keys are merged into the root (element keys win), any other element is
/// stored under the field's last segment. An empty array gives one message without
/// the field; a missing field or a non-array leaves the message unchanged. An
/// Avro-style wrapper `{"array": [...]}` counts as the array.
pub struct Flatten {
    field: FieldPath,
    name: SmolStr,
}

impl Transform for Flatten {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let field = parse_config::<FlattenConfig>(config)?.field()?;
        let name = SmolStr::new(field.last_name());
        Ok(Self { field, name })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let expandable = record.value.is_object()
            && matches!(self.field.get(&record.value), Some(found) if as_array(found).is_some());
        if !expandable {
            out.push(record);
            return Ok(());
        }
        let items = match self.field.take(&mut record.value) {
            Some(Value::Array(items)) => items,
            Some(Value::Object(mut wrapper)) => match wrapper.remove("array") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        if items.is_empty() {
            out.push(record);
            return Ok(());
        }
        let last = items.len() - 1;
        for (i, item) in items.into_iter().enumerate() {
            let (mut value, metadata) = if i == last {
                (
                    std::mem::take(&mut record.value),
                    std::mem::take(&mut record.metadata),
                )
            } else {
                (record.value.clone(), record.metadata.clone())
            };
            if let Value::Object(root) = &mut value {
                match item {
                    Value::Object(fields) => {
                        for (k, v) in fields {
                            root.insert(k, v);
                        }
                    }
                    other => {
                        root.insert(self.name.clone(), other);
                    }
                }
            }
            out.push(Record { value, metadata });
        }
        Ok(())
    }
}

fn as_array(value: &Value) -> Option<&Vec<Value>> {
    match value {
        Value::Array(items) => Some(items),
        Value::Object(map) if map.len() == 1 => map.get("array").and_then(Value::as_array),
        _ => None,
    }
}

dataflow_transform_sdk::export_if_component!(Flatten);
