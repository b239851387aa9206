//! Trino as sink and source against the real Trino of `make services` (476,
//! catalog `lake` on its memory connector), over HTTPS, authenticated with
//! tokens from the real Keycloak that Trino checks against the realm's keys. The data is arranged
//! and read back with `dataflow_tests::trino_client`, not the connector. The
//! faults a real server cannot be made to produce on cue (a failing INSERT, busy
//! pages, a revoked token) stay in `trino.rs`, against the stand-in.

use std::time::Duration;

use dataflow_tests::keycloak::keycloak_url;
use dataflow_tests::services::{Running, eventually, unique};
use dataflow_tests::trino_client::{execute, query, trino_ca, trino_url};
use dataflow_tests::{file_json_lines, run_spec_to_end_with_env, write_file};
use serde_json::{Value, json};

/// Runs the flow in `spec` to its end, trusting the test Trino's CA.
async fn run_to_end(spec: &std::path::Path) -> (bool, String) {
    run_spec_to_end_with_env(spec, &[("SSL_CERT_FILE", &trino_ca())]).await
}

async fn schema() -> &'static str {
    execute("CREATE SCHEMA IF NOT EXISTS lake.raw").await;
    "raw"
}

/// File -> Trino with Keycloak's password grant: the table is created, and every
/// message is stored once, as written (quotes and all).
#[tokio::test(flavor = "multi_thread")]
async fn file_to_trino_with_a_keycloak_password_grant() {
    let schema = schema().await;
    let table = unique("orders").to_lowercase();
    let dir = tempfile::tempdir().unwrap();
    let documents: Vec<String> = (0..120)
        .map(|i| json!({"id": i, "note": format!("it's #{i}")}).to_string())
        .collect();
    let input = write_file(dir.path(), "in.jsonl", &(documents.join("\n") + "\n"));
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &format!(
            r#"
source: {{type: file, file: {{path: {input}}}}}
sink:
  type: trino
  trino:
    serverURL: "{trino}"
    catalog: lake
    schema: {schema}
    table: {table}
    autoCreateTable: true
    batchSize: 50
    batchFlushIntervalSeconds: 1
    keycloak: {{serverURL: "{keycloak}", realm: lake, clientID: dataflow, clientSecret: s3cret, username: alice, password: wonderland}}
"#,
            input = input.display(),
            trino = trino_url(),
            keycloak = keycloak_url(),
        ),
    );
    let (ok, log) = run_to_end(&spec).await;
    assert!(ok, "{log}");
    assert!(log.contains("written=120 "), "{log}");
    let rows = execute(&format!("SELECT data FROM lake.{schema}.{table}")).await;
    let mut stored: Vec<String> = rows
        .iter()
        .map(|r| r[0].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut expected = documents.clone();
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected, "every message once, as written");
}

/// Trino -> file with client credentials: the rows there are read, later polls
/// ask only for rows past the last id, and new rows arrive once.
#[tokio::test(flavor = "multi_thread")]
async fn trino_source_reads_existing_then_only_new_rows() {
    let schema = schema().await;
    let table = unique("events").to_lowercase();
    execute(&format!(
        "CREATE TABLE lake.{schema}.{table} (id BIGINT, name VARCHAR)"
    ))
    .await;
    let insert = |range: std::ops::RangeInclusive<i64>| {
        let values: Vec<String> = range.map(|i| format!("({i}, 'e{i}')")).collect();
        format!(
            "INSERT INTO lake.{schema}.{table} VALUES {}",
            values.join(", ")
        )
    };
    execute(&insert(1..=7)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &format!(
            r#"
source:
  type: trino
  trino:
    serverURL: "{trino}"
    catalog: lake
    schema: {schema}
    table: {table}
    pollInterval: 1
    keycloak: {{serverURL: "{keycloak}", realm: lake, clientID: dataflow, clientSecret: s3cret}}
sink: {{type: file, file: {{path: {out}}}}}
"#,
            trino = trino_url(),
            keycloak = keycloak_url(),
            out = out.display()
        ),
    );
    let ca = trino_ca();
    let running = Running::start_with_env(&spec, &[], &[("SSL_CERT_FILE", &ca)]);
    eventually("the first rows", Duration::from_secs(60), || async {
        (file_json_lines(&out).len() >= 7).then_some(())
    })
    .await;
    execute(&insert(8..=9)).await;
    eventually("the new rows", Duration::from_secs(60), || async {
        (file_json_lines(&out).len() >= 9).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = running.stop();
    let rows = file_json_lines(&out);
    let mut ids: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=9).collect::<Vec<_>>(), "{rows:?}\n{log}");
    assert_eq!(
        rows.iter()
            .find(|r| r["id"] == 8)
            .map(|r| r["name"].clone()),
        Some(Value::from("e8"))
    );

    // As a job: the rows there at start (Trino positions live in memory, so
    // from the first), then exit 0.
    let job_out = dir.path().join("job.jsonl");
    let job = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("source:", "execution: {mode: job}\nsource:")
        .replace(&out.display().to_string(), &job_out.display().to_string());
    let job = write_file(dir.path(), "job.yaml", &job);
    let (ok, log) = run_to_end(&job).await;
    assert!(ok, "the job exits 0: {log}");
    let ids: Vec<i64> = file_json_lines(&job_out)
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(ids, (1..=9).collect::<Vec<_>>(), "in id order, once each");
}

/// Without a valid token Trino answers 401 and the flow stops as an
/// authentication failure.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_trino_does_not_trust_stops_the_flow() {
    let schema = schema().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &format!(
            "source:\n  type: trino\n  trino: {{serverURL: \"{}\", catalog: lake, schema: {schema}, table: nothing, pollInterval: 1, keycloak: {{token: forged}}}}\nsink: {{type: file, file: {{path: {}}}}}\n",
            trino_url(),
            out.display()
        ),
    );
    let (ok, log) = run_to_end(&spec).await;
    assert!(!ok, "{log}");
    assert!(log.contains("auth_error") || log.contains("401"), "{log}");
    assert!(query("SELECT 1").await.is_ok(), "Trino itself is fine");
}
