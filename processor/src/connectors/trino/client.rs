//! Trino's statement protocol: `POST /v1/statement` with the SQL, then `GET` each
//! `nextUri` until there is none, collecting `columns` and `data` on the way. A 429,
//! 502, 503 or 504 on any of these calls is retried after a short pause (the
//! protocol says clients should), a 401 gets a new bearer token once.

use std::time::Duration;

use dataflow_api::SecretRef;
use dataflow_api::connectors::Keycloak;
use serde_json::Value;

use super::auth::{AuthError, TokenSource};
use crate::connectors::ConnectorError;
use crate::connectors::settings::required;

/// Pauses before a busy server is asked again, and how many times.
const BUSY_PAUSE: Duration = Duration::from_millis(100);
const BUSY_TRIES: u32 = 50;

/// A connection to one Trino server, catalog and schema.
pub(super) struct TrinoClient {
    http: reqwest::Client,
    statement_url: String,
    /// Catalog sent with every query.
    pub catalog: String,
    /// Schema sent with every query.
    pub schema: String,
    /// `X-Trino-User`, sent only without a token: an authenticated Trino takes
    /// the user from the token, and reads a different `X-Trino-User` as a request
    /// to impersonate it (refused unless allowed).
    user: String,
    tokens: Option<TokenSource>,
}

/// A column of a result.
#[derive(Debug, Clone, serde::Deserialize)]
pub(super) struct Column {
    /// Column name.
    pub name: String,
    /// Trino type (`bigint`, `varchar(20)`, `timestamp(3)`, ...).
    pub r#type: String,
}

/// A finished query's result.
#[derive(Debug, Default)]
pub(super) struct QueryResult {
    /// The columns (empty for statements without rows).
    pub columns: Vec<Column>,
    /// The rows, values in column order.
    pub rows: Vec<Vec<Value>>,
}

/// One response of the protocol.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    next_uri: Option<String>,
    #[serde(default)]
    columns: Option<Vec<Column>>,
    #[serde(default)]
    data: Option<Vec<Vec<Value>>>,
    #[serde(default)]
    error: Option<QueryError>,
}

/// The `error` object of a failed query, as Trino sends it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct QueryError {
    /// Readable message.
    pub message: String,
    /// `USER_ERROR`, `INTERNAL_ERROR`, `INSUFFICIENT_RESOURCES` or `EXTERNAL`.
    #[serde(default)]
    pub error_type: String,
    /// `TABLE_NOT_FOUND`, `SERVER_STARTING_UP`, ...
    #[serde(default)]
    pub error_name: String,
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub(super) enum TrinoError {
    /// The server could not be reached, or stayed busy.
    #[error("trino unreachable: {0}")]
    Unreachable(String),
    /// The server ran the query and reports why it failed.
    #[error("{} ({}, {})", .0.message, .0.error_name, .0.error_type)]
    Query(QueryError),
    /// Authentication failed (Keycloak or Trino refused).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Keycloak could not be reached.
    #[error("{0}")]
    TokenEndpoint(String),
    /// The server answered something that is not the protocol.
    #[error("unexpected answer from trino: {0}")]
    Protocol(String),
}

impl From<AuthError> for TrinoError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unreachable(reason) => TrinoError::TokenEndpoint(reason),
            AuthError::Refused(reason) => TrinoError::Auth(reason),
        }
    }
}

/// The settings a Trino source and sink share, as the spec holds them.
pub(super) struct Settings<'a> {
    /// `serverURL` and its SecretRef.
    pub server_url: (Option<&'a str>, Option<&'a SecretRef>),
    /// `catalog` and its SecretRef.
    pub catalog: (Option<&'a str>, Option<&'a SecretRef>),
    /// `schema` and its SecretRef.
    pub schema: (Option<&'a str>, Option<&'a SecretRef>),
    /// `keycloak`.
    pub keycloak: Option<&'a Keycloak>,
}

/// The [`Settings`] of a `TrinoSourceSpec` or `TrinoSinkSpec` (same field names).
macro_rules! settings_of {
    ($spec:expr) => {
        $crate::connectors::trino::client::Settings {
            server_url: (
                $spec.server_url.as_deref(),
                $spec.server_url_secret_ref.as_ref(),
            ),
            catalog: ($spec.catalog.as_deref(), $spec.catalog_secret_ref.as_ref()),
            schema: ($spec.schema.as_deref(), $spec.schema_secret_ref.as_ref()),
            keycloak: $spec.keycloak.as_ref(),
        }
    };
}
pub(super) use settings_of;

