//! `select`: keeps only the chosen fields, as a flat object.

use dataflow_transform_config::SelectConfig;
use dataflow_transform_sdk::json::{Map, SmolStr, Value};
use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// The `select` transform. A path with wildcards yields the array of its matches.
/// When no path matches, the message passes unchanged (as in the Go original).
pub struct Select {
    fields: Vec<(FieldPath, SmolStr)>,
}

impl Transform for Select {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let fields = parse_config::<SelectConfig>(config)?
            .fields()?
            .into_iter()
            .map(|path| {
                let name = SmolStr::new(path.last_name());
                (path, name)
            })
            .collect();
        Ok(Self { fields })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let mut selected = Map::with_capacity(self.fields.len());
        for (path, name) in &self.fields {
            let value = if path.has_wildcard() {
                let all = path.get_all(&record.value);
                if all.is_empty() {
                    continue;
                }
                Value::Array(all.into_iter().cloned().collect())
            } else {
                match path.get(&record.value) {
                    Some(found) => found.clone(),
                    None => continue,
                }
            };
            selected.insert(name.clone(), value);
        }
        if !selected.is_empty() {
            record.value = Value::Object(selected);
        }
        out.push(record);
        Ok(())
    }
}

dataflow_transform_sdk::export_if_component!(Select);
