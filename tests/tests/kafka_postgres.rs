//! Kafka -> PostgreSQL and back with the processor binary, against the real servers
//! `make services` starts: PostgreSQL and Apache Kafka (which outlive the processor
//! processes these tests kill).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use dataflow_tests::services::{
    Running, consume, create_topic, create_topic_with, eventually, kafka_brokers, pg, pg_execute,
    pg_url, produce, unique,
};
use serde_json::{Value, json};
use sqlx::Row;

fn order(id: u64, partition: i32, seq: u64) -> Vec<u8> {
    json!({"id": id, "partition": partition, "seq": seq, "customer": {"email": format!("c{id}@example.com")}, "total": 12.5})
        .to_string()
        .into_bytes()
}

/// `count` orders spread round-robin over `partitions` partitions.
fn orders(count: u64, partitions: i32) -> Vec<(i32, Option<String>, Vec<u8>)> {
    let mut seq = vec![0u64; partitions as usize];
    (0..count)
        .map(|id| {
            let p = (id % partitions as u64) as i32;
            seq[p as usize] += 1;
            (p, Some(id.to_string()), order(id, p, seq[p as usize]))
        })
        .collect()
}

/// Rows and distinct ids in `table`; zero while the processor has not created it.
async fn count(table: &str) -> (i64, i64) {
    match sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(DISTINCT data->>'id') FROM {table}"
    )))
    .fetch_one(&pg().await)
    .await
    {
        Ok(row) => (row.get(0), row.get(1)),
        Err(_) => (0, 0),
    }
}

fn write_spec(dir: &tempfile::TempDir, yaml: &str) -> std::path::PathBuf {
    let path = dir.path().join("flow.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn kafka_to_pg_spec(topic: &str, group: &str, table: &str, batch: u32) -> String {
    format!(
        r#"
source:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {topic}, consumerGroup: {group}}}
transformations:
  - type: mask
    mask: {{fields: [customer.email], keepLength: true}}
sink:
  type: postgresql
  postgresql:
    connectionString: "{pg}"
    table: {table}
    autoCreateTable: true
    batchSize: {batch}
    batchFlushIntervalSeconds: 1
"#,
        brokers = kafka_brokers(),
        pg = pg_url()
    )
}

