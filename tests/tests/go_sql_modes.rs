//! The SQL connector settings Go users bring along, against the real PostgreSQL,
//! ClickHouse and Kafka of `make services`: `rawMode` on the PostgreSQL sink,
//! `changeTrackingColumn`, `orderByColumn` and `readBatchSize` on the PostgreSQL
//! source, and `upsertMode` with `conflictKey` on the ClickHouse sink. Every flow
//! is a job, so it ends by itself when its input is read.

use dataflow_tests::jobs::run_job;
use dataflow_tests::services::{
    ch_query, clickhouse_url, create_topic, kafka_brokers, pg, pg_execute, pg_url, produce, unique,
};
use dataflow_tests::{file_json_lines, write_file};
use serde_json::{Value, json};

/// The rows of `table` as `(value, _metadata)`, in insertion order.
async fn raw_rows(table: &str) -> Vec<(Value, Value)> {
    sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(format!(
        "SELECT value::text, _metadata::text FROM {table} ORDER BY id"
    )))
    .fetch_all(&pg().await)
    .await
    .unwrap()
    .iter()
    .map(|(value, metadata)| {
        (
            serde_json::from_str(value).unwrap(),
            serde_json::from_str(metadata).unwrap(),
        )
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_raw_postgres_table_holds_each_message_and_its_metadata() {
    let topic = unique("rawpg");
    create_topic(&topic);
    produce(
        &topic,
        [
            (
                0,
                Some("k1".to_owned()),
                br#"{"amount":1.50,"id":12345678901234567890}"#.to_vec(),
            ),
            (0, None, b"[1,2]".to_vec()),
            (0, None, b"not json".to_vec()),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("errors.jsonl");
    let flow = |raw_source: bool, table: &str| {
        format!(
            r#"
execution: {{mode: job}}
source:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {topic}, consumerGroup: {group}, rawMode: {raw_source}}}
sink:
  type: postgresql
  postgresql: {{connectionString: "{pg}", table: {table}, autoCreateTable: true, rawMode: true, batchSize: 10, batchFlushIntervalSeconds: 1}}
errors: {{type: file, file: {{path: "{errors}"}}}}
"#,
            brokers = kafka_brokers(),
            group = unique("g"),
            pg = pg_url(),
            errors = errors.display()
        )
    };

    // Plain messages: the message is the value, its Kafka metadata the _metadata.
    let plain = unique("raw_plain");
    let (ok, log) = run_job(dir.path(), &flow(false, &plain), &[]).await;
    assert!(ok, "{log}");
    let rows = raw_rows(&plain).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[0].0["amount"].to_string(),
        "1.50",
        "numbers keep their text"
    );
    assert_eq!(rows[0].0["id"].to_string(), "12345678901234567890");
    assert_eq!(rows[0].1["topic"], topic.as_str());
    assert_eq!(rows[0].1["key"], "k1");
    assert_eq!(rows[0].1["offset"], "0");
    assert_eq!(rows[1].0, json!([1, 2]));
    let refused = file_json_lines(&errors);
    assert_eq!(refused.len(), 1, "the text that is not JSON: {refused:?}");

    // A source in rawMode already sends envelopes: they are stored as they are.
    let enveloped = unique("raw_env");
    let (ok, log) = run_job(dir.path(), &flow(true, &enveloped), &[]).await;
    assert!(ok, "{log}");
    let rows = raw_rows(&enveloped).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0].0["amount"].to_string(), "1.50");
    assert_eq!(
        rows[0].1["offset"], 0,
        "the source's own _metadata, untouched"
    );
    assert_eq!(rows[2].0, json!("not json"));

    // An existing table without the two columns is refused at start, by name.
    let wrong = unique("raw_wrong");
    pg_execute(&format!("CREATE TABLE {wrong} (data JSONB)")).await;
    let spec = flow(false, &wrong).replace("autoCreateTable: true, ", "");
    let (ok, log) = run_job(dir.path(), &spec, &[]).await;
    assert!(!ok);
    assert!(
        log.contains("needs json or jsonb columns value and _metadata"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tracking_column_with_a_tie_breaker_skips_no_row_sharing_a_value() {
    let table = unique("legacy");
    pg_execute(&format!(
        "CREATE TABLE {table} (id INT PRIMARY KEY, changed_at TIMESTAMPTZ, v TEXT);
         INSERT INTO {table} SELECT g, TIMESTAMPTZ '2026-01-01' + (g / 4) * INTERVAL '1 hour', 'r' || g
           FROM generate_series(1, 11) g;
         INSERT INTO {table} VALUES (12, NULL, 'never read');"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let spec = format!(
        r#"
apiVersion: dataflow.dataflow.io/v1
kind: DataFlow
metadata: {{name: {table}, namespace: tests}}
spec:
  execution: {{mode: job}}
  source:
    type: postgresql
    postgresql:
      connectionString: "{pg}"
      query: "SELECT id, changed_at, v FROM {table}"
      changeTrackingColumn: changed_at
      orderByColumn: id
      readBatchSize: 3
      pollInterval: 3600
  sink: {{type: file, file: {{path: "{out}"}}}}
"#,
        pg = pg_url(),
        out = out.display()
    );
    let ids = |path: &std::path::Path| -> Vec<i64> {
        file_json_lines(path)
            .iter()
            .map(|line| line["id"].as_i64().unwrap())
            .collect()
    };
    let (ok, log) = run_job(dir.path(), &spec, &[]).await;
    assert!(ok, "{log}");
    // Pages of three split the groups of rows sharing changed_at (4 per hour).
    assert_eq!(ids(&out), (1..=11).collect::<Vec<_>>());

    // A later row with the last changed_at and a higher id, and a new hour.
    pg_execute(&format!(
        "INSERT INTO {table} VALUES (13, TIMESTAMPTZ '2026-01-01 02:00', 'late'), (14, TIMESTAMPTZ '2026-01-01 05:00', 'new'), (0, TIMESTAMPTZ '2025-12-31', 'old')"
    ))
    .await;
    std::fs::remove_file(&out).unwrap();
    let (ok, log) = run_job(dir.path(), &spec, &[]).await;
    assert!(ok, "{log}");
    assert_eq!(
        ids(&out),
        [13, 14],
        "rows past the saved (changed_at, id) only"
    );

    // A reset to a changed_at value reads every row after it.
    std::fs::remove_file(&out).unwrap();
    let (ok, log) = run_job(
        dir.path(),
        &spec,
        &["--reset-position", "cursor:2026-01-01 01:00:00+00"],
    )
    .await;
    assert!(ok, "{log}");
    assert_eq!(ids(&out), [8, 9, 10, 11, 13, 14]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tracking_column_that_does_not_exist_is_named_at_start() {
    let table = unique("untracked");
    pg_execute(&format!("CREATE TABLE {table} (id INT, doc JSON)")).await;
    let dir = tempfile::tempdir().unwrap();
    for (column, expected) in [
        ("updated_at", "has no column \"updated_at\""),
        (
            "doc",
            "column \"doc\" is of type JSON, which has no order to follow",
        ),
    ] {
        let spec = format!(
            r#"
execution: {{mode: job}}
source:
  type: postgresql
  postgresql: {{connectionString: "{pg}", table: {table}, changeTrackingColumn: {column}}}
sink: {{type: stdout}}
"#,
            pg = pg_url()
        );
        let (ok, log) = run_job(dir.path(), &spec, &[]).await;
        assert!(!ok);
        assert!(
            log.contains("changeTrackingColumn") && log.contains(expected),
            "{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_upserts_keep_the_newest_row_per_key() {
    let table = unique("ch_upsert");
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(
        dir.path(),
        "in.jsonl",
        &[
            r#"{"event_id":1,"v":"first"}"#,
            r#"{"event_id":2,"v":"only"}"#,
            r#"{"v":"no key"}"#,
            r#"{"event_id":1,"v":"second"}"#,
            r#"{"event_id":null,"v":"null key"}"#,
            r#"{"event_id":"1","v":"a string key is another key"}"#,
        ]
        .join("\n"),
    );
    let errors = dir.path().join("errors.jsonl");
    let flow = |table: &str, create: bool| {
        format!(
            r#"
execution: {{mode: job}}
source: {{type: file, file: {{path: "{input}"}}}}
sink:
  type: clickhouse
  clickhouse: {{connectionString: "{ch}", table: {table}, autoCreateTable: {create}, upsertMode: true, conflictKey: event_id, batchSize: 100}}
errors: {{type: file, file: {{path: "{errors}"}}}}
"#,
            input = input.display(),
            ch = clickhouse_url(),
            errors = errors.display()
        )
    };
    let (ok, log) = run_job(dir.path(), &flow(&table, true), &[]).await;
    assert!(ok, "{log}");
    // A second run sends the same messages again: still one row per key.
    std::fs::remove_file(&errors).unwrap();
    let (ok, log) = run_job(dir.path(), &flow(&table, true), &[]).await;
    assert!(ok, "{log}");
    let rows = ch_query(&format!(
        "SELECT event_id, visitParamExtractString(data, 'v') FROM {table} FINAL ORDER BY event_id FORMAT TSV"
    ))
    .await;
    assert_eq!(
        rows, "\"1\"\ta string key is another key\n1\tsecond\n2\tonly\n",
        "the newest row per key"
    );
    let refused: Vec<String> = file_json_lines(&errors)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|e| e.contains("has no conflictKey field")),
        "{refused:?}"
    );

    // A plain MergeTree table cannot upsert: refused at start, saying why.
    let plain = unique("ch_plain");
    ch_query(&format!(
        "CREATE TABLE {plain} (event_id UInt64, v String) ENGINE = MergeTree ORDER BY event_id"
    ))
    .await;
    let (ok, log) = run_job(dir.path(), &flow(&plain, false), &[]).await;
    assert!(!ok);
    assert!(
        log.contains("needs a ReplacingMergeTree table ordered by (event_id)"),
        "{log}"
    );
}
