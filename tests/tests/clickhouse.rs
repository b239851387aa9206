//! ClickHouse as source and sink with the processor binary, against the real
//! ClickHouse server `make services` starts (Debian's 18.16, the oldest server the
//! connector supports) and the Kafka-protocol broker process.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dataflow_tests::services::{
    Running, ch_query, clickhouse_url, create_topic_with, eventually, kafka_brokers, produce,
    unique,
};
use serde_json::{Value, json};

fn write_spec(dir: &tempfile::TempDir, name: &str, yaml: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The test server in the native-protocol form users copy from the Go original,
/// with the HTTP port it actually serves on.
fn native_connection_string() -> String {
    let url = clickhouse_url();
    let port = url.rsplit(':').next().unwrap().trim_end_matches('/');
    format!("clickhouse://default@127.0.0.1:19000/default?dial_timeout=10s&http_port={port}")
}

async fn count(table: &str) -> u64 {
    if ch_query(&format!("EXISTS TABLE {table}")).await.trim() != "1" {
        return 0;
    }
    ch_query(&format!("SELECT count() FROM {table}"))
        .await
        .trim()
        .parse()
        .unwrap()
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Kafka -> mask -> ClickHouse (auto-created MergeTree, whole messages in `data`),
/// with invalid JSON on the topic landing in the error sink and nothing lost.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_to_clickhouse_lands_every_message() {
    const N: u64 = 20_000;
    let topic = unique("orders");
    let table = unique("orders_ch");
    create_topic_with(&topic, 4);
    let mut records: Vec<(i32, Option<String>, Vec<u8>)> = (0..N)
        .map(|id| {
            let order =
                json!({"id": id, "email": format!("c{id}@example.com"), "note": "a\nb \"c\""});
            ((id % 4) as i32, None, order.to_string().into_bytes())
        })
        .collect();
    records.push((0, None, b"{not json".to_vec()));
    records.push((3, None, b"[1,".to_vec()));
    produce(&topic, records).await;

    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("errors.jsonl");
    let spec = write_spec(
        &dir,
        "flow.yaml",
        &format!(
            r#"
source:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {topic}, consumerGroup: {group}}}
transformations:
  - type: mask
    mask: {{fields: [email], keepLength: true}}
sink:
  type: clickhouse
  clickhouse:
    connectionString: "{ch}"
    table: {table}
    autoCreateTable: true
    batchSize: 1000
    batchFlushIntervalSeconds: 1
errors:
  type: file
  file: {{path: {errors}}}
"#,
            brokers = kafka_brokers(),
            group = unique("g"),
            ch = native_connection_string(),
            errors = errors.display(),
        ),
    );
    let running = Running::start(&spec);
    eventually("every row", Duration::from_secs(120), || async {
        (count(&table).await >= N).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = running.stop();
    assert!(
        log.contains(&format!(
            "processed={} written={N} filtered=0 errors=2",
            N + 2
        )),
        "{log}"
    );

    let summary = ch_query(&format!(
        "SELECT count(), uniqExact(visitParamExtractUInt(data, 'id')), \
         countIf(position(data, '@') > 0), min(created_at) > toDateTime('2020-01-01 00:00:00') FROM {table}"
    ))
    .await;
    assert_eq!(
        summary.trim(),
        format!("{N}\t{N}\t0\t1"),
        "exactly once, masked, stamped"
    );
    let sample = ch_query(&format!(
        "SELECT data FROM {table} WHERE visitParamExtractUInt(data, 'id') = 7 FORMAT JSONEachRow"
    ))
    .await;
    let row: Value = serde_json::from_str(sample.trim()).unwrap();
    let data: Value = serde_json::from_str(row["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        data["note"], "a\nb \"c\"",
        "the JSON text survives as written"
    );

    let errors = lines(&errors);
    let originals: BTreeSet<String> = errors
        .iter()
        .map(|e| {
            e["original_message"]["original_data"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        originals,
        BTreeSet::from(["{not json".to_owned(), "[1,".to_owned()]),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .all(|e| e["error"]["original_sink"] == "clickhouse")
    );
}

/// Messages onto the columns of an existing table; the rows ClickHouse refuses
/// (a value that is not a number, a non-object) go to the error sink, the rest land.
#[tokio::test(flavor = "multi_thread")]
async fn rows_the_table_refuses_go_to_the_error_sink() {
    let table = unique("people_ch");
    ch_query(&format!(
        "CREATE TABLE {table} (id UInt64, name String, age UInt32) ENGINE = MergeTree() ORDER BY id"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let errors = dir.path().join("errors.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"id":1,"name":"ann","age":30}"#,
            r#"{"id":2,"name":"bob","age":"old"}"#,
            r#"{"id":3,"name":"cy","age":7,"extra":{"x":1}}"#,
            r#"[4]"#,
            r#"{"id":5,"name":"eve","age":41}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let spec = write_spec(
        &dir,
        "flow.yaml",
        &format!(
            r#"
source: {{type: file, file: {{path: {input}}}}}
sink:
  type: clickhouse
  clickhouse: {{connectionString: "{ch}/default", table: "default.{table}", batchSize: 100}}
errors: {{type: file, file: {{path: {errors}}}}}
"#,
            input = input.display(),
            ch = clickhouse_url(),
            errors = errors.display(),
        ),
    );
    let output = dataflow_tests::processor(&["run", "--spec", spec.to_str().unwrap()], "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("processed=5 written=3 filtered=0 errors=2"),
        "{stderr}"
    );
    let rows = ch_query(&format!("SELECT id, name, age FROM {table} ORDER BY id")).await;
    assert_eq!(rows, "1\tann\t30\n3\tcy\t7\n5\teve\t41\n");
    let errors = lines(&errors);
    let refused: BTreeSet<String> = errors
        .iter()
        .map(|e| e["original_message"].to_string())
        .collect();
    assert_eq!(
        refused,
        BTreeSet::from([
            r#"{"id":2,"name":"bob","age":"old"}"#.to_owned(),
            "[4]".to_owned()
        ]),
        "{errors:#?}"
    );
    assert!(
        errors.iter().all(|e| e["error"]["type"] == "invalid_data"),
        "{errors:#?}"
    );
}

fn source_spec(dir: &tempfile::TempDir, name: &str, table: &str, out: &Path, raw: bool) -> PathBuf {
    write_spec(
        dir,
        name,
        &format!(
            r#"
kind: DataFlow
metadata: {{name: {table}, namespace: tests}}
spec:
  source:
    type: clickhouse
    clickhouse: {{connectionString: "{ch}/default", table: {table}, pollInterval: 1, rawMode: {raw}}}
  sink: {{type: file, file: {{path: {out}}}}}
"#,
            ch = clickhouse_url(),
            out = out.display(),
        ),
    )
}

async fn insert_people(table: &str, ids: std::ops::RangeInclusive<u64>) {
    let values: Vec<String> = ids.map(|i| format!("({i}, 'p{i}')")).collect();
    ch_query(&format!(
        "INSERT INTO {table} (id, name) VALUES {}",
        values.join(",")
    ))
    .await;
}

/// Polls a table by `id`: reads what is there, then only what arrives, and after a
/// restart goes on from the saved position instead of starting over.
#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_source_reads_incrementally_and_resumes() {
    let table = unique("people_src");
    ch_query(&format!(
        "CREATE TABLE {table} (id UInt64, name String, created_at DateTime DEFAULT now()) ENGINE = MergeTree() ORDER BY id"
    ))
    .await;
    insert_people(&table, 1..=500).await;
    let dir = tempfile::tempdir().unwrap();
    let first_out = dir.path().join("first.jsonl");
    let running = Running::start(&source_spec(&dir, "first.yaml", &table, &first_out, false));
    eventually("the first rows", Duration::from_secs(60), || async {
        (lines(&first_out).len() >= 500).then_some(())
    })
    .await;
    insert_people(&table, 501..=700).await;
    eventually("the new rows", Duration::from_secs(60), || async {
        (lines(&first_out).len() >= 700).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.stop();
    let ids: Vec<u64> = lines(&first_out)
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (1..=700).collect::<Vec<_>>(),
        "each row once, in id order"
    );

    insert_people(&table, 701..=800).await;
    let second_out = dir.path().join("second.jsonl");
    let running = Running::start(&source_spec(&dir, "second.yaml", &table, &second_out, true));
    eventually(
        "the rows added while stopped",
        Duration::from_secs(60),
        || async { (lines(&second_out).len() >= 100).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = running.stop();
    assert!(log.contains("resuming after the saved position"), "{log}");
    let rows = lines(&second_out);
    let ids: Vec<u64> = rows
        .iter()
        .map(|r| r["value"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (701..=800).collect::<Vec<_>>(),
        "no re-reads after a restart"
    );
    assert_eq!(rows[0]["_metadata"], json!({"table": table, "id": 701}));
    assert_eq!(rows[0]["value"]["name"], "p701");
}

/// A job (`execution.mode: job`) reads the rows present at start, by `id` or
/// by `created_at`, exits 0, and the next run reads only what came since.
#[tokio::test(flavor = "multi_thread")]
async fn a_clickhouse_job_reads_the_table_once_and_the_next_run_reads_only_new_rows() {
    for (cursor, ddl) in [
        ("id", "id UInt64, name String"),
        ("created_at", "seq UInt64, name String, created_at DateTime"),
    ] {
        let table = unique("job_people");
        ch_query(&format!(
            "CREATE TABLE {table} ({ddl}) ENGINE = MergeTree() ORDER BY tuple()"
        ))
        .await;
        let insert = |from: u64, to: u64| {
            let table = table.clone();
            async move {
                let values: Vec<String> = (from..=to)
                    .map(|i| match cursor {
                        "id" => format!("({i}, 'p{i}')"),
                        _ => format!("({i}, 'p{i}', toDateTime('2026-12-01 00:00:00') + {i})"),
                    })
                    .collect();
                ch_query(&format!("INSERT INTO {table} VALUES {}", values.join(","))).await;
            }
        };
        insert(1, 2500).await;
        let dir = tempfile::tempdir().unwrap();
        let run = |name: &str| {
            let out = dir.path().join(format!("{name}.jsonl"));
            let spec = format!(
                "execution: {{mode: job}}\nsource:\n  type: clickhouse\n  clickhouse: {{connectionString: \"{}/default\", table: {table}, pollInterval: 3600}}\nsink: {{type: file, file: {{path: \"{}\"}}}}\n",
                clickhouse_url(),
                out.display()
            );
            let d = dir.path().to_path_buf();
            async move {
                let (ok, log) = dataflow_tests::jobs::run_job(&d, &spec, &[]).await;
                assert!(ok, "the job exits 0: {log}");
                let rows = if out.exists() {
                    lines(&out)
                } else {
                    Vec::new()
                };
                rows.iter()
                    .map(|r| {
                        r[if cursor == "id" { "id" } else { "seq" }]
                            .as_u64()
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            run("first").await,
            (1..=2500).collect::<Vec<_>>(),
            "by {cursor}"
        );
        insert(2501, 2600).await;
        assert_eq!(
            run("second").await,
            (2501..=2600).collect::<Vec<_>>(),
            "by {cursor}"
        );
        assert!(run("third").await.is_empty(), "by {cursor}: nothing new");
    }
}
