//! Flows that run to completion (`execution.mode: job`) against the real Kafka
//! and PostgreSQL of `make services`: each run reads what its source held at
//! start, writes it, commits its position and exits 0; the next run carries on.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use dataflow_tests::services::{
    committed_total, create_topic_with, kafka_brokers, orders, pg_execute, pg_url, produce, unique,
};
use dataflow_tests::{file_json_lines, run_spec_to_end, write_file};

/// Runs the job in `spec` to its end within two minutes; returns the ids it wrote.
async fn run_job(dir: &Path, spec: &str, output: &str) -> Vec<i64> {
    let path = write_file(dir, "flow.yaml", spec);
    let started = Instant::now();
    let run = tokio::time::timeout(Duration::from_secs(120), run_spec_to_end(&path)).await;
    let (ok, stderr) = run.expect("the job ends by itself");
    assert!(ok, "the job exits 0: {stderr}");
    eprintln!("job ran {:?}", started.elapsed());
    file_json_lines(&dir.join(output))
        .iter()
        .map(|line| line["id"].as_i64().expect("an id"))
        .collect()
}

#[tokio::test]
async fn a_kafka_job_reads_to_the_end_at_start_and_the_next_run_carries_on() {
    let topic = unique("job");
    let group = unique("g");
    create_topic_with(&topic, 3);
    produce(&topic, orders(3_000, 3)).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = |output: &str| {
        format!(
            r#"
execution: {{mode: job}}
source:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {topic}, consumerGroup: {group}}}
sink: {{type: file, file: {{path: "{dir}/{output}"}}}}
"#,
            brokers = kafka_brokers(),
            dir = dir.path().display()
        )
    };

    let first = run_job(dir.path(), &spec("first.jsonl"), "first.jsonl").await;
    assert_eq!(first.len(), 3_000, "every record once");
    assert_eq!(first.iter().collect::<BTreeSet<_>>().len(), 3_000);
    assert_eq!(
        committed_total(&group, &topic),
        3_000,
        "the offsets are committed"
    );

    let more = orders(3_500, 3).into_iter().skip(3_000);
    produce(&topic, more).await;
    let second = run_job(dir.path(), &spec("second.jsonl"), "second.jsonl").await;
    let expected: BTreeSet<i64> = (3_000..3_500).collect();
    assert_eq!(second.into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(committed_total(&group, &topic), 3_500);

    let third = run_job(dir.path(), &spec("third.jsonl"), "third.jsonl").await;
    assert!(third.is_empty(), "nothing new: the run ends at once");
}

#[tokio::test]
async fn a_postgresql_job_reads_the_table_once_and_the_next_run_reads_only_new_rows() {
    let table = unique("job_rows");
    pg_execute(&format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, note TEXT NOT NULL)"
    ))
    .await;
    pg_execute(&format!(
        "INSERT INTO {table} (note) SELECT 'row ' || n FROM generate_series(1, 2500) n"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let spec = |output: &str| {
        format!(
            r#"
execution: {{mode: job}}
source:
  type: postgresql
  postgresql: {{connectionString: "{pg}", table: {table}, pollInterval: 3600}}
sink: {{type: file, file: {{path: "{dir}/{output}"}}}}
"#,
            pg = pg_url(),
            dir = dir.path().display()
        )
    };
    let first = run_job(dir.path(), &spec("first.jsonl"), "first.jsonl").await;
    assert_eq!(
        first,
        (1..=2500).collect::<Vec<_>>(),
        "in id order, once each"
    );

    pg_execute(&format!(
        "INSERT INTO {table} (note) SELECT 'late ' || n FROM generate_series(1, 10) n"
    ))
    .await;
    let second = run_job(dir.path(), &spec("second.jsonl"), "second.jsonl").await;
    assert_eq!(second, (2501..=2510).collect::<Vec<_>>());
}
