//! Nessie as sink and source against the real Nessie server of `make services`,
//! its Iceberg REST catalog keeping tables on an S3 endpoint (s3proxy), on a
//! branch other than `main`. What the sink wrote is read back without the
//! connector or any catalog client: the metadata location from Nessie's content
//! API, the files from S3 with the `iceberg` crate's scan. The faults a real
//! server cannot be made to produce on cue (refused and lost commits) stay in
//! `nessie.rs`, against the stand-in.

use std::path::Path;
use std::time::Duration;

use dataflow_tests::nessie_server::NessieServer;
use dataflow_tests::services::{Running, eventually, unique};
use dataflow_tests::{file_json_lines, run_spec_to_end, write_file};
use serde_json::{Value, json};

fn events(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range
        .map(|i| json!({"id": i, "note": format!("n{i}")}).to_string())
        .collect()
}

/// A name Nessie takes as a branch or table (`[a-z0-9_]`, unique to this run).
fn name(prefix: &str) -> String {
    unique(prefix).to_lowercase()
}

fn sink_flow(
    nessie: &NessieServer,
    input: &Path,
    branch: &str,
    table: &str,
    batch_size: u32,
) -> String {
    format!(
        r#"
source: {{type: file, file: {{path: {input}}}}}
sink:
  type: nessie
  nessie:
    baseURL: "{url}"
    branch: {branch}
    namespace: analytics
    table: {table}
    autoCreateTable: true
    batchSize: {batch_size}
    batchFlushIntervalSeconds: 1
{s3}"#,
        input = input.display(),
        url = nessie.url,
        s3 = nessie.s3_settings(),
    )
}

/// Writes `lines` to a file and runs file -> Nessie to its end, one commit per
/// `batch_size` lines.
async fn sink(
    nessie: &NessieServer,
    dir: &Path,
    (branch, table): (&str, &str),
    lines: &[String],
    batch_size: u32,
) {
    let input = write_file(
        dir,
        &format!("{}.jsonl", name("in")),
        &(lines.join("\n") + "\n"),
    );
    let spec = write_file(
        dir,
        &format!("{}.yaml", name("sink")),
        &sink_flow(nessie, &input, branch, table, batch_size),
    );
    let (ok, log) = run_spec_to_end(&spec).await;
    assert!(ok, "{log}");
    assert!(log.contains(&format!("written={} ", lines.len())), "{log}");
}

/// The server, a temporary directory, and a new branch and table name.
struct Fixture {
    nessie: NessieServer,
    dir: tempfile::TempDir,
    branch: String,
    table: String,
}

async fn fixture(branch_prefix: &str) -> Fixture {
    let nessie = NessieServer::from_env();
    let branch = name(branch_prefix);
    nessie.create_branch(&branch).await;
    Fixture {
        nessie,
        dir: tempfile::tempdir().expect("a temporary directory"),
        branch,
        table: name("events"),
    }
}

fn documents(rows: &[Value]) -> Vec<Value> {
    let mut docs: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::from_str(r["data"].as_str().expect("a data string")).unwrap())
        .collect();
    docs.sort_by_key(|d| d["id"].as_u64());
    docs
}

/// File -> Nessie on a new branch: the namespace and table are made on that
/// branch only, their files land in the S3 bucket, and the rows read back from
/// S3 are the input, each once.
#[tokio::test(flavor = "multi_thread")]
async fn file_to_nessie_on_s3_on_a_branch() {
    let Fixture {
        nessie,
        dir,
        branch,
        table,
    } = fixture("dev").await;
    let input = events(1..=250);
    sink(&nessie, dir.path(), (&branch, &table), &input, 100).await;

    let location = nessie
        .metadata_location(&branch, "analytics", &table)
        .await
        .expect("the table exists on the branch");
    assert!(
        location.starts_with(&format!("s3://{}/", nessie.bucket)),
        "{location}"
    );
    assert_eq!(
        nessie.metadata_location("main", "analytics", &table).await,
        None,
        "main is untouched"
    );
    let expected: Vec<Value> = input
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let rows = nessie.read_rows(&branch, "analytics", &table).await;
    assert_eq!(documents(&rows), expected, "every row exactly once");
}

/// Wrong S3 keys: the catalog accepts the table, but writing its data file
/// fails, and the flow stops naming the store, before anything is committed.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_s3_key_stops_the_flow_and_commits_nothing() {
    let Fixture {
        nessie,
        dir,
        branch,
        table,
    } = fixture("bad_key").await;
    let input = write_file(dir.path(), "in.jsonl", &(events(1..=3).join("\n") + "\n"));
    let flow = sink_flow(&nessie, &input, &branch, &table, 100).replace(
        &nessie.s3_settings(),
        "    s3: {accessKeyId: nobody, secretAccessKey: wrong, region: us-east-1}\n",
    );
    let spec = write_file(dir.path(), "flow.yaml", &flow);
    let (ok, log) = run_spec_to_end(&spec).await;
    assert!(!ok, "{log}");
    assert!(
        log.contains("PermissionDenied") && log.contains(&nessie.s3_endpoint),
        "the store and its refusal are named: {log}"
    );
    assert!(
        !log.contains("wrong"),
        "the secret stays out of the log: {log}"
    );
    let rows = nessie.read_rows(&branch, "analytics", &table).await;
    assert!(rows.is_empty(), "nothing committed: {rows:?}");
}

/// Nessie -> file: the source reads the rows of every commit on the branch
/// (two before it starts), then, polling, only those appended later: three
/// commits between two polls, of which Nessie's metadata keeps only the last
/// snapshot.
#[tokio::test(flavor = "multi_thread")]
async fn nessie_source_on_s3_reads_only_new_snapshots() {
    let Fixture {
        nessie,
        dir,
        branch,
        table,
    } = fixture("src").await;
    sink(&nessie, dir.path(), (&branch, &table), &events(1..=5), 3).await;

    let out = dir.path().join("out.jsonl");
    let spec = write_file(
        dir.path(),
        "source.yaml",
        &format!(
            r#"
source:
  type: nessie
  nessie:
    baseURL: "{url}"
    branch: {branch}
    namespace: analytics
    table: {table}
    pollInterval: 4
{s3}sink: {{type: file, file: {{path: {out}}}}}
"#,
            url = nessie.url,
            s3 = nessie.s3_settings(),
            out = out.display()
        ),
    );
    let running = Running::start(&spec);
    let ids = |rows: &[Value]| -> Vec<u64> {
        let mut ids: Vec<u64> = rows.iter().filter_map(|r| r["id"].as_u64()).collect();
        ids.sort_unstable();
        ids
    };
    eventually(
        "the first snapshot's rows",
        Duration::from_secs(60),
        || async { (file_json_lines(&out).len() >= 5).then_some(()) },
    )
    .await;
    sink(&nessie, dir.path(), (&branch, &table), &events(6..=8), 1).await;
    eventually(
        "the new snapshot's rows",
        Duration::from_secs(60),
        || async { (file_json_lines(&out).len() >= 8).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = running.stop();
    let rows = file_json_lines(&out);
    assert_eq!(ids(&rows), (1..=8).collect::<Vec<_>>(), "{log}");
}
