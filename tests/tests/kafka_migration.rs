//! What users of the Go original rely on from Kafka, against the real Apache Kafka
//! `make services` starts: a source without a consumer group, and record headers
//! read into metadata, tested by conditions and written again by the sink.

use std::time::{Duration, Instant};

use dataflow_tests::services::{
    Running, committed_total, create_topic, create_topic_with, eventually, kafka_brokers, orders,
    produce, unique,
};
use dataflow_tests::{file_json_lines, write_file};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};

#[tokio::test(flavor = "multi_thread")]
async fn a_kafka_source_without_consumer_group_joins_one_named_after_the_dataflow() {
    const N: u64 = 500;
    let topic = unique("nogroup");
    let name = unique("orders-flow");
    create_topic_with(&topic, 2);
    produce(&topic, orders(N, 2)).await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &format!(
            r#"apiVersion: dataflow.dataflow.io/v1
kind: DataFlow
metadata: {{name: {name}, namespace: team-a}}
spec:
  source:
    type: kafka
    kafka: {{brokers: ["{brokers}"], topic: {topic}}}
  sink:
    type: file
    file: {{path: "{out}"}}
"#,
            brokers = kafka_brokers(),
            out = out.display()
        ),
    );
    let running = Running::start(&spec);
    let group = format!("dataflow-team-a-{name}");
    eventually("every offset committed", Duration::from_secs(60), || {
        let group = group.clone();
        let topic = topic.clone();
        async move {
            let done = tokio::task::spawn_blocking(move || committed_total(&group, &topic))
                .await
                .unwrap();
            (done == N as i64).then_some(())
        }
    })
    .await;
    let log = running.stop();
    assert!(log.contains("written=500"), "{log}");
    assert_eq!(file_json_lines(&out).len(), N as usize);
}

/// One record read back: payload and headers.
struct Received {
    payload: String,
    headers: Vec<(String, Vec<u8>)>,
}

fn read_back(topic: &str, count: usize) -> Vec<Received> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    create_topic(topic);
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while out.len() < count && Instant::now() < deadline {
        if let Some(Ok(record)) = consumer.poll(Duration::from_millis(200)) {
            out.push(Received {
                payload: String::from_utf8_lossy(record.payload().unwrap_or_default()).into_owned(),
                headers: record
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_reach_metadata_steer_conditions_and_are_written_again() {
    let input = unique("with_headers");
    let output = unique("headers_out");
    // One partition each way, so the order read back is the order written.
    create_topic_with(&input, 1);
    create_topic_with(&output, 1);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()
        .unwrap();
    for (id, tenant) in [(1, "acme"), (2, "other"), (3, "acme")] {
        let payload = format!(r#"{{"id":{id},"customer":{{"id":"c{id}"}}}}"#);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "tenant",
                value: Some(tenant.as_bytes()),
            })
            .insert(Header {
                key: "blob",
                value: Some(&[0xff, 0x00, id][..]),
            });
        producer
            .send(
                FutureRecord::<(), String>::to(&input)
                    .payload(&payload)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &format!(
            r#"
source:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {input}}}
transformations:
  - {{type: filter, filter: {{condition: "metadata.headers.tenant == 'acme'"}}}}
  - {{type: timestamp, when: "metadata.headers.tenant == 'nobody'", timestamp: {{fieldName: never}}}}
sink:
  type: kafka
  kafka:
    brokers: ["{brokers}"]
    topic: {output}
    headers: {{tenant: metadata.headers.tenant, blob: metadata.headers.blob, customer: customer.id}}
"#,
            brokers = kafka_brokers()
        ),
    );
    let running = Running::start(&spec);
    let received = tokio::task::spawn_blocking(move || read_back(&output, 2))
        .await
        .unwrap();
    let log = running.stop();
    let payloads: Vec<&str> = received.iter().map(|r| r.payload.as_str()).collect();
    assert_eq!(
        payloads,
        [
            r#"{"id":1,"customer":{"id":"c1"}}"#,
            r#"{"id":3,"customer":{"id":"c3"}}"#
        ],
        "only tenant acme, bytes untouched, no timestamp step ran: {log}"
    );
    for (record, id) in received.iter().zip([1u8, 3]) {
        assert_eq!(
            record.headers,
            [
                ("blob".to_owned(), vec![0xff, 0x00, id]),
                ("customer".to_owned(), format!("c{id}").into_bytes()),
                ("tenant".to_owned(), b"acme".to_vec()),
            ]
        );
    }
}
