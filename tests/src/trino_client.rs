//! A minimal client of the real Trino `make services` starts: one statement,
//! its pages followed through `nextUri`, authenticated with a token from the
//! test Keycloak. The tests arrange and read back data with it, independently of
//! the connector.

use serde_json::Value;

use crate::keycloak::client_token;
use crate::services::service_env;

/// `https://localhost:<port>` of the test Trino.
pub fn trino_url() -> String {
    service_env("DATAFLOW_TEST_TRINO_URL")
}

/// The CA (PEM file) that signed the test Trino's certificate. The processor,
/// whose HTTP client trusts the system's store, is pointed at it with
/// `SSL_CERT_FILE`, as an image would have it in its CA bundle.
pub fn trino_ca() -> String {
    service_env("DATAFLOW_TEST_TRINO_CA")
}

/// Runs `sql` to its end; returns its rows, or Trino's error message.
pub async fn query(sql: &str) -> Result<Vec<Vec<Value>>, String> {
    let ca = std::fs::read(trino_ca()).map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).map_err(|e| e.to_string())?)
        .build()
        .map_err(|e| e.to_string())?;
    let token = client_token("dataflow", "s3cret").await;
    let mut page: Value = http
        .post(format!("{}/v1/statement", trino_url()))
        .bearer_auth(&token)
        .header("X-Trino-Source", "dataflow-tests")
        .body(sql.to_owned())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    loop {
        if let Some(error) = page.get("error") {
            return Err(error["message"].as_str().unwrap_or_default().to_owned());
        }
        if let Some(data) = page["data"].as_array() {
            rows.extend(data.iter().filter_map(|r| r.as_array().cloned()));
        }
        let Some(next) = page["nextUri"].as_str().map(str::to_owned) else {
            return Ok(rows);
        };
        page = http
            .get(&next)
            .bearer_auth(&token)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
    }
}

/// Runs `sql`, which must succeed.
pub async fn execute(sql: &str) -> Vec<Vec<Value>> {
    query(sql)
        .await
        .unwrap_or_else(|e| panic!("Trino refused {sql}: {e}"))
}
