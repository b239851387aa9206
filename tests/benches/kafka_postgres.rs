//! `make bench`, connector part: Kafka -> PostgreSQL throughput of the processor
//! binary on the benchmark corpus (PostgreSQL sink `batchSize: 1000`), with the
//! processor's peak RSS. Needs the servers of `make services` (the Makefile starts
//! them).
//!
//! usage: cargo bench -p dataflow-tests --bench kafka_postgres -- <corpus.jsonl>

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dataflow_tests::processor_bin;
use dataflow_tests::services::{create_topic, kafka_brokers, pg, pg_url, produce, unique};
use sqlx::Row;

#[tokio::main]
async fn main() {
    let Some(corpus) = std::env::args().skip(1).find(|a| !a.starts_with("--")) else {
        eprintln!("usage: kafka_postgres <corpus.jsonl>");
        std::process::exit(2);
    };
    let lines: Vec<Vec<u8>> = std::fs::read(&corpus)
        .expect("read corpus")
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let total = lines.len() as i64;
    let topic = unique("bench_orders");
    let table = unique("bench_orders");
    let partitions = create_topic(&topic) as i32;
    let loading = Instant::now();
    produce(
        &topic,
        lines
            .into_iter()
            .enumerate()
            .map(|(i, line)| ((i as i32) % partitions, None, line)),
    )
    .await;
    println!(
        "kafka -> postgresql: {total} messages on {partitions} partitions (loaded in {:.1}s)",
        loading.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("flow.yaml");
    std::fs::write(
        &spec,
        format!(
            r#"
source:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {topic}, consumerGroup: {group}}}
sink:
  type: postgresql
  postgresql: {{connectionString: "{pg}", table: {table}, autoCreateTable: true, batchSize: 1000, batchFlushIntervalSeconds: 1}}
"#,
            brokers = kafka_brokers(),
            group = unique("bench"),
            pg = pg_url()
        ),
    )
    .expect("write spec");

    let started = Instant::now();
    let child = Command::new(processor_bin())
        .args(["run", "--spec"])
        .arg(&spec)
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("processor runs");
    let pool = pg().await;
    let count = || async {
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&pool)
            .await
            .map(|r| r.get::<i64, _>(0))
            .unwrap_or(0)
    };
    let mut first_row: Option<(Instant, i64)> = None;
    loop {
        let rows = count().await;
        if rows > 0 && first_row.is_none() {
            first_row = Some((Instant::now(), rows));
        }
        if rows >= total {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "stalled at {rows} rows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = Instant::now();
    // SAFETY: signalling and reaping our own child.
    let peak_kib = unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::wait4(child.id() as i32, &mut status, 0, &mut usage);
        usage.ru_maxrss
    };
    let (first_at, first_rows) = first_row.unwrap_or((started, 0));
    let sustained = (total - first_rows) as f64 / (done - first_at).as_secs_f64();
    let overall = total as f64 / (done - started).as_secs_f64();
    println!(
        "  sustained {:>9.0} msg/s (first row to last)   overall {:>9.0} msg/s (incl. start and group join: {:.2}s)   peak RSS {} MiB",
        sustained,
        overall,
        (first_at - started).as_secs_f64(),
        peak_kib / 1024
    );
}
