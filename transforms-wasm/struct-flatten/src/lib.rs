//! `structFlatten`: nested objects become top-level keys joined by a delimiter
//! (`{"a": {"b": 1}}` becomes `{"a.b": 1}`). Arrays are kept as values.

use dataflow_transform_config::StructFlattenConfig;
use dataflow_transform_sdk::json::{Map, Value};
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// The `structFlatten` transform.
pub struct StructFlatten {
    delimiter: String,
    max_depth: u32,
}

impl Transform for StructFlatten {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: StructFlattenConfig = parse_config(config)?;
        Ok(Self {
            delimiter: config.delimiter().to_owned(),
            max_depth: config.max_depth()?,
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        // Only an object has nested fields; a document without any passes unchanged.
        if let Value::Object(map) = &mut record.value
            && map.values().any(is_nested)
        {
            let mut flat = Map::with_capacity(map.len() * 2);
            let mut key = String::new();
            self.flatten_into(&mut flat, &mut key, std::mem::take(map), 1)?;
            record.value = Value::Object(flat);
        }
        out.push(record);
        Ok(())
    }
}

/// A non-empty object: flattening changes it.
fn is_nested(value: &Value) -> bool {
    matches!(value, Value::Object(inner) if !inner.is_empty())
}

impl StructFlatten {
    /// Moves `map`'s fields into `flat`, under `prefix` joined with their keys;
    /// objects at `depth` below the limit are flattened too.
    fn flatten_into(
        &self,
        flat: &mut Map,
        prefix: &mut String,
        map: Map,
        depth: u32,
    ) -> Result<(), TransformError> {
        let top = depth == 1;
        for (key, value) in map {
            let start = prefix.len();
            if !top {
                prefix.push_str(&self.delimiter);
            }
            prefix.push_str(&key);
            match value {
                Value::Object(inner) if !inner.is_empty() && depth < self.max_depth => {
                    self.flatten_into(flat, prefix, inner, depth + 1)?;
                }
                value => {
                    if flat.insert(prefix.as_str(), value).is_some() {
                        return Err(TransformError::invalid_data(format!(
                            "flattening makes the key {prefix:?} twice"
                        )));
                    }
                }
            }
            prefix.truncate(start);
        }
        Ok(())
    }
}

dataflow_transform_sdk::export_if_component!(StructFlatten);
