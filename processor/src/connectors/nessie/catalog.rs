//! Connecting to the catalog: the REST address of the branch, the warehouse and the
//! credentials, from either the source or the sink settings.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use dataflow_api::connectors::{NessieBasicAuth, NessieS3, NessieSinkSpec, NessieSourceSpec};
use iceberg::{CatalogBuilder, NamespaceIdent, TableIdent};
use iceberg_catalog_rest::{RestCatalog, RestCatalogBuilder};
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;

use crate::connectors::ConnectorError;
use crate::connectors::settings::{optional, required};

/// The branch used when the spec names none.
const DEFAULT_BRANCH: &str = "main";

/// Settings shared by the source and the sink.
pub(super) struct Settings<'a> {
    base_url: Option<&'a str>,
    base_url_ref: Option<&'a dataflow_api::SecretRef>,
    branch: Option<&'a str>,
    warehouse: Option<&'a str>,
    namespace: Option<&'a str>,
    namespace_ref: Option<&'a dataflow_api::SecretRef>,
    table: Option<&'a str>,
    table_ref: Option<&'a dataflow_api::SecretRef>,
    bearer_token: Option<&'a str>,
    token_ref: Option<&'a dataflow_api::SecretRef>,
    basic_auth: Option<&'a NessieBasicAuth>,
    s3: Option<&'a NessieS3>,
}

/// The shared settings of a source or sink spec (both have the same fields).
macro_rules! settings_of {
    ($spec:expr) => {{
        let s = $spec;
        Settings {
            base_url: s.base_url.as_deref(),
            base_url_ref: s.base_url_secret_ref.as_ref(),
            branch: s.branch.as_deref(),
            warehouse: s.warehouse.as_deref(),
            namespace: s.namespace.as_deref(),
            namespace_ref: s.namespace_secret_ref.as_ref(),
            table: s.table.as_deref(),
            table_ref: s.table_secret_ref.as_ref(),
            bearer_token: s.bearer_token.as_deref(),
            token_ref: s.token_secret_ref.as_ref(),
            basic_auth: s.basic_auth.as_ref(),
            s3: s.s3.as_ref(),
        }
    }};
}

impl<'a> From<&'a NessieSourceSpec> for Settings<'a> {
    fn from(spec: &'a NessieSourceSpec) -> Self {
        settings_of!(spec)
    }
}

impl<'a> From<&'a NessieSinkSpec> for Settings<'a> {
    fn from(spec: &'a NessieSinkSpec) -> Self {
        settings_of!(spec)
    }
}

/// A catalog client bound to one table on one branch.
pub(super) struct Connection {
    /// The REST catalog client.
    pub catalog: RestCatalog,
    /// The table.
    pub ident: TableIdent,
    /// `namespace.table@branch`, for logs and errors.
    pub label: String,
}

/// Builds the catalog client for the settings at spec path `path`. Nothing is sent
/// yet: the first catalog call fetches the server's configuration.
pub(super) async fn connect(path: &str, s: Settings<'_>) -> Result<Connection, ConnectorError> {
    let base_url = required(s.base_url, s.base_url_ref, path, "baseURL")?;
    let namespace = required(s.namespace, s.namespace_ref, path, "namespace")?;
    let table = required(s.table, s.table_ref, path, "table")?;
    let token = optional(s.bearer_token, s.token_ref, path, "bearerToken")?;
    let branch = s
        .branch
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or(DEFAULT_BRANCH);
    let config = |field: &str, reason: String| ConnectorError::Config {
        path: format!("{path}.{field}"),
        reason,
    };
    let url =
        reqwest::Url::parse(base_url).map_err(|e| config("baseURL", format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(config(
            "baseURL",
            "must be an http:// or https:// URL".into(),
        ));
    }
    let mut props = HashMap::from([("uri".to_owned(), rest_uri(base_url, branch))]);
    if let Some(warehouse) = s.warehouse.filter(|w| !w.trim().is_empty()) {
        props.insert("warehouse".to_owned(), warehouse.to_owned());
    }
    match (token, s.basic_auth) {
        (Some(_), Some(_)) => {
            return Err(config(
                "basicAuth",
                "set either bearerToken or basicAuth, not both".into(),
            ));
        }
        (Some(token), None) => {
            props.insert("token".to_owned(), token.to_owned());
        }
        (None, Some(basic)) => {
            props.insert(
                "header.Authorization".to_owned(),
                basic_header(basic).map_err(|reason| config("basicAuth", reason))?,
            );
        }
        (None, None) => {}
    }
    if let Some(s3) = s.s3 {
        props.extend(s3_properties(s3));
    }
    let catalog = RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(OpenDalResolvingStorageFactory::new()))
        .load("nessie", props)
        .await
        .map_err(|e| config("baseURL", e.to_string()))?;
    let namespace_ident = NamespaceIdent::from_strs(namespace.split('.'))
        .map_err(|e| config("namespace", e.to_string()))?;
    Ok(Connection {
        catalog,
        ident: TableIdent::new(namespace_ident, table.to_owned()),
        label: format!("{namespace}.{table}@{branch}"),
    })
}

