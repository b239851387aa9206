//! `replaceField`: keeps (`include`) or drops (`exclude`) top-level fields and
//! renames others (`renames`, each `old:new`).

use dataflow_transform_config::{FieldSelection, ReplaceFieldConfig};
use dataflow_transform_sdk::json::{Map, Value};
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// The `replaceField` transform.
pub struct ReplaceField {
    selection: FieldSelection,
    renames: Vec<(String, String)>,
}

impl ReplaceField {
    fn keeps(&self, key: &str) -> bool {
        match &self.selection {
            FieldSelection::All => true,
            FieldSelection::Include(names) => names.iter().any(|n| n == key),
            FieldSelection::Exclude(names) => !names.iter().any(|n| n == key),
        }
    }
}

impl Transform for ReplaceField {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: ReplaceFieldConfig = parse_config(config)?;
        Ok(Self {
            selection: config.selection()?,
            renames: config.renames()?,
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let Value::Object(map) = &mut record.value else {
            return Err(TransformError::invalid_data(
                "the message is not a JSON object: replaceField works on an object's fields",
            ));
        };
        let mut replaced = Map::with_capacity(map.len());
        for (key, value) in std::mem::take(map) {
            if !self.keeps(&key) {
                continue;
            }
            let renamed = self.renames.iter().find(|(old, _)| *old == key);
            let name = renamed.map_or(key.clone(), |(_, new)| new.as_str().into());
            if replaced.insert(name, value).is_some() {
                let (old, new) = renamed.map_or((key.as_str(), key.as_str()), |(o, n)| (o, n));
                return Err(TransformError::invalid_data(format!(
                    "renaming {old:?} to {new:?} would overwrite the field {new:?}"
                )));
            }
        }
        *map = replaced;
        out.push(record);
        Ok(())
    }
}

dataflow_transform_sdk::export_if_component!(ReplaceField);
