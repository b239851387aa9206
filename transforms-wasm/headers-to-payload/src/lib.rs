//! `headersToPayload`: copies named message headers (the source's
//! `headers.<name>` metadata) into the document as string fields.

use dataflow_transform_config::HeadersToPayloadConfig;
use dataflow_transform_sdk::json::{Map, Value};
use dataflow_transform_sdk::path::FieldPath;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};

/// The `headersToPayload` transform.
pub struct HeadersToPayload {
    /// Each metadata key with the document key it is written to.
    headers: Vec<(String, String)>,
    /// The object they go under, if not the top level.
    field: Option<FieldPath>,
}

impl Transform for HeadersToPayload {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: HeadersToPayloadConfig = parse_config(config)?;
        Ok(Self {
            headers: config.headers()?,
            field: config.field()?,
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        if !record.value.is_object() {
            return Err(TransformError::invalid_data(
                "the message is not a JSON object: headersToPayload can only add fields to an object",
            ));
        }
        let Record { value, metadata } = &mut record;
        let mut found = self.headers.iter().filter_map(|(meta_key, key)| {
            dataflow_transform_sdk::find_meta(metadata, meta_key).map(|v| (key, v))
        });
        match &self.field {
            None => {
                if let Value::Object(map) = value {
                    for (key, header) in found {
                        map.insert(key.as_str(), Value::from(header));
                    }
                }
            }
            Some(path) => {
                let mut target = Map::new();
                let mut refused = false;
                let seen = path.for_each_mut(value, &mut |existing| match existing {
                    Value::Object(map) => {
                        for (key, header) in found.by_ref() {
                            map.insert(key.as_str(), Value::from(header));
                        }
                    }
                    _ => refused = true,
                });
                if refused {
                    return Err(TransformError::invalid_data(format!(
                        "cannot write headers under {path}: it is not an object"
                    )));
                }
                if seen == 0 {
                    for (key, header) in found {
                        target.insert(key.as_str(), Value::from(header));
                    }
                    if !target.is_empty() && !path.set(value, Value::Object(target)) {
                        return Err(TransformError::invalid_data(format!(
                            "cannot set {path}: it runs through a missing array element"
                        )));
                    }
                }
            }
        }
        out.push(record);
        Ok(())
    }
}

dataflow_transform_sdk::export_if_component!(HeadersToPayload);