/// What a restart or a rebalance may deliver again: the messages a processor had
/// read but not committed. At most every queue of its pipeline is full (4 + 1 + 4 + 1
/// batches of 1024), the sink holds a batch and one in flight (2 x 1000), and the
/// source is filling the next batch: 14 batches of 1024.
const MAX_REREAD_PER_RESTART: i64 = 14 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn kafka_to_postgres_without_failures_writes_each_message_once_in_partition_order() {
    const N: u64 = 100_000;
    let topic = unique("orders");
    let table = unique("orders_out");
    // Eight partitions keep each under the test broker's 5 MB retention.
    create_topic_with(&topic, 8);
    produce(&topic, orders(N, 8)).await;

    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(&dir, &kafka_to_pg_spec(&topic, &unique("g"), &table, 1000));
    let running = Running::start(&spec);
    eventually("all rows", Duration::from_secs(120), || async {
        let (rows, _) = count(&table).await;
        (rows >= N as i64).then_some(())
    })
    .await;
    // Nothing more arrives after a pause.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = running.stop();
    assert!(log.contains("processed=100000 written=100000"), "{log}");

    let (rows, distinct) = count(&table).await;
    assert_eq!(
        (rows, distinct),
        (N as i64, N as i64),
        "each message once when nothing fails"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT data::text FROM {table} ORDER BY id"
    )))
    .fetch_all(&pg().await)
    .await
    .unwrap();
    let mut last_seq: BTreeMap<i64, i64> = BTreeMap::new();
    for row in rows {
        let data: Value = serde_json::from_str(row.get::<&str, _>(0)).unwrap();
        let p = data["partition"].as_i64().unwrap();
        let seq = data["seq"].as_i64().unwrap();
        let previous = last_seq.insert(p, seq).unwrap_or(0);
        assert_eq!(seq, previous + 1, "partition {p} out of order");
        let email = data["customer"]["email"].as_str().unwrap();
        assert!(email.chars().all(|c| c == '*'), "masked: {email}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_twice_mid_run_loses_nothing() {
    const N: u64 = 100_000;
    let topic = unique("orders");
    let table = unique("orders_out");
    let group = unique("g");
    // Eight partitions keep each under the test broker's 5 MB retention.
    create_topic_with(&topic, 8);
    produce(&topic, orders(N, 8)).await;
    let dir = tempfile::tempdir().unwrap();
    // Small batches make the run long enough to interrupt twice.
    let spec = write_spec(&dir, &kafka_to_pg_spec(&topic, &group, &table, 50));

    for threshold in [15_000i64, 45_000] {
        let running = Running::start(&spec);
        let seen = eventually("progress", Duration::from_secs(120), || async {
            let (rows, _) = count(&table).await;
            (rows >= threshold).then_some(rows)
        })
        .await;
        assert!(
            seen < N as i64,
            "the run finished before it could be interrupted ({seen} rows)"
        );
        running.kill();
    }
    let running = Running::start(&spec);
    let (rows, distinct) = eventually("every message", Duration::from_secs(180), || async {
        let (rows, distinct) = count(&table).await;
        (distinct >= N as i64).then_some((rows, distinct))
    })
    .await;
    running.stop();
    assert_eq!(distinct, N as i64, "at least once: every id arrived");
    assert!(
        rows - distinct <= 2 * MAX_REREAD_PER_RESTART,
        "two kills repeated {} messages",
        rows - distinct
    );
}

/// A table whose columns take the message's top-level fields, with constraints the
/// test violates; the error sink is another PostgreSQL table.
#[tokio::test(flavor = "multi_thread")]
async fn bad_rows_and_invalid_json_go_to_the_error_sink() {
    let topic = unique("people");
    let table = unique("people");
    let errors = unique("people_errors");
    create_topic(&topic);
    pg_execute(&format!(
        "CREATE TABLE {table} (id INT PRIMARY KEY, name TEXT NOT NULL, age INT CHECK (age >= 0))"
    ))
    .await;
    let records: Vec<&[u8]> = vec![
        br#"{"id":1,"name":"ann","age":30}"#,
        br#"{"id":2,"name":"bob","age":-1}"#,  // check violation
        br#"{"id":1,"name":"again","age":5}"#, // duplicate key
        b"{not json",                          // invalid JSON on the topic
        br#"{"id":3,"age":7}"#,                // not null
        br#"{"id":4,"name":"dan","age":"old"}"#, // bad value for an int column
        br#"{"id":5,"name":"eve","extra":true}"#, // unknown field ignored
    ];
    produce(&topic, records.iter().map(|r| (0, None, r.to_vec()))).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        &dir,
        &format!(
            r#"
source:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {topic}, consumerGroup: {group}}}
sink:
  type: postgresql
  postgresql: {{connectionString: "{pg}", table: {table}, batchSize: 100, batchFlushIntervalSeconds: 1}}
errors:
  type: postgresql
  postgresql: {{connectionString: "{pg}", table: {errors}, autoCreateTable: true}}
"#,
            brokers = kafka_brokers(),
            group = unique("g"),
            pg = pg_url()
        ),
    );
    let running = Running::start(&spec);
    let pool = pg().await;
    let error_rows = eventually("error records", Duration::from_secs(60), || async {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT data::text FROM {errors} ORDER BY id"
        )))
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        (rows.len() >= 5).then_some(rows)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = running.stop();
    assert!(
        log.contains("processed=7 written=2 filtered=0 errors=5"),
        "{log}"
    );

    let good: Vec<(i32, String)> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, name FROM {table} ORDER BY id"
    )))
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert_eq!(good, vec![(1, "ann".to_owned()), (5, "eve".to_owned())]);

    let records: Vec<Value> = error_rows
        .iter()
        .map(|r| serde_json::from_str(r.get::<&str, _>(0)).unwrap())
        .collect();
    assert_eq!(records.len(), 5, "{records:#?}");
    let mut kinds: Vec<(String, String, String)> = records
        .iter()
        .map(|r| {
            (
                r["error"]["type"].as_str().unwrap().to_owned(),
                r["error"]["stage"].as_str().unwrap().to_owned(),
                r["original_message"].to_string(),
            )
        })
        .collect();
    kinds.sort();
    let expected: HashSet<(&str, &str)> = [
        ("constraint_violation", "sink_write"),
        ("invalid_data", "sink_write"),
        ("invalid_data", "read"),
    ]
    .into();
    for (kind, stage, _) in &kinds {
        assert!(
            expected.contains(&(kind.as_str(), stage.as_str())),
            "{kinds:?}"
        );
    }
    let count_of = |t: &str| kinds.iter().filter(|k| k.0 == t).count();
    assert_eq!(count_of("constraint_violation"), 3, "{kinds:?}");
    assert_eq!(count_of("invalid_data"), 2, "{kinds:?}");
    let invalid = records
        .iter()
        .find(|r| r["original_message"]["original_data"] == "{not json")
        .expect("the invalid JSON line is kept as text");
    assert_eq!(invalid["error"]["metadata"]["topic"], topic.as_str());
    assert_eq!(invalid["error"]["original_sink"], "postgresql");
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_keeps_the_last_version() {
    let topic = unique("upserts");
    let table = unique("accounts");
    create_topic(&topic);
    pg_execute(&format!(
        "CREATE TABLE {table} (id INT PRIMARY KEY, balance INT, note TEXT)"
    ))
    .await;
    pg_execute(&format!("INSERT INTO {table} VALUES (1, 10, 'old')")).await;
    let records: Vec<&[u8]> = vec![
        br#"{"id":1,"balance":11}"#,
        br#"{"id":2,"balance":20,"note":"new"}"#,
        br#"{"id":1,"balance":12}"#,
    ];
    produce(&topic, records.iter().map(|r| (0, None, r.to_vec()))).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        &dir,
        &format!(
            r#"
source:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {topic}, consumerGroup: {group}}}
sink:
  type: postgresql
  postgresql: {{connectionString: "{pg}", table: {table}, batchSize: 10, batchFlushIntervalSeconds: 1, upsertMode: true, conflictKey: id}}
