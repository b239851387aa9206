//! The CustomResourceDefinition, generated from the `api` crate's types.

use dataflow_api::{DataFlow, DataFlowCron};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;

/// The integer formats the API server knows; schemars also writes `uint8` ...
/// `uint64` for unsigned fields, which the server warns about on every apply
/// (their `minimum: 0` stays).
const INTEGER_FORMATS: [&str; 2] = ["int32", "int64"];

/// The DataFlow CRD, its schema holding only formats the API server knows.
pub fn crd() -> CustomResourceDefinition {
    cleaned(DataFlow::crd())
}

/// The DataFlowCron CRD (the Go original's scheduled flow), cleaned the same way.
pub fn cron_crd() -> CustomResourceDefinition {
    cleaned(DataFlowCron::crd())
}

fn cleaned(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            drop_unknown_integer_formats(schema);
        }
    }
    crd
}

fn drop_unknown_integer_formats(node: &mut JSONSchemaProps) {
    if node.type_.as_deref() == Some("integer")
        && node
            .format
            .as_deref()
            .is_some_and(|f| !INTEGER_FORMATS.contains(&f))
    {
        node.format = None;
    }
    for child in node.properties.iter_mut().flat_map(|p| p.values_mut()) {
        drop_unknown_integer_formats(child);
    }
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    };
    match node.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => drop_unknown_integer_formats(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            items.iter_mut().for_each(drop_unknown_integer_formats);
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = node.additional_properties.as_mut() {
        drop_unknown_integer_formats(values);
    }
}

/// The DataFlow CRD as a YAML document, ready for `kubectl apply -f -`.
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    serde_norway::to_string(&crd())
}

/// The DataFlowCron CRD as a YAML document.
pub fn cron_crd_yaml() -> Result<String, serde_norway::Error> {
    serde_norway::to_string(&cron_crd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_has_the_contract_fields() {
        let yaml = crd_yaml().unwrap();
        let crd: CustomResourceDefinition = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("dataflows.dataflow.dataflow.io")
        );
        assert_eq!(crd.spec.group, "dataflow.dataflow.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, "DataFlow");
        assert_eq!(crd.spec.names.short_names, Some(vec!["df".to_owned()]));
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1");
        assert!(version.served && version.storage);
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<_> = version
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["Phase", "Processed", "Errors", "Age"]);
    }

    #[test]
    fn the_cron_crd_holds_a_dataflow_spec_beside_its_schedule() {
        let crd = cron_crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("dataflowcrons.dataflow.dataflow.io")
        );
        assert_eq!(crd.spec.names.short_names, Some(vec!["dfc".to_owned()]));
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        for field in [
            "schedule",
            "concurrencyPolicy",
            "triggers",
            "source",
            "sink",
        ] {
            assert!(spec["properties"][field].is_object(), "{field}: {spec:#}");
        }
        let required: Vec<&str> = spec["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for field in ["schedule", "source", "sink"] {
            assert!(required.contains(&field), "{required:?}");
        }
    }

    /// `kubectl explain dataflow.spec.source.kafka` reads the descriptions from the
    /// schema, so the doc comments must make it there.
    #[test]
    fn schema_carries_field_descriptions() {
        let crd = crd();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let kafka = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["source"]["properties"]
            ["kafka"];
        assert!(
            kafka["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{kafka:#}"
        );
        let brokers = &kafka["properties"]["brokers"]["description"];
        assert!(brokers.as_str().is_some_and(|d| !d.is_empty()), "{kafka:#}");
    }

    /// Calls `check` on every node of the CRD's schema with its path; returns what
    /// it reported.
    fn schema_findings(check: impl Fn(&serde_json::Value, &str) -> Vec<String>) -> Vec<String> {
        fn walk(
            node: &serde_json::Value,
            path: &str,
            check: &dyn Fn(&serde_json::Value, &str) -> Vec<String>,
            found: &mut Vec<String>,
        ) {
            found.extend(check(node, path));
            if let Some(props) = node
                .get("properties")
                .and_then(serde_json::Value::as_object)
            {
                for (name, child) in props {
                    walk(child, &format!("{path}.{name}"), check, found);
                }
            }
            for key in ["items", "additionalProperties"] {
                if let Some(child) = node.get(key).filter(|c| c.is_object()) {
                    walk(child, &format!("{path}.{key}"), check, found);
                }
            }
        }
        let mut found = Vec::new();
        for crd in [crd(), cron_crd()] {
            let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
            walk(
                &schema["openAPIV3Schema"],
                &crd.spec.names.kind,
                &check,
                &mut found,
            );
        }
        found
    }

    /// The API server only accepts structural schemas: every node has a `type`,
    /// except int-or-string and preserve-unknown-fields nodes.
    #[test]
    fn schema_is_structural() {
        let bad = schema_findings(|node, path| {
            let flag = |key: &str| node.get(key).and_then(serde_json::Value::as_bool) == Some(true);
            let mut bad = Vec::new();
            if node.get("type").is_none()
                && !flag("x-kubernetes-int-or-string")
                && !flag("x-kubernetes-preserve-unknown-fields")
            {
                bad.push(path.to_owned());
            }
            for key in ["anyOf", "oneOf", "allOf", "$ref"] {
                if node.get(key).is_some() {
                    bad.push(format!("{path} ({key})"));
                }
            }
            bad
        });
        assert!(bad.is_empty(), "not structural: {bad:?}");
    }

    /// The server warns on every apply about a format it does not know.
    #[test]
    fn schema_has_only_formats_the_server_knows() {
        let bad = schema_findings(|node, path| {
            match node.get("format").and_then(serde_json::Value::as_str) {
                Some(format)
                    if node.get("type").and_then(serde_json::Value::as_str) == Some("integer")
                        && !INTEGER_FORMATS.contains(&format) =>
                {
                    vec![format!("{path}: {format}")]
                }
                _ => Vec::new(),
            }
        });
        assert!(bad.is_empty(), "unknown formats: {bad:?}");
    }
}