impl TrinoClient {
    /// The client `settings` describe (spec path `path`).
    pub(super) fn from_settings(
        path: &str,
        settings: Settings<'_>,
    ) -> Result<Self, ConnectorError> {
        let server = required(
            settings.server_url.0,
            settings.server_url.1,
            path,
            "serverURL",
        )?;
        let catalog = required(settings.catalog.0, settings.catalog.1, path, "catalog")?;
        let schema = required(settings.schema.0, settings.schema.1, path, "schema")?;
        let http = reqwest::Client::new();
        let tokens = settings
            .keycloak
            .map(|k| TokenSource::from_spec(&format!("{path}.keycloak"), k, http.clone()))
            .transpose()?;
        Ok(Self::new(http, server, catalog, schema, tokens))
    }

    /// A client for `server` (`http://trino:8080`).
    pub(super) fn new(
        http: reqwest::Client,
        server: &str,
        catalog: &str,
        schema: &str,
        tokens: Option<TokenSource>,
    ) -> Self {
        Self {
            http,
            statement_url: format!("{}/v1/statement", server.trim_end_matches('/')),
            catalog: catalog.to_owned(),
            schema: schema.to_owned(),
            user: "dataflow".to_owned(),
            tokens,
        }
    }

    /// Runs `sql` to the end and returns every row.
    pub(super) async fn execute(&self, sql: &str) -> Result<QueryResult, TrinoError> {
        let mut result = QueryResult::default();
        let mut page = self.call(Some(sql), &self.statement_url).await?;
        loop {
            if let Some(error) = page.error {
                return Err(TrinoError::Query(error));
            }
            if let Some(columns) = page.columns
                && result.columns.is_empty()
            {
                result.columns = columns;
            }
            if let Some(data) = page.data {
                result.rows.extend(data);
            }
            match page.next_uri {
                Some(next) => page = self.call(None, &next).await?,
                None => return Ok(result),
            }
        }
    }

    /// One protocol call: POST the statement, or GET a `nextUri`.
    async fn call(&self, sql: Option<&str>, url: &str) -> Result<Page, TrinoError> {
        let mut stale_token = false;
        let mut busy = 0;
        loop {
            let mut request = match sql {
                Some(sql) => self
                    .http
                    .post(url)
                    .header("X-Trino-Source", "dataflow")
                    .header("X-Trino-Catalog", &self.catalog)
                    .header("X-Trino-Schema", &self.schema)
                    .body(sql.to_owned()),
                None => self.http.get(url),
            };
            match &self.tokens {
                Some(tokens) => request = request.bearer_auth(tokens.token(stale_token).await?),
                None if sql.is_some() => request = request.header("X-Trino-User", &self.user),
                None => {}
            }
            let response = request
                .send()
                .await
                .map_err(|e| TrinoError::Unreachable(format!("{url}: {e}")))?;
            let status = response.status().as_u16();
            match status {
                200 => {
                    let body = response
                        .bytes()
                        .await
                        .map_err(|e| TrinoError::Unreachable(format!("{url}: {e}")))?;
                    return serde_json::from_slice(&body)
                        .map_err(|e| TrinoError::Protocol(format!("{url}: {e}")));
                }
                401 if !stale_token
                    && self.tokens.as_ref().is_some_and(TokenSource::refreshable) =>
                {
                    tracing::info!("trino refused the bearer token; getting a new one");
                    stale_token = true;
                }
                401 | 403 => {
                    let body = response.text().await.unwrap_or_default();
                    return Err(TrinoError::Auth(format!("HTTP {status}: {}", body.trim())));
                }
                429 | 502 | 503 | 504 if busy < BUSY_TRIES => {
                    busy += 1;
                    tokio::time::sleep(BUSY_PAUSE).await;
                }
                _ => {
                    let body = response.text().await.unwrap_or_default();
                    let reason = format!("{url}: HTTP {status}: {}", body.trim());
                    return Err(if status >= 500 || status == 429 {
                        TrinoError::Unreachable(reason)
                    } else {
                        TrinoError::Protocol(reason)
                    });
                }
            }
        }
    }
}

/// `text` as a Trino string literal.
pub(super) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `name` as a quoted Trino identifier.
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