"#,
            brokers = kafka_brokers(),
            group = unique("g"),
            pg = pg_url()
        ),
    );
    let running = Running::start(&spec);
    let pool = pg().await;
    let rows = eventually("upserted rows", Duration::from_secs(60), || async {
        let rows: Vec<(i32, i32, Option<String>)> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, balance, note FROM {table} ORDER BY id"
        )))
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
        (rows.len() == 2 && rows[0].1 == 12).then_some(rows)
    })
    .await;
    running.stop();
    // Fields absent from the message are left as they were.
    assert_eq!(
        rows,
        vec![(1, 12, Some("old".into())), (2, 20, Some("new".into()))]
    );
}

/// PostgreSQL source (incremental by id) -> router -> two Kafka topics, keyed.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_to_kafka_with_a_router() {
    let table = unique("events");
    let orders_topic = unique("orders");
    let refunds_topic = unique("refunds");
    pg_execute(&format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, amount NUMERIC(10,2), at TIMESTAMPTZ DEFAULT '2026-01-02T03:04:05Z');
         INSERT INTO {table} (kind, amount) SELECT CASE WHEN g % 4 = 0 THEN 'refund' ELSE 'order' END, g * 1.5 FROM generate_series(1, 200) g;"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        &dir,
        &format!(
            r#"
source:
  type: postgresql
  postgresql: {{connectionString: "{pg}", table: {table}, pollInterval: 1}}
transformations:
  - type: router
    router:
      routes:
        - condition: "$.kind == 'refund'"
          sink:
            type: kafka
            kafka: {{brokers: ["{brokers}"], topic: {refunds_topic}, keyField: id}}
sink:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {orders_topic}, keyField: id}}
"#,
            brokers = kafka_brokers(),
            pg = pg_url()
        ),
    );
    let running = Running::start(&spec);
    let orders = consume(&orders_topic, 150, Duration::from_secs(60));
    assert_eq!(orders.len(), 150);
    // Rows added while it runs are picked up by the next poll, once.
    pg_execute(&format!(
        "INSERT INTO {table} (kind, amount) VALUES ('refund', 1), ('order', 2)"
    ))
    .await;
    let refunds = consume(&refunds_topic, 51, Duration::from_secs(60));
    let orders = consume(&orders_topic, 151, Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.stop();
    assert_eq!(refunds.len(), 51);
    assert_eq!(orders.len(), 151);
    let more = consume(&orders_topic, 152, Duration::from_secs(12));
    assert_eq!(
        more.len(),
        151,
        "no row is read twice: {:?}",
        more.iter()
            .map(|r| String::from_utf8_lossy(&r.payload))
            .collect::<Vec<_>>()
    );
    for record in refunds.iter().chain(&orders) {
        let value: Value = serde_json::from_slice(&record.payload).unwrap();
        assert_eq!(
            record.key.as_deref(),
            Some(value["id"].to_string().as_str()),
            "keyed by id"
        );
        assert!(
            value["at"]
                .as_str()
                .unwrap()
                .starts_with("2026-01-02T03:04:05")
        );
        let kind = value["kind"].as_str().unwrap();
        assert!(value["amount"].is_number());
        assert_eq!(
            kind == "refund",
            refunds.iter().any(|r| r.payload == record.payload)
        );
    }
    let first: Value = orders
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap())
        .find(|v| v["id"] == 1)
        .unwrap();
    assert_eq!(first["amount"].to_string(), "1.50", "numeric text kept");
}

