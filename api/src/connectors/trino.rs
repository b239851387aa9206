//! Trino source and sink settings, with Keycloak authentication.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SecretRef;

/// Keycloak (OAuth2) authentication for Trino: a direct `token`, the password
/// grant (`username` + `password`) or client credentials (`clientID` + `clientSecret`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Keycloak {
    /// Keycloak base URL.
    #[serde(default, rename = "serverURL", skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    /// Keycloak base URL from a Secret.
    #[serde(
        default,
        rename = "serverURLSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_url_secret_ref: Option<SecretRef>,
    /// Realm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// Realm from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm_secret_ref: Option<SecretRef>,
    /// OAuth2 client id.
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Client id from a Secret.
    #[serde(
        default,
        rename = "clientIDSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_id_secret_ref: Option<SecretRef>,
    /// OAuth2 client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Client secret from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_secret_ref: Option<SecretRef>,
    /// User for the password grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// User from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretRef>,
    /// Password for the password grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Password from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretRef>,
    /// A long-lived access token used as is (never refreshed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Token from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretRef>,
}

/// Trino source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrinoSourceSpec {
    /// Trino URL, e.g. `http://trino:8080`.
    #[serde(default, rename = "serverURL", skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    /// Server URL from a Secret.
    #[serde(
        default,
        rename = "serverURLSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_url_secret_ref: Option<SecretRef>,
    /// Catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// Catalog from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_secret_ref: Option<SecretRef>,
    /// Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Schema from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_secret_ref: Option<SecretRef>,
    /// Table to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Table from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_secret_ref: Option<SecretRef>,
    /// Custom query used instead of reading the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Poll interval in seconds (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<u64>,
    /// Wrap each row as `{value, _metadata: {catalog, schema, table, id}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_mode: Option<bool>,
    /// Keycloak authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keycloak: Option<Keycloak>,
}

/// Trino sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrinoSinkSpec {
    /// Trino URL, e.g. `http://trino:8080`.
    #[serde(default, rename = "serverURL", skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    /// Server URL from a Secret.
    #[serde(
        default,
        rename = "serverURLSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_url_secret_ref: Option<SecretRef>,
    /// Catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// Catalog from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_secret_ref: Option<SecretRef>,
    /// Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Schema from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_secret_ref: Option<SecretRef>,
    /// Target table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Table from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_secret_ref: Option<SecretRef>,
    /// Rows per insert (default 1); 0 flushes on the timer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Flush interval in seconds (default 10); 0 flushes by size only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_flush_interval_seconds: Option<u64>,
    /// Create the table (one VARCHAR column for the JSON) when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_create_table: Option<bool>,
    /// Whole messages as JSON text in the `data` VARCHAR column: the only layout
    /// this sink writes, so `true` (the Go original's spelling of it) or unset;
    /// `false` (fields onto columns) is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_mode: Option<bool>,
    /// Keycloak authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keycloak: Option<Keycloak>,
}
