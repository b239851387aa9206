//! PostgreSQL goes away for 20 seconds in the middle of a Kafka -> PostgreSQL run and
//! comes back: the sink retries the same batch with backoff and no message is lost.
//!
//! Runs against the real servers of `make services`, and stops and restarts the
//! shared PostgreSQL through `scripts/services.sh`; it is alone in its test binary
//! so no other test is using the server meanwhile (cargo runs test binaries one
//! after another).

use std::time::Duration;

use dataflow_tests::services::{
    Running, create_topic, eventually, kafka_brokers, pg, pg_url, produce, services, unique,
};
use sqlx::Row;

async fn distinct_ids(table: &str) -> Option<i64> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&pg_url())
        .await
        .ok()?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(DISTINCT data->>'id') FROM {table}"
    )))
    .fetch_one(&pool)
    .await
    .ok()?;
    Some(row.get(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_down_for_20_seconds_loses_nothing() {
    const N: i64 = 40_000;
    let topic = unique("outage");
    let table = unique("outage_out");
    create_topic(&topic);
    produce(
        &topic,
        (0..N).map(|id| (0, None, format!(r#"{{"id":{id},"v":"x"}}"#).into_bytes())),
    )
    .await;
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
  postgresql: {{connectionString: "{pg}", table: {table}, autoCreateTable: true, batchSize: 20, batchFlushIntervalSeconds: 1}}
"#,
            brokers = kafka_brokers(),
            group = unique("g"),
            pg = pg_url()
        ),
    )
    .unwrap();
    let running = Running::start(&spec);
    eventually("first rows", Duration::from_secs(60), || async {
        distinct_ids(&table).await.filter(|&n| n >= 2_000)
    })
    .await;

    services("stop-postgres");
    tokio::time::sleep(Duration::from_secs(20)).await;
    services("start");

    let arrived = eventually(
        "every message after the outage",
        Duration::from_secs(180),
        || async { distinct_ids(&table).await.filter(|&n| n >= N) },
    )
    .await;
    let log = running.stop();
    assert_eq!(arrived, N, "{log}");
    assert!(
        log.contains("retrying"),
        "the outage was noticed and retried:\n{log}"
    );
    // The sink retried whole batches in order: taking each id's first appearance,
    // ids only go up (a retried batch may repeat, never overtake).
    let ids: Vec<i64> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT (data->>'id')::bigint FROM {table} ORDER BY id"
    )))
    .fetch_all(&pg().await)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<i64> = ids.into_iter().filter(|id| seen.insert(*id)).collect();
    assert_eq!(firsts.len() as i64, N);
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "rows were reordered"
    );
}