/// rawMode wraps each message with its Kafka coordinates.
#[tokio::test(flavor = "multi_thread")]
async fn raw_mode_wraps_value_and_metadata() {
    let topic = unique("raw");
    create_topic(&topic);
    produce(
        &topic,
        [
            (0, Some("k1".to_owned()), br#"{"a":1}"#.to_vec()),
            (0, None, b"plain text".to_vec()),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let spec = write_spec(
        &dir,
        &format!(
            r#"
source:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {topic}, consumerGroup: {group}, rawMode: true}}
sink:
  type: file
  file: {{path: "{out}"}}
"#,
            brokers = kafka_brokers(),
            group = unique("g"),
            out = out.display()
        ),
    );
    let running = Running::start(&spec);
    let lines = eventually("two lines", Duration::from_secs(30), || async {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        (text.lines().count() >= 2).then_some(text)
    })
    .await;
    running.stop();
    let values = dataflow_tests::json_lines(&lines);
    assert_eq!(values[0]["value"], json!({"a": 1}));
    assert_eq!(values[0]["_metadata"]["topic"], topic.as_str());
    assert_eq!(values[0]["_metadata"]["partition"], 0);
    assert_eq!(values[0]["_metadata"]["offset"], 0);
    assert_eq!(values[0]["_metadata"]["key"], "k1");
    assert!(values[0]["_metadata"]["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(values[1]["value"], "plain text");
    assert_eq!(values[1]["_metadata"]["offset"], 1);
    assert!(values[1]["_metadata"].get("key").is_none());
}

/// A second processor joins the consumer group mid-run and the first one leaves
/// later: partitions move twice, and every message still arrives.
#[tokio::test(flavor = "multi_thread")]
async fn rebalances_lose_nothing() {
    const N: u64 = 60_000;
    let topic = unique("orders");
    let table = unique("orders_out");
    let group = unique("g");
    // Eight partitions keep each under the test broker's 5 MB retention.
    create_topic_with(&topic, 8);
    produce(&topic, orders(N, 8)).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(&dir, &kafka_to_pg_spec(&topic, &group, &table, 50));

    let first = Running::start(&spec);
    eventually("progress", Duration::from_secs(60), || async {
        (count(&table).await.0 >= 5_000).then_some(())
    })
    .await;
    let second_dir = tempfile::tempdir().unwrap();
    let second_spec = write_spec(&second_dir, &kafka_to_pg_spec(&topic, &group, &table, 50));
    let second = Running::start(&second_spec);
    eventually(
        "both members consuming",
        Duration::from_secs(60),
        || async {
            let assigned = second
                .log()
                .contains("kafka partitions assigned partitions=[");
            (assigned && count(&table).await.0 >= 20_000).then_some(())
        },
    )
    .await;
    let first_log = first.stop();
    assert!(
        first_log.contains("kafka partitions revoked"),
        "{first_log}"
    );
    let (rows, distinct) = eventually("every message", Duration::from_secs(180), || async {
        let (rows, distinct) = count(&table).await;
        (distinct >= N as i64).then_some((rows, distinct))
    })
    .await;
    second.stop();
    assert_eq!(distinct, N as i64);
    // Three hand-overs can each repeat what was in flight: the second member
    // joining (the group revokes and reassigns every partition), the first leaving,
    // and the first's final commit refused while the group moves.
    assert!(
        rows - distinct <= 3 * MAX_REREAD_PER_RESTART,
        "the rebalances repeated {} messages",
        rows - distinct
    );
}

/// The PostgreSQL source keeps its committed position in the source database, so a
/// restarted processor goes on after the last row it wrote instead of starting over.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_source_resumes_after_restart() {
    let table = unique("ledger");
    pg_execute(&format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, amount INT);
         INSERT INTO {table} (amount) SELECT g FROM generate_series(1, 10) g;"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let spec = write_spec(
        &dir,
        &format!(
            r#"
apiVersion: dataflow.dataflow.io/v1
kind: DataFlow
metadata: {{name: {table}, namespace: tests}}
spec:
  source:
    type: postgresql
    postgresql: {{connectionString: "{pg}", table: {table}, pollInterval: 1}}
  sink:
    type: file
    file: {{path: "{out}"}}
"#,
            pg = pg_url(),
            out = out.display()
        ),
    );
    let lines = || std::fs::read_to_string(&out).unwrap_or_default();
    let running = Running::start(&spec);
    eventually("first rows", Duration::from_secs(30), || async {
        (lines().lines().count() >= 10).then_some(())
    })
    .await;
    // The position of the last row is saved before the processor stops.
    eventually("the saved position", Duration::from_secs(30), || async {
        let saved: Vec<String> = sqlx::query_scalar(
            "SELECT position FROM dataflow_source_cursors WHERE source_key LIKE 'tests/' || $1 || ':%'",
        )
        .bind(&table)
        .fetch_all(&pg().await)
        .await
        .unwrap_or_default();
        (saved == ["10"]).then_some(())
    })
    .await;
    running.stop();
    pg_execute(&format!(
        "INSERT INTO {table} (amount) VALUES (11), (12), (13)"
    ))
    .await;
    let running = Running::start(&spec);
    eventually("new rows", Duration::from_secs(30), || async {
        (lines().lines().count() >= 13).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.stop();
    let ids: Vec<i64> = dataflow_tests::json_lines(&lines())
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=13).collect::<Vec<_>>(), "each row once, in order");
}
