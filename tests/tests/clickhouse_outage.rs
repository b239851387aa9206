//! ClickHouse goes away for 15 seconds in the middle of a Kafka -> ClickHouse run
//! (half of the messages are produced while it is away) and comes back: the sink
//! retries the same batch with backoff and no message is lost.
//!
//! Runs against the real servers of `make services`, and stops and restarts the
//! shared ClickHouse through `scripts/services.sh`; it is alone in its test binary
//! so no other test is using the server meanwhile (cargo runs test binaries one
//! after another).

use std::time::Duration;

use dataflow_tests::services::{
    Running, clickhouse_url, create_topic, eventually, kafka_brokers, produce, services, unique,
};

/// Distinct ids in `table`; `None` while the server or the table is not there.
async fn distinct_ids(table: &str) -> Option<u64> {
    let response = reqwest::Client::new()
        .post(clickhouse_url())
        .timeout(Duration::from_secs(2))
        .body(format!(
            "SELECT uniqExact(visitParamExtractUInt(data, 'id')) FROM {table}"
        ))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_down_for_15_seconds_loses_nothing() {
    const N: u64 = 30_000;
    let topic = unique("ch_outage");
    let table = unique("ch_outage_out");
    create_topic(&topic);
    let messages = |ids: std::ops::Range<u64>| {
        ids.map(|id| (0, None, format!(r#"{{"id":{id},"v":"x"}}"#).into_bytes()))
    };
    produce(&topic, messages(0..N / 2)).await;
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
  type: clickhouse
  clickhouse: {{connectionString: "{ch}", table: {table}, autoCreateTable: true, batchSize: 10, batchFlushIntervalSeconds: 1}}
"#,
            brokers = kafka_brokers(),
            group = unique("g"),
            ch = clickhouse_url(),
        ),
    )
    .unwrap();
    let running = Running::start(&spec);
    eventually("first rows", Duration::from_secs(60), || async {
        distinct_ids(&table).await.filter(|&n| n >= 300)
    })
    .await;

    services("stop-clickhouse");
    produce(&topic, messages(N / 2..N)).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
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
        log.contains("insert failed; retrying"),
        "the outage was noticed and retried:\n{log}"
    );
}