/// Nessie serves each branch's Iceberg REST catalog under `/iceberg/<branch>`.
fn rest_uri(base_url: &str, branch: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let base = base.strip_suffix("/iceberg").unwrap_or(base);
    let branch: String =
        percent_encoding::utf8_percent_encode(branch, percent_encoding::NON_ALPHANUMERIC).collect();
    format!("{base}/iceberg/{branch}")
}

/// The Iceberg FileIO properties for the spec's `s3` block (its SecretRefs are
/// already resolved into the plain fields).
fn s3_properties(s3: &NessieS3) -> Vec<(String, String)> {
    let text = |key: &str, value: Option<&String>| {
        value
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(|v| (key.to_owned(), v.to_owned()))
    };
    [
        text("s3.access-key-id", s3.access_key_id.as_ref()),
        text("s3.secret-access-key", s3.secret_access_key.as_ref()),
        text("s3.endpoint", s3.endpoint.as_ref()),
        text("s3.region", s3.region.as_ref()),
        s3.path_style_access
            .map(|on| ("s3.path-style-access".to_owned(), on.to_string())),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn basic_header(basic: &NessieBasicAuth) -> Result<String, String> {
    let user = basic.username.as_deref().unwrap_or_default();
    if user.is_empty() {
        return Err("username is required".into());
    }
    let password = basic.password.as_deref().unwrap_or_default();
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Ok(format!("Basic {encoded}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_settings_become_file_io_properties() {
        let s3 = NessieS3 {
            access_key_id: Some("AKIA".into()),
            secret_access_key: Some("secret".into()),
            endpoint: Some(" http://minio:9000 ".into()),
            region: Some(String::new()),
            path_style_access: Some(true),
            ..NessieS3::default()
        };
        assert_eq!(
            s3_properties(&s3),
            [
                ("s3.access-key-id".to_owned(), "AKIA".to_owned()),
                ("s3.secret-access-key".to_owned(), "secret".to_owned()),
                ("s3.endpoint".to_owned(), "http://minio:9000".to_owned()),
                ("s3.path-style-access".to_owned(), "true".to_owned()),
            ]
        );
    }

    #[test]
    fn branch_goes_into_the_rest_address() {
        assert_eq!(
            rest_uri("http://n:19120/", "main"),
            "http://n:19120/iceberg/main"
        );
        assert_eq!(
            rest_uri("http://n:19120/iceberg", "dev"),
            "http://n:19120/iceberg/dev"
        );
        assert_eq!(
            rest_uri("https://n/api", "feature/x"),
            "https://n/api/iceberg/feature%2Fx"
        );
    }

    #[test]
    fn basic_auth_header() {
        let auth = NessieBasicAuth {
            username: Some("u".into()),
            password: Some("p:w".into()),
        };
        assert_eq!(basic_header(&auth).unwrap(), "Basic dTpwOnc=");
        assert!(basic_header(&NessieBasicAuth::default()).is_err());
    }

    #[tokio::test]
    async fn settings_errors_name_the_field() {
        let spec = NessieSinkSpec {
            base_url: Some("nessie:19120".into()),
            namespace: Some("ns".into()),
            table: Some("t".into()),
            ..Default::default()
        };
        let err = connect("spec.sink.nessie", (&spec).into())
            .await
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "spec.sink.nessie.baseURL: must be an http:// or https:// URL"
        );
        let spec = NessieSinkSpec {
            base_url: Some("http://nessie:19120".into()),
            table: Some("t".into()),
            ..Default::default()
        };
        let err = connect("spec.sink.nessie", (&spec).into())
            .await
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "spec.sink.nessie.namespace: required");
    }
}
