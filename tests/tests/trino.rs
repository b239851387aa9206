//! Trino as sink and source with the processor binary, its tokens from the real
//! Keycloak of `make services` (password, client-credentials and refresh-token
//! grants, read back from Keycloak's login events). Trino itself is
//! `dataflow_tests::fake_trino`, an in-process server that speaks Trino's statement
//! protocol (paged results behind `nextUri`, Trino's error JSON, 401 and 503) and
//! checks each bearer token with Keycloak.

use std::path::Path;
use std::time::Duration;

use dataflow_tests::fake_trino::{FakeTrino, Script, Table};
use dataflow_tests::keycloak::{client_token, grants_since, keycloak_url, now_ms};
use dataflow_tests::services::{Running, eventually};
use dataflow_tests::{file_json_lines, run_spec_to_end, write_file};
use serde_json::json;

fn sink_spec(trino: &FakeTrino, input: &Path, keycloak: &str) -> String {
    format!(
        r#"
source: {{type: file, file: {{path: {input}}}}}
sink:
  type: trino
  trino:
    serverURL: "{url}"
    catalog: lake
    schema: raw
    table: orders
    autoCreateTable: true
    batchSize: 50
    batchFlushIntervalSeconds: 1
    keycloak: {keycloak}
"#,
        input = input.display(),
        url = trino.url(),
    )
}

/// file -> Trino with the password grant: the table is created, every message lands
/// in order (quotes and all) although Trino first reports a transient failure, is
/// busy for a while, and later refuses the token (the sink gets a new one).
#[tokio::test(flavor = "multi_thread")]
async fn file_to_trino_with_keycloak_survives_failures() {
    let trino = FakeTrino::start(true).await;
    trino.script(Script {
        failing_inserts: vec![(
            "INSUFFICIENT_RESOURCES".into(),
            "CLUSTER_OUT_OF_MEMORY".into(),
        )],
        busy_pages: 2,
        revoke_after_inserts: Some(3),
    });
    let dir = tempfile::tempdir().unwrap();
    let documents: Vec<String> = (0..500)
        .map(|i| json!({"id": i, "note": format!("it's #{i}")}).to_string())
        .collect();
    let input = write_file(dir.path(), "in.jsonl", &documents.join("\n"));
    let keycloak = format!(
        r#"{{serverURL: "{}", realm: lake, clientID: dataflow, clientSecret: s3cret, username: alice, password: wonderland}}"#,
        keycloak_url()
    );
    let started = now_ms();
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &sink_spec(&trino, &input, &keycloak),
    );
    let (ok, log) = run_spec_to_end(&spec).await;
    assert!(ok, "{log}");
    assert!(
        log.contains("processed=500 written=500 filtered=0 errors=0"),
        "{log}"
    );
    assert!(log.contains("insert failed; retrying"), "{log}");

    let table = trino.table("lake.raw.orders").expect("created");
    let stored: Vec<String> = table
        .rows
        .iter()
        .map(|r| r[0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        stored, documents,
        "every message once, in order, as written"
    );
    assert_eq!(
        grants_since("dataflow", started).await,
        ["password", "refresh_token"],
        "one grant, one refresh"
    );
    assert_eq!(trino.unauthorized(), 1, "the revoked token, once");
    let tokens: std::collections::BTreeSet<_> = trino.authorizations().into_iter().collect();
    assert_eq!(tokens.len(), 2, "the first token, then the refreshed one");
    assert!(
        trino.statements()[0].starts_with(r#"CREATE TABLE IF NOT EXISTS "lake"."raw"."orders""#)
    );
}

/// Wrong credentials stop the flow with Keycloak's reason, naming nothing secret.
#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_stop_the_flow() {
    let trino = FakeTrino::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(dir.path(), "in.jsonl", "{\"a\":1}\n");
    let keycloak = format!(
        r#"{{serverURL: "{}", realm: lake, clientID: dataflow-refused, clientSecret: s3cret, username: alice, password: wrong}}"#,
        keycloak_url()
    );
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &sink_spec(&trino, &input, &keycloak),
    );
    let (ok, log) = run_spec_to_end(&spec).await;
    assert!(!ok, "{log}");
    assert!(
        log.contains("invalid_grant: Invalid user credentials"),
        "{log}"
    );
    assert!(
        !log.contains("wrong"),
        "the password stays out of the log: {log}"
    );
}

