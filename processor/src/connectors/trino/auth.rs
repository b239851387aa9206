//! Bearer tokens for Trino from Keycloak.
//!
//! A direct `token` is sent as it is and never refreshed. Otherwise the token comes
//! from the realm's OpenID Connect token endpoint
//! (`<serverURL>/realms/<realm>/protocol/openid-connect/token`): the password grant
//! when `username` is set, else client credentials. It is refreshed before it
//! expires (with the refresh token when Keycloak gave one, else by asking again),
//! and at once when Trino answers 401.

use std::time::{Duration, Instant};

use dataflow_api::connectors::Keycloak;
use tokio::sync::Mutex;

use crate::connectors::ConnectorError;
use crate::connectors::settings::{optional, required};

/// Refresh this long before the token expires.
const EARLY: Duration = Duration::from_secs(30);

/// Where bearer tokens come from.
pub(super) enum TokenSource {
    /// A token used as it is.
    Fixed(String),
    /// Tokens from a Keycloak realm, cached until shortly before they expire.
    Keycloak(KeycloakTokens),
}

/// A Keycloak client and its current token.
pub(super) struct KeycloakTokens {
    http: reqwest::Client,
    endpoint: String,
    grant: Vec<(&'static str, String)>,
    client_id: String,
    client_secret: Option<String>,
    current: Mutex<Option<Issued>>,
}

struct Issued {
    access_token: String,
    refresh_after: Instant,
    refresh_token: Option<(String, Instant)>,
}

/// What the token endpoint answers.
#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    refresh_expires_in: Option<u64>,
}

/// What the token endpoint answers on failure.
#[derive(serde::Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// A failed token request.
#[derive(Debug, thiserror::Error)]
pub(super) enum AuthError {
    /// Keycloak could not be reached or answered 5xx: worth retrying.
    #[error("keycloak unreachable: {0}")]
    Unreachable(String),
    /// Keycloak refused the credentials.
    #[error("keycloak refused the credentials: {0}")]
    Refused(String),
}

impl TokenSource {
    /// The token source `spec` describes (spec path `path`, the `keycloak` block).
    pub(super) fn from_spec(
        path: &str,
        spec: &Keycloak,
        http: reqwest::Client,
    ) -> Result<Self, ConnectorError> {
        if let Some(token) = optional(
            spec.token.as_deref(),
            spec.token_secret_ref.as_ref(),
            path,
            "token",
        )? {
            return Ok(TokenSource::Fixed(token.to_owned()));
        }
        let server = required(
            spec.server_url.as_deref(),
            spec.server_url_secret_ref.as_ref(),
            path,
            "serverURL",
        )?;
        let realm = required(
            spec.realm.as_deref(),
            spec.realm_secret_ref.as_ref(),
            path,
            "realm",
        )?;
        let client_id = required(
            spec.client_id.as_deref(),
            spec.client_id_secret_ref.as_ref(),
            path,
            "clientID",
        )?;
        let client_secret = optional(
            spec.client_secret.as_deref(),
            spec.client_secret_secret_ref.as_ref(),
            path,
            "clientSecret",
        )?;
        let username = optional(
            spec.username.as_deref(),
            spec.username_secret_ref.as_ref(),
            path,
            "username",
        )?;
        let grant = match username {
            Some(username) => {
                let password = required(
                    spec.password.as_deref(),
                    spec.password_secret_ref.as_ref(),
                    path,
                    "password",
                )?;
                vec![
                    ("grant_type", "password".to_owned()),
                    ("username", username.to_owned()),
                    ("password", password.to_owned()),
                ]
            }
            None if client_secret.is_some() => {
                vec![("grant_type", "client_credentials".to_owned())]
            }
            None => {
                return Err(ConnectorError::Config {
                    path: path.to_owned(),
                    reason:
                        "set token, or username and password, or clientSecret (client credentials)"
                            .into(),
                });
            }
        };
        Ok(TokenSource::Keycloak(KeycloakTokens {
            http,
            endpoint: format!(
                "{}/realms/{realm}/protocol/openid-connect/token",
                server.trim_end_matches('/')
            ),
            grant,
            client_id: client_id.to_owned(),
            client_secret: client_secret.map(str::to_owned),
            current: Mutex::new(None),
        }))
    }

    /// A token to send; `stale` asks for a new one (Trino refused the last).
    pub(super) async fn token(&self, stale: bool) -> Result<String, AuthError> {
        match self {
            TokenSource::Fixed(token) => Ok(token.clone()),
            TokenSource::Keycloak(keycloak) => keycloak.token(stale).await,
        }
    }

    /// Whether a refused token can be replaced.
    pub(super) fn refreshable(&self) -> bool {
        matches!(self, TokenSource::Keycloak(_))
    }
}

impl KeycloakTokens {
    async fn token(&self, stale: bool) -> Result<String, AuthError> {
        let mut current = self.current.lock().await;
        let now = Instant::now();
        if let Some(issued) = current.as_ref()
            && !stale
            && now < issued.refresh_after
        {
            return Ok(issued.access_token.clone());
        }
        let refresh = current
            .as_ref()
            .and_then(|i| i.refresh_token.as_ref())
            .filter(|(_, until)| now < *until)
            .map(|(token, _)| token.clone());
        let issued = match refresh {
            Some(refresh_token) => {
                let form = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", refresh_token),
                ];
                match self.request(form).await {
                    Ok(issued) => issued,
                    // An expired or revoked refresh token: start over with the grant.
                    Err(AuthError::Refused(reason)) => {
                        tracing::info!(%reason, "keycloak refused the refresh token; asking for a new token");
                        self.request(self.grant.clone()).await?
                    }
                    Err(e) => return Err(e),
                }
            }
            None => self.request(self.grant.clone()).await?,
        };
        let token = issued.access_token.clone();
        *current = Some(issued);
        Ok(token)
    }

    async fn request(&self, mut form: Vec<(&'static str, String)>) -> Result<Issued, AuthError> {
        form.push(("client_id", self.client_id.clone()));
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.clone()));
        }
        let asked = Instant::now();
        let response = self
            .http
            .post(&self.endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|e| AuthError::Unreachable(format!("{}: {e}", self.endpoint)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| AuthError::Unreachable(format!("{}: {e}", self.endpoint)))?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(AuthError::Unreachable(format!(
                "{}: HTTP {status}",
                self.endpoint
            )));
        }
        if !status.is_success() {
            let reason = match serde_json::from_slice::<TokenError>(&body) {
                Ok(e) => match e.error_description {
                    Some(d) => format!("{}: {d}", e.error),
                    None => e.error,
                },
                Err(_) => format!("HTTP {status}"),
            };
            return Err(AuthError::Refused(reason));
        }
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| AuthError::Refused(format!("unexpected token response: {e}")))?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(60));
        // Refresh 30 s early, or at half the lifetime for short-lived tokens.
        let refresh_after = asked + lifetime.saturating_sub(EARLY.min(lifetime / 2));
        let refresh_token = token.refresh_token.map(|t| {
            let valid = Duration::from_secs(token.refresh_expires_in.unwrap_or(0));
            (t, asked + valid.saturating_sub(Duration::from_secs(1)))
        });
        Ok(Issued {
            access_token: token.access_token,
            refresh_after,
            refresh_token,
        })
    }
}
