//! `make bench`, connector part: Kafka -> database throughput of the processor
//! binary on the benchmark corpus (sink `batchSize: 1000`), with the processor's
//! peak RSS:
//! - PostgreSQL, into a table with a JSONB `data` column and no index, and into one
//!   made by `autoCreateTable` (which adds a GIN index on `data`, whose upkeep
//!   costs PostgreSQL more than the insert itself);
//! - ClickHouse, into the MergeTree `autoCreateTable` makes.
//!
//! Needs the servers of `make services` (the Makefile starts them).
//!
//! usage: cargo bench -p dataflow-tests --bench kafka_sinks -- <corpus.jsonl>

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dataflow_tests::processor_bin;
use dataflow_tests::services::{
    ch_query, clickhouse_url, create_topic_with, kafka_brokers, pg, pg_url, produce, unique,
};
use sqlx::Row;

#[tokio::main]
async fn main() {
    let Some(corpus) = std::env::args().skip(1).find(|a| !a.starts_with("--")) else {
        eprintln!("usage: kafka_sinks <corpus.jsonl>");
        std::process::exit(2);
    };
    let lines: Vec<Vec<u8>> = std::fs::read(&corpus)
        .expect("read corpus")
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    run_case(Target::PostgresPlain, &lines).await;
    run_case(Target::PostgresAutoCreated, &lines).await;
    run_case(Target::Clickhouse, &lines).await;
}

/// Where the benchmark writes.
#[derive(Clone, Copy)]
enum Target {
    PostgresPlain,
    PostgresAutoCreated,
    Clickhouse,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::PostgresPlain => "kafka -> postgresql, jsonb table, no index",
            Target::PostgresAutoCreated => "kafka -> postgresql, autoCreateTable (GIN index)",
            Target::Clickhouse => "kafka -> clickhouse, autoCreateTable (MergeTree)",
        }
    }

    fn sink(self, table: &str) -> String {
        match self {
            Target::PostgresPlain | Target::PostgresAutoCreated => format!(
                r#"{{type: postgresql, postgresql: {{connectionString: "{}", table: {table}, autoCreateTable: {}, batchSize: 1000, batchFlushIntervalSeconds: 1}}}}"#,
                pg_url(),
                matches!(self, Target::PostgresAutoCreated)
            ),
            Target::Clickhouse => format!(
                r#"{{type: clickhouse, clickhouse: {{connectionString: "{}", table: {table}, autoCreateTable: true, batchSize: 1000, batchFlushIntervalSeconds: 1}}}}"#,
                clickhouse_url()
            ),
        }
    }

    async fn count(self, table: &str, pool: &sqlx::PgPool) -> i64 {
        match self {
            Target::PostgresPlain | Target::PostgresAutoCreated => {
                sqlx::query(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(pool)
                    .await
                    .map(|r| r.get::<i64, _>(0))
                    .unwrap_or(0)
            }
            Target::Clickhouse => {
                if ch_query(&format!("EXISTS TABLE {table}")).await.trim() != "1" {
                    return 0;
                }
                ch_query(&format!("SELECT count() FROM {table}"))
                    .await
                    .trim()
                    .parse()
                    .unwrap_or(0)
            }
        }
    }
}

async fn run_case(target: Target, lines: &[Vec<u8>]) {
    let name = target.label();
    let total = lines.len() as i64;
    let topic = unique("bench_orders");
    let table = unique("bench_orders");
    // The test broker keeps 5 MB per partition: 16 partitions hold the corpus.
    let partitions = 16;
    create_topic_with(&topic, partitions as usize);
    let loading = Instant::now();
    produce(
        &topic,
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| ((i as i32) % partitions, None, line.clone())),
    )
    .await;
    println!(
        "{name}: {total} messages on {partitions} partitions (loaded in {:.1}s)",
        loading.elapsed().as_secs_f64()
    );
    if matches!(target, Target::PostgresPlain) {
        dataflow_tests::services::pg_execute(&format!(
            "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, data JSONB NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        ))
        .await;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("flow.yaml");
    std::fs::write(
        &spec,
        format!(
            r#"
source:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {topic}, consumerGroup: {group}}}
sink: {sink}
"#,
            brokers = kafka_brokers(),
            group = unique("bench"),
            sink = target.sink(&table),
        ),
    )
    .expect("write spec");

    let started = Instant::now();
    let child = KillOnDrop(
        Command::new(processor_bin())
            .args(["run", "--spec"])
            .arg(&spec)
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("processor runs"),
    );
    let pool = pg().await;
    let count = || target.count(&table, &pool);
    // The processor's own high-water mark, polled: `wait4`'s `ru_maxrss` would
    // include this process's, which a vfork-spawned child inherits.
    let status_path = format!("/proc/{}/status", child.0.id());
    let mut peak_kib = 0;
    // Sustained rate: between the samples that first pass 10% and 90% of the rows,
    // which leaves out start-up and the last partial batch's timer flush.
    let mut first_row: Option<Instant> = None;
    let mut low: Option<(Instant, i64)> = None;
    let mut high: Option<(Instant, i64)> = None;
    loop {
        let rows = count().await;
        let now = Instant::now();
        peak_kib = peak_kib.max(high_water_kib(&status_path));
        if rows > 0 && first_row.is_none() {
            first_row = Some(now);
        }
        if rows >= total / 10 && low.is_none() {
            low = Some((now, rows));
        }
        if rows >= total * 9 / 10 && high.is_none() {
            high = Some((now, rows));
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
    peak_kib = peak_kib.max(high_water_kib(&status_path));
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(child.0.id() as i32, libc::SIGTERM);
        let mut status = 0;
        libc::waitpid(child.0.id() as i32, &mut status, 0);
    }
    let first_at = first_row.unwrap_or(started);
    let ((low_at, low_rows), (high_at, high_rows)) =
        (low.unwrap_or((started, 0)), high.unwrap_or((done, total)));
    let sustained = (high_rows - low_rows) as f64 / (high_at - low_at).as_secs_f64().max(1e-3);
    let overall = total as f64 / (done - started).as_secs_f64();
    println!(
        "  sustained {:>9.0} msg/s (10% to 90% of rows)   overall {:>9.0} msg/s (incl. start and group join: {:.2}s)   peak RSS {} MiB",
        sustained,
        overall,
        (first_at - started).as_secs_f64(),
        peak_kib / 1024
    );
}

/// Kills the processor if the benchmark fails before stopping it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// `VmHWM` of a `/proc/<pid>/status` file, KiB (0 when it cannot be read).
fn high_water_kib(status_path: &str) -> u64 {
    std::fs::read_to_string(status_path)
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}
