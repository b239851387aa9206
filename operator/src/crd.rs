//! The CustomResourceDefinition, generated from the `api` crate's types.

use dataflow_api::DataFlow;
use kube::CustomResourceExt;

/// The DataFlow CRD as a YAML document, ready for `kubectl apply -f -`.
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    serde_norway::to_string(&DataFlow::crd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

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

    /// `kubectl explain dataflow.spec.source.kafka` reads the descriptions from the
    /// schema, so the doc comments must make it there.
    #[test]
    fn schema_carries_field_descriptions() {
        let crd = DataFlow::crd();
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

    /// The API server only accepts structural schemas: every node has a `type`,
    /// except int-or-string and preserve-unknown-fields nodes.
    #[test]
    fn schema_is_structural() {
        fn walk(node: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
            let flag = |key: &str| node.get(key).and_then(serde_json::Value::as_bool) == Some(true);
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
            if let Some(props) = node
                .get("properties")
                .and_then(serde_json::Value::as_object)
            {
                for (name, child) in props {
                    walk(child, &format!("{path}.{name}"), bad);
                }
            }
            for key in ["items", "additionalProperties"] {
                if let Some(child) = node.get(key).filter(|c| c.is_object()) {
                    walk(child, &format!("{path}.{key}"), bad);
                }
            }
        }
        let crd = DataFlow::crd();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let mut bad = Vec::new();
        walk(&schema["openAPIV3Schema"], "", &mut bad);
        assert!(bad.is_empty(), "not structural: {bad:?}");
    }
}
