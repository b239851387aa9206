//! `postgresql-cdc` against the real PostgreSQL of `make services` (started with
//! `wal_level=logical`): Debezium-style events for inserts, updates, deletes and
//! truncates in commit order, a column added mid-stream, an initial snapshot that
//! is read once, a 100,000-row transaction, and a SIGKILL in the middle of the
//! stream that loses nothing, with the events unwrapped back into rows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dataflow_tests::file_json_lines;
use dataflow_tests::services::{
    Running, cdc_slot_created, drop_cdc_slot, eventually, pg, pg_execute, pg_url, unique,
};
use serde_json::Value;
use sqlx::Row;

fn write_spec(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("flow.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A flow from the change stream of `tables` to `sink` (YAML of the sink block).
fn cdc_spec(slot: &str, tables: &[&str], extra: &str, rest: &str) -> String {
    format!(
        r#"
source:
  type: postgresql-cdc
  postgresqlCdc:
    connectionString: "{pg}"
    tables: [{tables}]
    slotName: {slot}
    {extra}
{rest}
"#,
        pg = pg_url(),
        tables = tables.join(", "),
    )
}

async fn events_in(path: &Path, at_least: usize) -> Vec<Value> {
    eventually(
        &format!("{at_least} events in {}", path.display()),
        Duration::from_secs(60),
        || async {
            let events = if path.exists() {
                file_json_lines(path)
            } else {
                Vec::new()
            };
            (events.len() >= at_least).then_some(events)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn inserts_updates_deletes_and_a_new_column_arrive_in_commit_order() {
    let table = unique("cdc_orders");
    let other = unique("cdc_other");
    let slot = unique("cdc_slot");
    pg_execute(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, name text, price numeric(10,2), paid boolean, doc jsonb); \
         CREATE TABLE {other} (id int PRIMARY KEY)"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let spec = write_spec(
        dir.path(),
        &cdc_spec(
            &slot,
            &[&table],
            "pollInterval: 1",
            &format!("sink:\n  type: file\n  file: {{path: {}}}", out.display()),
        ),
    );
    let running = Running::start(&spec);
    cdc_slot_created(&slot).await;
    pg_execute(&format!(
        "INSERT INTO {table} VALUES (1, 'one', 1.50, true, '{{\"a\": [1, 2]}}'), (2, 'two', 20, false, NULL); \
         INSERT INTO {other} VALUES (1); \
         UPDATE {table} SET name = 'uno' WHERE id = 1; \
         DELETE FROM {table} WHERE id = 2; \
         ALTER TABLE {table} ADD COLUMN note text; \
         INSERT INTO {table} (id, name, note) VALUES (3, 'three', 'added later'); \
         TRUNCATE {table}"
    ))
    .await;
    let events = events_in(&out, 6).await;
    let log = running.stop();
    drop_cdc_slot(&slot).await;

    let ops: Vec<&str> = events.iter().map(|e| e["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["c", "c", "u", "d", "c", "t"], "{events:#?}\n{log}");
    let first = &events[0];
    assert_eq!(first["before"], Value::Null);
    assert_eq!(first["after"]["id"], 1);
    assert_eq!(first["after"]["paid"], true);
    assert_eq!(first["after"]["doc"]["a"][1], 2);
    assert_eq!(first["source"]["table"], table.as_str());
    assert_eq!(first["source"]["schema"], "public");
    assert!(first["source"]["lsn"].as_u64().is_some_and(|l| l > 0));
    let raw = std::fs::read_to_string(&out).unwrap();
    assert!(
        raw.contains(r#""price":1.50"#),
        "numeric keeps its digits: {raw}"
    );
    assert_eq!(events[2]["after"]["name"], "uno");
    assert_eq!(events[3]["before"]["id"], 2, "a delete carries the key");
    assert_eq!(events[3]["after"], Value::Null);
    assert_eq!(events[4]["after"]["note"], "added later", "the new column");
    assert_eq!(events[5]["source"]["table"], table.as_str(), "the truncate");
    let lsns: Vec<u64> = events
        .iter()
        .map(|e| e["source"]["lsn"].as_u64().unwrap())
        .collect();
    assert!(
        lsns.windows(2).all(|w| w[0] <= w[1]),
        "commit order: {lsns:?}"
    );
    assert!(
        !raw.contains(&other),
        "a table outside `tables` is not captured"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_snapshot_is_read_once_then_the_stream_follows() {
    let table = unique("cdc_snap");
    let slot = unique("cdc_slot");
    pg_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, v text); \
         INSERT INTO {table} SELECT g, 'old' FROM generate_series(1, 2500) g"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let spec = write_spec(
        dir.path(),
        &cdc_spec(
            &slot,
            &[&format!("public.{table}")],
            "snapshotMode: initial",
            &format!("sink:\n  type: file\n  file: {{path: {}}}", out.display()),
        ),
    );
    let running = Running::start(&spec);
    let events = events_in(&out, 2500).await;
    assert!(
        events
            .iter()
            .all(|e| e["op"] == "r" && e["source"]["snapshot"] == "true")
    );
    pg_execute(&format!("INSERT INTO {table} VALUES (2501, 'new')")).await;
    events_in(&out, 2501).await;
    let log = running.stop();

    // A restart reads neither the snapshot nor the insert again.
    let running = Running::start(&spec);
    pg_execute(&format!("UPDATE {table} SET v = 'newer' WHERE id = 2501")).await;
    let events = events_in(&out, 2502).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log2 = running.stop();
    drop_cdc_slot(&slot).await;
    let events_now = file_json_lines(&out);
    assert_eq!(events_now.len(), 2502, "{log}\n{log2}");
    assert_eq!(events[2500]["op"], "c");
    assert_eq!(events[2501]["op"], "u");
    let ids: std::collections::BTreeSet<i64> = events[..2500]
        .iter()
        .map(|e| e["after"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2500, "every existing row once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_big_transaction_and_a_sigkill_lose_nothing_and_unwrap_into_rows() {
    const BIG: i64 = 100_000;
    const MORE: i64 = 5_000;
    let table = unique("cdc_src");
    let target = unique("cdc_rows");
    let slot = unique("cdc_slot");
    pg_execute(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, amount numeric, label text)"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &cdc_spec(
            &slot,
            &[&table],
            "",
            &format!(
                r#"transformations:
  - type: debeziumUnwrap
sink:
  type: postgresql
  postgresql: {{connectionString: "{pg}", table: {target}, autoCreateTable: true, batchSize: 500, batchFlushIntervalSeconds: 1}}"#,
                pg = pg_url()
            ),
        ),
    );
    let running = Running::start(&spec);
    let pool = pg().await;
    let distinct = || {
        let pool = pool.clone();
        let target = target.clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT count(DISTINCT data->>'id') FROM {target}"
            )))
            .fetch_one(&pool)
            .await
            .map(|r| r.get::<i64, _>(0))
            .unwrap_or(0)
        }
    };
    cdc_slot_created(&slot).await;
    // One transaction of 100,000 rows.
    pg_execute(&format!(
        "INSERT INTO {table} SELECT g, g * 1.25, 'big' FROM generate_series(1, {BIG}) g"
    ))
    .await;
    let before_kill = eventually(
        "part of the big transaction",
        Duration::from_secs(60),
        || async {
            let n = distinct().await;
            (n >= 1_000).then_some(n)
        },
    )
    .await;
    running.kill();
    let at_kill = distinct().await;
    assert!(
        at_kill < BIG,
        "the kill came after the whole transaction ({before_kill}..{at_kill} rows): not mid-stream"
    );
    // Many small transactions while the flow is down, then a restart.
    for chunk in 0..10 {
        let from = BIG + 1 + chunk * (MORE / 10);
        let to = from + MORE / 10 - 1;
        pg_execute(&format!(
            "INSERT INTO {table} SELECT g, g * 1.25, 'small' FROM generate_series({from}, {to}) g"
        ))
        .await;
    }
    let running = Running::start(&spec);
    let all = eventually("every row", Duration::from_secs(120), || async {
        let n = distinct().await;
        (n >= BIG + MORE).then_some(n)
    })
    .await;
    let log = running.stop();
    drop_cdc_slot(&slot).await;
    assert_eq!(all, BIG + MORE, "{log}");
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT data::text FROM {target} WHERE data->>'id' = '7' LIMIT 1"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    let data: String = row.get(0);
    let data: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(data["label"], "big");
    assert_eq!(data["amount"].to_string(), "8.75", "{data}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_slot_that_may_not_be_created_is_a_clear_error() {
    let table = unique("cdc_none");
    let slot = unique("cdc_slot");
    pg_execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY)")).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &cdc_spec(
            &slot,
            &[&table],
            "createSlotIfNotExists: false",
            "sink:\n  type: stdout",
        ),
    );
    let mut running = Running::start(&spec);
    let status = running
        .wait_exit(Duration::from_secs(30))
        .expect("the flow ends");
    let log = running.log();
    drop_cdc_slot(&slot).await;
    assert!(!status.success());
    assert!(
        log.contains("slotName") && log.contains("does not exist"),
        "{log}"
    );
}
