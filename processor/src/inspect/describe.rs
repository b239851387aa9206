//! The flow's graph as `GET /api/v1/flow` answers it: the source, each step
//! (with the call it runs in: a fused run of built-ins is one call), the
//! router's routes and their sinks, the main and the error sink, and the
//! transformations themselves for the playground (credentials left out).

use dataflow_api::DataFlowSpec;
use dataflow_api::redact::is_credential_field;
use serde_json::{Value, json};

/// The graph of `spec`, whose chain makes the calls `groups` (first step,
/// steps, user step).
pub fn describe(
    spec: &DataFlowSpec,
    name: &str,
    namespace: &str,
    groups: &[(usize, usize, bool)],
) -> Value {
    let mut steps = Vec::new();
    for (call, &(first, count, custom)) in groups.iter().enumerate() {
        for index in first..first + count {
            let Some(transformation) = spec.transformations.get(index) else {
                continue;
            };
            steps.push(json!({
                "index": index,
                "type": transformation.spec.kind().as_str(),
                "call": call,
                "fused": count > 1,
                "custom": custom,
                "when": transformation.when,
            }));
        }
    }
    let routes: Vec<Value> = spec
        .transformations
        .iter()
        .enumerate()
        .filter_map(|(index, t)| t.spec.router().map(|r| (index, r)))
        .flat_map(|(step, router)| {
            router.routes.iter().map(move |route| {
                json!({"step": step, "condition": route.condition, "sink": route.sink.kind().as_str()})
            })
        })
        .collect();
    let mut transformations = serde_json::to_value(&spec.transformations).unwrap_or(Value::Null);
    without_credentials(&mut transformations);
    json!({
        "name": name,
        "namespace": namespace,
        "source": {"type": spec.source.kind().as_str()},
        "steps": steps,
        "routes": routes,
        "sink": {"type": spec.sink.kind().as_str()},
        "errors": spec.errors.as_ref().map(|e| json!({"type": e.kind().as_str()})),
        "transformations": transformations,
    })
}

/// Removes every credential field (a pulled image's `dockerConfig`, ...).
fn without_credentials(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, _| !is_credential_field(key));
            map.values_mut().for_each(without_credentials);
        }
        Value::Array(items) => items.iter_mut().for_each(without_credentials),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_names_every_step_its_call_and_the_routes() {
        let spec: DataFlowSpec = serde_norway::from_str(
            r#"
source: {type: generator, generator: {count: 1}}
transformations:
  - type: timestamp
  - type: mask
    mask: {fields: [card]}
  - type: router
    router:
      routes:
        - condition: "$.level == 'error'"
          sink: {type: stdout}
sink: {type: file, file: {path: out.jsonl}}
errors: {type: stdout}
"#,
        )
        .unwrap();
        let graph = describe(&spec, "demo", "default", &[(0, 3, false)]);
        assert_eq!(graph["steps"][1]["type"], "mask");
        assert_eq!(graph["steps"][1]["fused"], true);
        assert_eq!(graph["steps"][2]["call"], 0);
        assert_eq!(graph["routes"][0]["step"], 2);
        assert_eq!(graph["routes"][0]["sink"], "stdout");
        assert_eq!(graph["errors"]["type"], "stdout");
        assert_eq!(graph["transformations"][1]["mask"]["fields"][0], "card");
    }

    #[test]
    fn credentials_are_left_out() {
        let mut value =
            json!([{"wasm": {"image": {"reference": "r", "dockerConfig": "{\"auths\":{}}"}}}]);
        without_credentials(&mut value);
        assert!(value[0]["wasm"]["image"].get("dockerConfig").is_none());
        assert_eq!(value[0]["wasm"]["image"]["reference"], "r");
    }
}
