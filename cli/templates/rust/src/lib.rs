//! A dataflow transform: built once from the step's JSON `config`, then called
//! for every message. Compiled to a WebAssembly component, it runs with no file
//! system and no network; a panic fails only the messages of that call.

use dataflow_transform_sdk::json::Value;
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};
use serde::Deserialize;

/// The step's `config:` (see dataflow-transform.yaml).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Config {
    currency: Option<String>,
    large_amount: Option<f64>,
}

/// The transform.
pub struct {{type}} {
    currency: Value,
    large_amount: f64,
}

impl Transform for {{type}} {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: Config = parse_config(config)?;
        Ok(Self {
            currency: Value::from(config.currency.unwrap_or_else(|| "EUR".to_owned())),
            large_amount: config.large_amount.unwrap_or(1000.0),
        })
    }

    /// Push the outputs onto `out` (none drops the message); an error sends
    /// only this message to the error sink.
    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let Some(doc) = record.value.as_object_mut() else {
            return Err(TransformError::invalid_data("the message is not a JSON object"));
        };
        if matches!(doc.get("test"), Some(Value::Bool(true))) {
            return Ok(());
        }
        let amount = match doc.get("amount") {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            other => {
                let shown = other.map_or("nothing".to_owned(), Value::to_string);
                return Err(TransformError::invalid_data(format!(
                    "amount must be a number, got {shown}"
                )));
            }
        };
        if let Some(Value::String(email)) = doc.get_mut("email") {
            *email = email.trim().to_lowercase().into();
        }
        doc.insert("currency", self.currency.clone());
        doc.insert("large", Value::Bool(amount >= self.large_amount));
        out.push(record);
        Ok(())
    }
}

dataflow_transform_sdk::export!({{type}});

#[cfg(test)]
mod tests {
    use super::*;
    use dataflow_transform_sdk::{Message, Outcome, process_batch};

    #[test]
    fn adds_currency_and_drops_test_orders() {
        let mut t = {{type}}::from_config(r#"{"currency": "USD"}"#).unwrap();
        let batch = vec![
            Message { payload: br#"{"amount": 5}"#.to_vec(), metadata: Vec::new() },
            Message { payload: br#"{"amount": 5, "test": true}"#.to_vec(), metadata: Vec::new() },
        ];
        let outcomes = process_batch(&mut t, batch);
        let Outcome::Emitted(first) = &outcomes[0] else { panic!("{:?}", outcomes[0]) };
        assert_eq!(first[0].payload, br#"{"amount":5,"currency":"USD","large":false}"#);
        assert!(matches!(&outcomes[1], Outcome::Emitted(none) if none.is_empty()));
    }
}
