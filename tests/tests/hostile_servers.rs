//! Hostile input and failing servers against the processor with real PostgreSQL:
//! a record the error sink refuses, a fatal sink error, an unreachable server at
//! stop time, an unreachable broker.

use std::time::Duration;

use dataflow_tests::services::{Running, eventually, pg, pg_execute, pg_url, unique};
use serde_json::Value;
use sqlx::Row;

fn write_spec(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("flow.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Reads a metrics or health endpoint: (status code, body).
async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(response) => (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_both_sinks_refuse_reaches_the_error_sink_in_its_fallback_form() {
    let (table, errors) = (unique("orders_nul"), unique("errors_nul"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("in.jsonl"),
        "{\"orderId\":\"bad\",\"s\":\"a\\u0000b\"}\n{\"orderId\":\"good\"}\n",
    )
    .unwrap();
    let spec = write_spec(
        &dir,
        &format!(
            r#"
source: {{type: file, file: {{path: {d}/in.jsonl}}}}
sink: {{type: postgresql, postgresql: {{connectionString: "{pg}", table: {table}, autoCreateTable: true, batchSize: 10, batchFlushIntervalSeconds: 1}}}}
errors: {{type: postgresql, postgresql: {{connectionString: "{pg}", table: {errors}, autoCreateTable: true}}}}
"#,
            d = dir.path().display(),
            pg = pg_url()
        ),
    );
    let (ok, log) = dataflow_tests::run_spec_to_end(&spec).await;
    assert!(ok, "{log}");
    assert!(log.contains("written=1 filtered=0 errors=1"), "{log}");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT data::text FROM {errors}"
    )))
    .fetch_all(&pg().await)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let record: Value = serde_json::from_str(rows[0].get::<&str, _>(0)).unwrap();
    assert!(
        record["error"]["error_sink_refusal"]
            .as_str()
            .unwrap()
            .contains("22P05"),
        "{record}"
    );
    use base64::Engine as _;
    let original = base64::engine::general_purpose::STANDARD
        .decode(
            record["original_message"]["original_data_base64"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(original, br#"{"orderId":"bad","s":"a\u0000b"}"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fatal_sink_error_ends_the_flow_with_its_reason() {
    let table = unique("dropped");
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        &dir,
        &format!(
            r#"
source: {{type: generator, generator: {{count: 0, ratePerSecond: 200}}}}
sink: {{type: postgresql, postgresql: {{connectionString: "{pg}", table: {table}, autoCreateTable: true, batchSize: 10, batchFlushIntervalSeconds: 1}}}}
"#,
            pg = pg_url()
        ),
    );
    let mut running = Running::start(&spec);
    eventually("rows", Duration::from_secs(30), || async {
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&pg().await)
                .await
                .unwrap_or(0);
        (count > 0).then_some(())
    })
    .await;
    pg_execute(&format!("DROP TABLE {table}")).await;
    let status = tokio::task::block_in_place(|| running.wait_exit(Duration::from_secs(30)))
        .expect("the flow ends by itself");
    assert!(!status.success());
    let log = running.log();
    assert!(log.contains("does not exist"), "{log}");
    assert!(log.contains("the flow stopped on an error"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_is_honoured_while_postgres_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        &dir,
        &format!(
            r#"
source: {{type: generator, generator: {{count: 0, ratePerSecond: 100}}}}
sink: {{type: postgresql, postgresql: {{connectionString: "postgres://postgres@127.0.0.1:{port}/postgres", table: t}}}}
"#,
            port = free_port()
        ),
    );
    let mut running = Running::start_with(&spec, &["--shutdown-grace-seconds", "3"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.terminate();
    let status = tokio::task::block_in_place(|| running.wait_exit(Duration::from_secs(10)))
        .expect("the processor exits within its grace period");
    assert!(!status.success(), "it could not drain: {}", running.log());
    assert!(
        running.log().contains("did not stop within 3 s"),
        "{}",
        running.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_is_not_ready_and_logs_little() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_port();
    let spec = write_spec(
        &dir,
        &format!(
            r#"
source: {{type: kafka, kafka: {{brokers: ["127.0.0.1:{port}"], topic: t, consumerGroup: g}}}}
sink: {{type: stdout}}
"#,
            port = free_port()
        ),
    );
    let mut running = Running::start_with(
        &spec,
        &[
            "--metrics-addr",
            &format!("127.0.0.1:{metrics}"),
            "--shutdown-grace-seconds",
            "3",
        ],
    );
    eventually("the metrics endpoint", Duration::from_secs(20), || async {
        (get(&format!("http://127.0.0.1:{metrics}/healthz")).await.0 == 200).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (ready, _) = get(&format!("http://127.0.0.1:{metrics}/readyz")).await;
    assert_eq!(ready, 503, "not ready while the broker cannot be reached");
    let (_, body) = get(&format!("http://127.0.0.1:{metrics}/metrics")).await;
    let source_status = body
        .lines()
        .find(|l| {
            l.starts_with("dataflow_connector_connection_status{")
                && l.contains("connector_name=\"source\"")
        })
        .unwrap_or_default()
        .to_owned();
    assert!(source_status.ends_with(" 0"), "{source_status}");
    let noisy = running
        .log()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();
    assert!(noisy <= 3, "{}", running.log());
    running.terminate();
    let status = tokio::task::block_in_place(|| running.wait_exit(Duration::from_secs(10)));
    assert!(status.is_some(), "SIGTERM honoured: {}", running.log());
}
