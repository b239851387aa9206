//! Chaos: Kafka -> PostgreSQL through repeated SIGKILLs, a PostgreSQL outage and a
//! broker restart, then a count of distinct keys. Alone in its test binary, since
//! the outages would disturb every other test talking to these servers.
//!
//! The input is produced at a steady rate while the flow runs, so every fault
//! lands under load and the flow cannot finish before the faults are done. Sized
//! for CI by default; `make chaos` runs the million-message version
//! (`DATAFLOW_CHAOS_MESSAGES`, `DATAFLOW_CHAOS_KILLS`, `DATAFLOW_CHAOS_RATE`).

use std::time::{Duration, Instant};

use dataflow_tests::services::{
    Running, create_topic_with, eventually, kafka_brokers, orders, pg_url, produce, services,
    unique,
};
use sqlx::Row;

/// What one restart may deliver again: every queue of the pipeline full plus the
/// sink's batch in flight (see `kafka_postgres.rs`).
const MAX_REREAD_PER_RESTART: i64 = 14 * 1024;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Rows and distinct ids in `table`; `None` while PostgreSQL or the table is missing.
async fn count(table: &str) -> Option<(i64, i64)> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&pg_url())
        .await
        .ok()?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(DISTINCT data->>'id') FROM {table}"
    )))
    .fetch_one(&pool)
    .await
    .ok()
    .map(|row| (row.get(0), row.get(1)))
}

/// Waits until the processor has its partitions, then until `more` new ids
/// arrived; the processor's log is in the panic message when either never happens.
async fn assigned_then_progress(running: &Running, table: &str, more: i64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !running.log().contains("kafka partitions assigned") {
        assert!(
            Instant::now() < deadline,
            "no partition assignment:\n{}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let start = count(table).await.map_or(0, |c| c.1);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if count(table).await.is_some_and(|c| c.1 >= start + more) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no progress past {start} ids:\n{}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_to_postgres_survives_kills_and_outages_without_loss() {
    let n = setting("DATAFLOW_CHAOS_MESSAGES", 150_000);
    let kills = setting("DATAFLOW_CHAOS_KILLS", 3).max(1);
    let rate = setting("DATAFLOW_CHAOS_RATE", 2_000).max(100);
    let (topic, table) = (unique("chaos_in"), unique("chaos_out"));
    create_topic_with(&topic, 8);
    let producing = tokio::spawn({
        let topic = topic.clone();
        async move {
            let mut all = orders(n, 8).into_iter();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let second: Vec<_> = all.by_ref().take(rate as usize).collect();
                if second.is_empty() {
                    break;
                }
                produce(&topic, second).await;
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
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
  postgresql:
    connectionString: "{pg}"
    table: {table}
    autoCreateTable: true
    batchSize: 50
    batchFlushIntervalSeconds: 1
"#,
            brokers = kafka_brokers(),
            group = unique("g"),
            pg = pg_url()
        ),
    )
    .unwrap();
    // Each life of the processor adds about this many ids before its end.
    let step = 2 * rate as i64;
    let started = Instant::now();

    // A sink outage under load: PostgreSQL stops for 10 s and comes back.
    let running = Running::start(&spec);
    assigned_then_progress(&running, &table, step).await;
    services("stop-postgres");
    tokio::time::sleep(Duration::from_secs(10)).await;
    services("start");
    // A broker outage under load: Kafka stops and starts again.
    assigned_then_progress(&running, &table, step).await;
    tokio::task::block_in_place(|| services("restart-kafka"));
    assigned_then_progress(&running, &table, step / 2).await;
    running.kill();
    // SIGKILLs, each once the new processor owns its partitions and made progress.
    for _ in 1..kills {
        let running = Running::start(&spec);
        assigned_then_progress(&running, &table, step / 2).await;
        assert!(
            !producing.is_finished(),
            "the input was all produced before the kills were done: raise DATAFLOW_CHAOS_MESSAGES"
        );
        running.kill();
    }
    let running = Running::start(&spec);
    producing.await.unwrap();
    let (rows, distinct) = eventually("every message", Duration::from_secs(600), || async {
        count(&table).await.filter(|c| c.1 >= n as i64)
    })
    .await;
    running.stop();
    eprintln!(
        "chaos: {n} messages at {rate}/s, {kills} kills, a PostgreSQL and a Kafka outage: \
         {rows} rows, {distinct} distinct, in {:?}",
        started.elapsed()
    );
    assert_eq!(distinct, n as i64, "every id arrived");
    assert!(
        rows - distinct <= (kills as i64 + 2) * MAX_REREAD_PER_RESTART,
        "{} messages were delivered again",
        rows - distinct
    );
}