/// Trino -> file with a direct token and rawMode: pages behind `nextUri` are all
/// read, later polls ask only for rows past the last id, and new rows arrive.
#[tokio::test(flavor = "multi_thread")]
async fn trino_source_reads_pages_and_then_only_new_rows() {
    let trino = FakeTrino::start(true).await;
    let row = |i: i64| vec![json!(i), json!(format!("e{i}"))];
    trino.put_table(
        "lake.raw.events",
        Table {
            columns: vec![
                ("id".into(), "bigint".into()),
                ("name".into(), "varchar".into()),
            ],
            rows: (1..=7).map(row).collect(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let token = client_token("dataflow", "s3cret").await;
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &format!(
            r#"
source:
  type: trino
  trino: {{serverURL: "{url}", catalog: lake, schema: raw, table: events, pollInterval: 1, rawMode: true, keycloak: {{token: "{token}"}}}}
sink: {{type: file, file: {{path: {out}}}}}
"#,
            url = trino.url(),
            out = out.display()
        ),
    );
    let running = Running::start(&spec);
    eventually("the first rows", Duration::from_secs(30), || async {
        (file_json_lines(&out).len() >= 7).then_some(())
    })
    .await;
    trino.add_rows("lake.raw.events", (8..=10).map(row).collect());
    eventually("the new rows", Duration::from_secs(30), || async {
        (file_json_lines(&out).len() >= 10).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running.stop();

    let rows = file_json_lines(&out);
    let ids: Vec<i64> = rows
        .iter()
        .map(|r| r["value"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (1..=10).collect::<Vec<_>>(),
        "each row once, in id order"
    );
    assert_eq!(
        rows[7],
        json!({"value": {"id": 8, "name": "e8"},
               "_metadata": {"catalog": "lake", "schema": "raw", "table": "events", "id": 8}})
    );
    assert!(
        trino
            .statements()
            .iter()
            .any(|s| s.contains(r#"WHERE q."id" > 7"#)),
        "{:?}",
        trino.statements()
    );
    assert!(
        trino
            .authorizations()
            .iter()
            .all(|a| *a == format!("Bearer {token}"))
    );
}

/// Client credentials with 3-second tokens (client `dataflow-short`): the source
/// refreshes each token before it expires, so Trino never has to refuse one.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_refreshed_before_they_expire() {
    let trino = FakeTrino::start(true).await;
    trino.put_table(
        "lake.raw.events",
        Table {
            columns: vec![("id".into(), "bigint".into())],
            rows: vec![vec![json!(1)]],
        },
    );
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
    serverURL: "{url}"
    catalog: lake
    schema: raw
    table: events
    pollInterval: 1
    keycloak: {{serverURL: "{keycloak}", realm: lake, clientID: dataflow-short, clientSecret: s3cret}}
sink: {{type: file, file: {{path: {out}}}}}
"#,
            url = trino.url(),
            keycloak = keycloak_url(),
            out = out.display()
        ),
    );
    let started = now_ms();
    let running = Running::start(&spec);
    tokio::time::sleep(Duration::from_secs(8)).await;
    running.stop();
    let grants = grants_since("dataflow-short", started).await;
    assert_eq!(grants[0], "client_credentials");
    assert!(grants.len() >= 3, "refreshed as tokens aged: {grants:?}");
    assert!(
        grants[1..].iter().all(|g| g == "refresh_token"),
        "{grants:?}"
    );
    assert_eq!(
        trino.unauthorized(),
        0,
        "no token was used after it expired"
    );
    assert_eq!(file_json_lines(&out).len(), 1);
}
