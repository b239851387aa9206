//! Flows that run to completion (`execution.mode: job`) against the real Kafka
//! and PostgreSQL of `make services`: each run reads what its source held at
//! start, writes it, commits its position and exits 0; the next run carries on.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use dataflow_tests::jobs::{job_ids, kafka_job, postgres_job};
use dataflow_tests::services::{
    committed_total, create_topic_with, orders, pg_execute, pg_url, produce, unique,
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

#[tokio::test]
async fn a_postgresql_job_ends_at_the_rows_present_at_start_while_rows_keep_coming() {
    busy_table_job(3000, "", "").await;
}

#[tokio::test]
async fn a_job_with_a_tie_breaker_ends_at_the_last_row_present_at_start() {
    // Every row has the same change time: where the pass ends is decided by
    // the tie-breaker.
    busy_table_job(
        600,
        ", changed_at TIMESTAMPTZ NOT NULL DEFAULT '2026-12-01T00:00:00Z'",
        ", changeTrackingColumn: changed_at, orderByColumn: id",
    )
    .await;
}

/// A job over a table of `present` rows (with `columns` added) that gains
/// `present / 3` more while the job reads it, one row per read; the job must
/// end with the first, and the next run read the others.
async fn busy_table_job(present: i64, columns: &str, source_fields: &str) {
    let late = present / 3;
    let table = unique("job_busy");
    pg_execute(&format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, note TEXT NOT NULL{columns})"
    ))
    .await;
    pg_execute(&format!(
        "INSERT INTO {table} (note) SELECT 'row ' || n FROM generate_series(1, {present}) n"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    // One row per read: the pass takes thousands of reads, and rows written
    // meanwhile would keep every page full.
    let spec = |output: &Path| {
        format!(
            "execution: {{mode: job}}\nsource:\n  type: postgresql\n  postgresql: {{connectionString: \"{}\", table: {table}, pollInterval: 3600, readBatchSize: 1{source_fields}}}\nsink: {{type: file, file: {{path: \"{}\"}}}}\n",
            pg_url(),
            output.display()
        )
    };
    let first = d.join("first.jsonl");
    let job = {
        let (d, spec, first) = (d.clone(), spec(&first), first.clone());
        tokio::spawn(async move { job_ids(&d, &spec, &first, &[]).await })
    };
    let started = tokio::time::Instant::now();
    while std::fs::metadata(&first).map_or(0, |m| m.len()) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job wrote nothing"
        );
        assert!(
            !job.is_finished(),
            "the job ended before the late rows could come"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    pg_execute(&format!(
        "INSERT INTO {table} (note) SELECT 'late ' || n FROM generate_series(1, {late}) n"
    ))
    .await;
    assert!(!job.is_finished(), "the late rows came during the pass");
    let ids = job.await.unwrap();
    assert_eq!(
        (ids.len(), ids.first(), ids.last()),
        (usize::try_from(present).unwrap(), Some(&1), Some(&present)),
        "the rows present at start, not the ones written during the pass"
    );
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, once each"
    );
    let second = d.join("second.jsonl");
    assert_eq!(
        job_ids(&d, &spec(&second), &second, &[]).await,
        (present + 1..=present + late).collect::<Vec<_>>(),
        "the next run reads the late rows"
    );
}
