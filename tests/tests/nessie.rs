//! Nessie (Iceberg) as sink and source with the processor binary. No Nessie server
//! can run on the build machine, so these tests run against
//! `dataflow_tests::fake_nessie`: an in-process server that speaks the Iceberg REST
//! catalog protocol the way Nessie serves it (config with the branch and warehouse
//! prefix, namespaces, tables, commits with requirements, the spec's error model,
//! 401 without the right credentials) over a real Iceberg warehouse in a temporary
//! directory. What the sink wrote is read back with the `iceberg` crate's own scan,
//! straight from the metadata files, independently of the connector's code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dataflow_tests::fake_nessie::{FakeNessie, Script};
use dataflow_tests::services::{Running, eventually};
use dataflow_tests::{file_json_lines, run_spec_to_end, write_file};
use serde_json::{Value, json};

fn events(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range
        .map(|i| json!({"id": i, "kind": "order", "note": format!("n{i}")}).to_string())
        .collect()
}

fn sink_spec(nessie: &FakeNessie, input: &Path, extra: &str) -> String {
    format!(
        r#"
source: {{type: file, file: {{path: {input}}}}}
sink:
  type: nessie
  nessie:
    baseURL: "{url}"
    namespace: analytics
    table: events
    autoCreateTable: true
    batchSize: 100
    batchFlushIntervalSeconds: 1
{extra}
"#,
        input = input.display(),
        url = nessie.url(),
    )
}

/// The data column of every row, parsed.
fn documents(rows: &[Value]) -> Vec<Value> {
    rows.iter()
        .map(|r| serde_json::from_str(r["data"].as_str().expect("a data string")).unwrap())
        .collect()
}

/// File -> Nessie on branch `dev` with a warehouse and a bearer token: the table
/// and its namespace are created on that branch only, each batch of 100 is one
/// append commit carrying its batch id, every call goes to Nessie's
/// `<branch>|<warehouse>` prefix with the token, and the rows read back are the
/// input, each exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn file_to_nessie_appends_one_commit_per_batch_on_the_branch() {
    let dir = tempfile::tempdir().unwrap();
    let nessie = FakeNessie::start(&dir.path().join("warehouse"), Some("Bearer t0k")).await;
    nessie.create_branch("dev", "main");
    let input_events = events(1..=250);
    let input = write_file(dir.path(), "in.jsonl", &(input_events.join("\n") + "\n"));
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &sink_spec(
            &nessie,
            &input,
            "    branch: dev\n    warehouse: lake\n    bearerToken: t0k",
        ),
    );
    let (ok, log) = run_spec_to_end(&spec).await;
    assert!(ok, "{log}");

    let rows = nessie.read_rows("dev", "analytics", "events").await;
    let expected: Vec<Value> = input_events
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    // A scan reads the newest commit's file first; compare in id order.
    let mut got = documents(&rows);
    got.sort_by_key(|d| d["id"].as_u64());
    assert_eq!(got, expected, "every row exactly once");
    assert!(
        nessie
            .metadata("main", "analytics", "events")
            .await
            .is_none(),
        "main is untouched"
    );
    let metadata = nessie.metadata("dev", "analytics", "events").await.unwrap();
    let mut counts: Vec<(String, String)> = metadata
        .snapshots()
        .map(|s| {
            let p = &s.summary().additional_properties;
            (
                p.get("added-records").cloned().unwrap_or_default(),
                p.get("dataflow.batch-id").cloned().unwrap_or_default(),
            )
        })
        .collect();
    counts.sort_by_key(|(_, id)| id.clone());
    let mut added: Vec<&str> = counts.iter().map(|(n, _)| n.as_str()).collect();
    added.sort();
    assert_eq!(added, ["100", "100", "50"], "one commit per batch");
    assert!(counts.iter().all(|(_, id)| id.len() == 36), "{counts:?}");

    let seen = nessie.seen();
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer t0k")),
        "every call carries the token: {seen:?}"
    );
    assert_eq!(seen[0].path, "/iceberg/dev/v1/config?warehouse=lake");
    let table_calls: Vec<String> = seen[1..]
        .iter()
        .map(|s| s.path.replace("%7C", "|").replace("%7c", "|"))
        .collect();
    assert!(
        table_calls
            .iter()
            .all(|p| p.starts_with("/iceberg/v1/dev|lake/namespaces")),
        "{table_calls:?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.method == "POST" && s.path.ends_with("/namespaces")),
        "the namespace was created"
    );
    assert_eq!(nessie.commits(), 3);
}

