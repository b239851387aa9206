//! `kind: DataFlowCron`, the Go original's scheduled flow: a DataFlow's spec
//! with `schedule`, `concurrencyPolicy` and `triggers` beside `source` and
//! `sink`. It is read as the DataFlow it describes, those three moved under
//! `spec.execution`: locally the processor runs it once as a job; in a cluster
//! the operator keeps a DataFlow of the same name, owned by the DataFlowCron,
//! whose CronJob runs it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ConcurrencyPolicy, DataFlowSpec, Phase, TriggerSpec};

/// The Go original's scheduled flow. Applying one makes a DataFlow of the same
/// name with `spec.execution` holding the schedule; its status names that
/// DataFlow and repeats its phase.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "dataflow.dataflow.io",
    version = "v1",
    kind = "DataFlowCron",
    namespaced,
    shortname = "dfc",
    status = "DataFlowCronStatus",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DataFlowCronSpec {
    /// Cron schedule of the runs (five fields, or `@hourly`, `@daily`, ...).
    pub schedule: String,
    /// What a run due while the previous one still runs does (default `Forbid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,
    /// Containers run after each successful run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerSpec>,
    /// The flow: source, sink, transformations and the rest of a DataFlow's spec.
    #[serde(flatten)]
    pub flow: DataFlowSpec,
}

/// What the operator reports on a DataFlowCron.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataFlowCronStatus {
    /// The DataFlow made from this DataFlowCron.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_flow: Option<String>,
    /// That DataFlow's phase (`Error` when it could not be made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// That DataFlow's message, or why it could not be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The keys of a DataFlowCron's spec that go under `execution`.
const SCHEDULING_KEYS: [&str; 3] = ["schedule", "concurrencyPolicy", "triggers"];

/// The DataFlow spec (JSON) that a DataFlowCron's spec describes: its
/// scheduling keys moved under `execution`, the rest as written.
pub fn dataflow_spec_of_cron(spec: &Value) -> Result<Value, String> {
    let Value::Object(fields) = spec else {
        return Err("spec: must be a mapping".into());
    };
    if !fields.contains_key("schedule") {
        return Err("spec.schedule: required (a DataFlowCron runs on a schedule)".into());
    }
    let mut flow = fields.clone();
    let mut execution = match flow.remove("execution") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(execution)) => execution,
        Some(_) => return Err("spec.execution: must be a mapping".into()),
    };
    for key in SCHEDULING_KEYS {
        let Some(value) = flow.remove(key) else {
            continue;
        };
        if execution.contains_key(key) {
            return Err(format!(
                "spec.execution.{key}: set it once, as spec.{key} of the DataFlowCron"
            ));
        }
        execution.insert(key.to_owned(), value);
    }
    flow.insert("execution".to_owned(), Value::Object(execution));
    Ok(Value::Object(flow))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_scheduling_keys_move_under_execution() {
        let cron = json!({
            "schedule": "*/10 * * * *",
            "concurrencyPolicy": "Forbid",
            "triggers": [{"name": "spark", "image": "kubectl"}],
            "source": {"type": "stdin"},
            "sink": {"type": "stdout"},
            "execution": {"backoffLimit": 1},
        });
        assert_eq!(
            dataflow_spec_of_cron(&cron).unwrap(),
            json!({
                "source": {"type": "stdin"},
                "sink": {"type": "stdout"},
                "execution": {
                    "backoffLimit": 1,
                    "schedule": "*/10 * * * *",
                    "concurrencyPolicy": "Forbid",
                    "triggers": [{"name": "spark", "image": "kubectl"}],
                },
            })
        );
        let twice = json!({"schedule": "@daily", "execution": {"schedule": "@hourly"}});
        assert!(
            dataflow_spec_of_cron(&twice)
                .unwrap_err()
                .contains("spec.execution.schedule: set it once")
        );
        assert!(
            dataflow_spec_of_cron(&json!({"source": {}}))
                .unwrap_err()
                .contains("spec.schedule: required")
        );
    }
}
