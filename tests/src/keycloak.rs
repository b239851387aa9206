//! The real Keycloak `make services` starts (realm `lake`, see
//! `scripts/services/keycloak-realm.json`): its address, tokens for tests that
//! need one, the login events it recorded, and token introspection as a resource
//! server (the Trino stand-in) does it.

use serde_json::Value;

use crate::services::service_env;

/// The realm the tests use.
pub const REALM: &str = "lake";
/// The client a resource server introspects tokens with, and its secret.
const INTROSPECTION_CLIENT: (&str, &str) = ("trino", "trino-s3cret");

/// `http://127.0.0.1:<port>` of the test Keycloak.
pub fn keycloak_url() -> String {
    service_env("DATAFLOW_TEST_KEYCLOAK_URL")
}

fn endpoint(path: &str) -> String {
    format!(
        "{}/realms/{REALM}/protocol/openid-connect/{path}",
        keycloak_url()
    )
}

/// An access token for client `client` (client-credentials grant).
pub async fn client_token(client: &str, secret: &str) -> String {
    let answer: Value = reqwest::Client::new()
        .post(endpoint("token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", secret),
        ])
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("keycloak issues a client token")
        .json()
        .await
        .expect("keycloak's token answer is JSON");
    answer["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// Asks Keycloak whether `token` is active (RFC 7662); returns its expiry
/// (seconds since the epoch) when it is.
pub async fn introspect(http: &reqwest::Client, token: &str) -> Option<u64> {
    let answer: Value = http
        .post(endpoint("token/introspect"))
        .form(&[
            ("token", token),
            ("client_id", INTROSPECTION_CLIENT.0),
            ("client_secret", INTROSPECTION_CLIENT.1),
        ])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    if answer["active"] == true {
        answer["exp"].as_u64()
    } else {
        None
    }
}

/// The grant types (`password`, `client_credentials`, `refresh_token`) and
/// failures Keycloak recorded for `client` since `since_ms` (milliseconds since
/// the epoch), oldest first, read through the admin API.
pub async fn grants_since(client: &str, since_ms: u64) -> Vec<String> {
    let http = reqwest::Client::new();
    let admin: Value = http
        .post(format!(
            "{}/realms/master/protocol/openid-connect/token",
            keycloak_url()
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", "admin"),
            (
                "password",
                &service_env("DATAFLOW_TEST_KEYCLOAK_ADMIN_PASSWORD"),
            ),
        ])
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("an admin token")
        .json()
        .await
        .expect("JSON");
    let events: Vec<Value> = http
        .get(format!(
            "{}/admin/realms/{REALM}/events?client={client}&max=1000",
            keycloak_url()
        ))
        .bearer_auth(admin["access_token"].as_str().unwrap_or_default())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("the realm's events")
        .json()
        .await
        .expect("JSON");
    let mut grants: Vec<(u64, String)> = events
        .iter()
        .filter(|e| e["time"].as_u64().is_some_and(|t| t >= since_ms))
        .map(|e| {
            let grant = e["details"]["grant_type"].as_str().unwrap_or_default();
            let name = match e["type"].as_str().unwrap_or_default() {
                "REFRESH_TOKEN" => "refresh_token".to_owned(),
                kind if kind.ends_with("_ERROR") => format!("{grant} refused"),
                _ => grant.to_owned(),
            };
            (e["time"].as_u64().unwrap_or_default(), name)
        })
        .collect();
    grants.sort();
    grants.into_iter().map(|(_, g)| g).collect()
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}
