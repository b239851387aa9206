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
}
