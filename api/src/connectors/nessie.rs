//! Nessie (Iceberg REST catalog) source and sink settings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SecretRef;

/// Basic authentication for Nessie.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NessieBasicAuth {
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// The object store holding a table's files, as the processor reaches it. Needed
/// when the catalog hands out neither credentials nor signed requests (Nessie's
/// default for S3 is to sign requests, which this client does not use); the
/// catalog's own `s3.endpoint` and `s3.path-style-access`, when it sends them,
/// take precedence over these.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NessieS3 {
    /// Access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Access key id from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_secret_ref: Option<SecretRef>,
    /// Secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Secret access key from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_secret_ref: Option<SecretRef>,
    /// Endpoint of an S3-compatible store (MinIO, s3proxy, Ceph), e.g.
    /// `http://minio:9000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region (e.g. `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Address buckets by path (`endpoint/bucket/key`), as most S3-compatible
    /// stores need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style_access: Option<bool>,
}

/// Nessie (Iceberg REST catalog) source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NessieSourceSpec {
    /// Nessie base URL, e.g. `http://nessie:19120`.
    #[serde(default, rename = "baseURL", skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Base URL from a Secret.
    #[serde(
        default,
        rename = "baseURLSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub base_url_secret_ref: Option<SecretRef>,
    /// Branch (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Warehouse name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
    /// Iceberg namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Namespace from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_secret_ref: Option<SecretRef>,
    /// Table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Table from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_secret_ref: Option<SecretRef>,
    /// Poll interval in seconds (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<u64>,
    /// Wrap each row as `{value, _metadata: {namespace, table}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_mode: Option<bool>,
    /// Bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// Bearer token from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretRef>,
    /// Basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<NessieBasicAuth>,
    /// The object store's credentials and address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<NessieS3>,
}

/// Nessie (Iceberg REST catalog) sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NessieSinkSpec {
    /// Nessie base URL, e.g. `http://nessie:19120`.
    #[serde(default, rename = "baseURL", skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Base URL from a Secret.
    #[serde(
        default,
        rename = "baseURLSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub base_url_secret_ref: Option<SecretRef>,
    /// Branch (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Warehouse name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
    /// Iceberg namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Namespace from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_secret_ref: Option<SecretRef>,
    /// Table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Table from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_secret_ref: Option<SecretRef>,
    /// Rows per append commit (default 100); 0 flushes on the timer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Flush interval in seconds (default 10); 0 flushes by size only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_flush_interval_seconds: Option<u64>,
    /// Create the table (one `data` string column) when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_create_table: Option<bool>,
    /// Bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// Bearer token from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretRef>,
    /// Basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<NessieBasicAuth>,
    /// The object store's credentials and address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<NessieS3>,
}