/// The catalog refuses two commits with 503 and loses the answer to a third
/// (applied, but answered 502): the sink retries, finds its batch already in the
/// table instead of appending it twice, and every row lands exactly once. Basic
/// credentials go in the `Authorization` header.
#[tokio::test(flavor = "multi_thread")]
async fn failed_and_lost_commits_land_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let nessie = FakeNessie::start(&dir.path().join("warehouse"), Some("Basic dTpwOnc=")).await;
    nessie.script(Script {
        unavailable_commits: 2,
        lost_commit_answers: 1,
    });
    let input_events = events(1..=30);
    let input = write_file(dir.path(), "in.jsonl", &(input_events.join("\n") + "\n"));
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &sink_spec(
            &nessie,
            &input,
            "    basicAuth: {username: u, password: \"p:w\"}",
        )
        .replace("batchSize: 100", "batchSize: 10"),
    );
    let (ok, log) = run_spec_to_end(&spec).await;
    assert!(ok, "{log}");
    let rows = nessie.read_rows("main", "analytics", "events").await;
    let mut ids: Vec<u64> = documents(&rows)
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        (1..=30).collect::<Vec<u64>>(),
        "every row exactly once"
    );
    assert_eq!(nessie.commits(), 3, "three batches, three commits");
    assert!(log.contains("append failed; retrying"), "{log}");
}

/// Without `autoCreateTable` a missing table stops the flow at start, naming the
/// field; wrong credentials stop it as an authentication failure.
#[tokio::test(flavor = "multi_thread")]
async fn missing_table_and_refused_credentials_stop_the_flow() {
    let dir = tempfile::tempdir().unwrap();
    let nessie = FakeNessie::start(&dir.path().join("warehouse"), Some("Bearer right")).await;
    let input = write_file(dir.path(), "in.jsonl", "{\"a\":1}\n");
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &sink_spec(&nessie, &input, "    bearerToken: right")
            .replace("autoCreateTable: true", "autoCreateTable: false"),
    );
    let (ok, log) = run_spec_to_end(&spec).await;
    assert!(!ok);
    assert!(
        log.contains(
            "spec.sink.nessie.table: table analytics.events@main does not exist (create it, or set autoCreateTable: true)"
        ),
        "{log}"
    );
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &sink_spec(&nessie, &input, "    bearerToken: stale-7f3a"),
    );
    let (ok, log) = run_spec_to_end(&spec).await;
    assert!(!ok);
    assert!(log.contains("401"), "{log}");
    assert!(
        !log.contains("stale-7f3a"),
        "the token stays out of the log: {log}"
    );
}

/// Nessie -> file: the source reads the snapshots already there, then only the
/// snapshot another engine appends later (no row twice), retrying it while its
/// data file cannot be read; rawMode wraps each document with the namespace and
/// table.
#[tokio::test(flavor = "multi_thread")]
async fn nessie_source_reads_only_new_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let nessie = FakeNessie::start(&dir.path().join("warehouse"), None).await;
    let input = write_file(dir.path(), "in.jsonl", &(events(1..=5).join("\n") + "\n"));
    let spec = write_file(
        dir.path(),
        "load.yaml",
        &sink_spec(&nessie, &input, "").replace("batchSize: 100", "batchSize: 2"),
    );
    let (ok, log) = run_spec_to_end(&spec).await;
    assert!(ok, "{log}");

    let out = dir.path().join("out.jsonl");
    let spec = write_file(
        dir.path(),
        "read.yaml",
        &format!(
            r#"
source:
  type: nessie
  nessie: {{baseURL: "{url}", namespace: analytics, table: events, pollInterval: 1, rawMode: true}}
sink: {{type: file, file: {{path: {out}}}}}
"#,
            url = nessie.url(),
            out = out.display()
        ),
    );
    let running = Running::start(&spec);
    eventually("the first rows", Duration::from_secs(30), || async {
        (file_json_lines(&out).len() >= 5).then_some(())
    })
    .await;
    // The next snapshot's data file is missing at first (storage trouble): the
    // source keeps retrying that snapshot and reads it once the file is back.
    let later = events(6..=8);
    let later: Vec<&str> = later.iter().map(String::as_str).collect();
    let mut hidden = Vec::new();
    nessie
        .append_rows_then("main", "analytics", "events", &later, |paths| {
            for path in paths {
                let local = PathBuf::from(path.trim_start_matches("file://"));
                let away = local.with_extension("away");
                std::fs::rename(&local, &away).unwrap();
                hidden.push((local, away));
            }
        })
        .await;
    eventually(
        "a failed read of the new snapshot",
        Duration::from_secs(30),
        || async {
            running
                .log()
                .contains("reading a snapshot failed; reading it again")
                .then_some(())
        },
    )
    .await;
    assert_eq!(file_json_lines(&out).len(), 5);
    for (local, away) in &hidden {
        std::fs::rename(away, local).unwrap();
    }
    eventually("the appended rows", Duration::from_secs(30), || async {
        (file_json_lines(&out).len() >= 8).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    running.stop();

    let rows = file_json_lines(&out);
    let ids: Vec<u64> = rows
        .iter()
        .map(|r| r["value"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (1..=8).collect::<Vec<u64>>(),
        "each row once, in order"
    );
    assert_eq!(
        rows[6],
        json!({"value": {"id": 7, "kind": "order", "note": "n7"},
               "_metadata": {"namespace": "analytics", "table": "events"}})
    );
}
