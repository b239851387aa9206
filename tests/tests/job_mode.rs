//! Flows that run to completion (`execution.mode: job`) against the real Kafka
//! and PostgreSQL of `make services`: each run reads what its source held at
//! start, writes it, commits its position and exits 0; the next run carries on.

use std::collections::BTreeSet;

use dataflow_tests::jobs::{job_ids, kafka_job, postgres_job};
use dataflow_tests::services::{
    committed_total, create_topic_with, orders, pg_execute, produce, unique,
};

#[tokio::test]
async fn a_kafka_job_reads_to_the_end_at_start_and_the_next_run_carries_on() {
    let topic = unique("job");
    let group = unique("g");
    create_topic_with(&topic, 3);
    produce(&topic, orders(3_000, 3)).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |output: &str| {
        let output = d.join(output);
        let spec = kafka_job(&topic, &group, &output);
        async move { job_ids(d, &spec, &output, &[]).await }
    };

    let first = run("first.jsonl").await;
    assert_eq!(first.len(), 3_000, "every record once");
    assert_eq!(first.iter().collect::<BTreeSet<_>>().len(), 3_000);
    assert_eq!(
        committed_total(&group, &topic),
        3_000,
        "the offsets are committed"
    );

    let more = orders(3_500, 3).into_iter().skip(3_000);
    produce(&topic, more).await;
    let second = run("second.jsonl").await;
    let expected: BTreeSet<i64> = (3_000..3_500).collect();
    assert_eq!(second.into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(committed_total(&group, &topic), 3_500);

    let third = run("third.jsonl").await;
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
    let d = dir.path();
    let run = |output: &str| {
        let output = d.join(output);
        let spec = postgres_job(&table, &output);
        async move { job_ids(d, &spec, &output, &[]).await }
    };
    let first = run("first.jsonl").await;
    assert_eq!(
        first,
        (1..=2500).collect::<Vec<_>>(),
        "in id order, once each"
    );

    pg_execute(&format!(
        "INSERT INTO {table} (note) SELECT 'late ' || n FROM generate_series(1, 10) n"
    ))
    .await;
    let second = run("second.jsonl").await;
    assert_eq!(second, (2501..=2510).collect::<Vec<_>>());
}
