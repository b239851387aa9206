//! A broker restart in the middle of a run: alone in its test binary, since the
//! restart would disturb every other test talking to Kafka at the time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dataflow_tests::services::{
    Consumed, Running, consume_until, create_topic_with, kafka_env, orders, produce, secured_flow,
    services, unique,
};

/// A counter of the processor's metrics endpoint (0 while it does not answer).
async fn counter(port: u16, name: &str) -> u64 {
    let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return 0;
    };
    let body = response.text().await.unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restart_mid_run_loses_nothing() {
    const N: u64 = 200_000;
    let (input, output) = (unique("restart_in"), unique("restart_out"));
    create_topic_with(&input, 4);
    create_topic_with(&output, 4);
    produce(&input, orders(N, 4)).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("flow.yaml");
    std::fs::write(
        &spec,
        secured_flow(
            &input,
            &output,
            &format!(r#"brokers: ["{}"]"#, kafka_env().brokers),
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let running = Running::start_with(&spec, &["--metrics-addr", &format!("127.0.0.1:{port}")]);
    // Restart the broker as soon as the flow has read its first messages.
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter(port, "dataflow_messages_received_total").await == 0 {
        assert!(Instant::now() < deadline, "the flow never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent_before = counter(port, "dataflow_messages_sent_total").await;
    let started = Instant::now();
    tokio::task::block_in_place(|| services("restart-kafka"));
    eprintln!(
        "broker restarted in {:?}, {sent_before} of {N} messages written before",
        started.elapsed()
    );
    assert!(
        sent_before < N,
        "the restart must land in the middle of the run"
    );
    let _watch = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            eprintln!(
                "DEBUG sent={}",
                counter(port, "dataflow_messages_sent_total").await
            );
        }
    });
    let all = output.clone();
    let ids = tokio::task::spawn_blocking(move || {
        let mut ids = BTreeSet::new();
        let mut seen = 0;
        // The consumer's errors queued during the outage must not hold up the
        // group's rejoin: this took four minutes while each one was backed off.
        consume_until(&all, Duration::from_secs(120), |records: &[Consumed]| {
            for record in &records[seen..] {
                if let Some(id) = serde_json::from_slice::<serde_json::Value>(&record.payload)
                    .ok()
                    .and_then(|v| v.get("id")?.as_u64())
                {
                    ids.insert(id);
                }
            }
            seen = records.len();
            ids.len() as u64 >= N
        });
        ids
    })
    .await
    .unwrap();
    eprintln!("read back {} ids after {:?}", ids.len(), started.elapsed());
    running.stop();
    assert_eq!(ids.len() as u64, N, "every message arrived at least once");
}
