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
    wait_committed(&group, &topic, N as i64).await;
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

/// Record headers: name and bytes.
type HeaderList<'a> = &'a [(&'a str, &'a [u8])];

/// Writes records to `topic` in order, each with a key, the given headers, and a
/// value (`None`: a tombstone).
async fn produce_with_headers(topic: &str, records: &[(Option<&str>, HeaderList<'_>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()
        .unwrap();
    for (payload, headers) in records {
        let headers = headers
            .iter()
            .fold(OwnedHeaders::new(), |all, (key, value)| {
                all.insert(Header {
                    key,
                    value: Some(*value),
                })
            });
        let mut record = FutureRecord::<str, str>::to(topic)
            .key("k")
            .headers(headers);
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap();
    }
}

/// Waits until `group` has committed `count` records of `topic`.
async fn wait_committed(group: &str, topic: &str, count: i64) {
    eventually("every offset committed", Duration::from_secs(60), || {
        let group = group.to_owned();
        let topic = topic.to_owned();
        async move {
            let done = tokio::task::spawn_blocking(move || committed_total(&group, &topic))
                .await
                .unwrap();
            (done == count).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn debezium_events_and_tombstones_from_kafka_become_rows() {
    let topic = unique("cdc");
    let group = unique("cdc-group");
    create_topic_with(&topic, 1);
    let create = r#"{"schema":{"type":"struct"},"payload":{"before":null,"after":{"id":1,"amount":"9.50"},"source":{"table":"orders"},"op":"c"}}"#;
    let delete =
        r#"{"before":{"id":1,"amount":"9.50"},"after":null,"source":{"table":"orders"},"op":"d"}"#;
    let tenant: HeaderList<'_> = &[("tenant", b"acme")];
    produce_with_headers(
        &topic,
        &[
            (Some(create), tenant),
            (Some(delete), tenant),
            (None, tenant),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rows.jsonl");
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &format!(
            r#"
source:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {topic}, consumerGroup: {group}}}
transformations:
  - {{type: debeziumUnwrap, debeziumUnwrap: {{addOp: true, sourceFields: [table]}}}}
  - {{type: headersToPayload, headersToPayload: {{headers: [tenant]}}}}
  - {{type: cast, cast: {{fields: {{amount: float}}}}}}
sink:
  type: file
  file: {{path: "{out}"}}
"#,
            brokers = kafka_brokers(),
            out = out.display()
        ),
    );
    let running = Running::start(&spec);
    // The tombstone is dropped by rule, and its offset is committed all the same.
    wait_committed(&group, &topic, 3).await;
    let log = running.stop();
    let rows = file_json_lines(&out);
    assert_eq!(
        rows,
        [
            serde_json::json!({"id": 1, "amount": 9.5, "__deleted": false, "__op": "c", "source_table": "orders", "tenant": "acme"}),
            serde_json::json!({"id": 1, "amount": 9.5, "__deleted": true, "__op": "d", "source_table": "orders", "tenant": "acme"}),
        ],
        "{log}"
    );
    assert!(
        log.contains("filtered=1") && log.contains("errors=0"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_mode_carries_headers_and_tombstones_in_its_wrapper() {
    let topic = unique("raw_headers");
    let group = unique("raw-group");
    create_topic_with(&topic, 1);
    let headers: HeaderList<'_> = &[("tenant", b"acme"), ("blob", &[0xff, 0x00])];
    produce_with_headers(&topic, &[(Some(r#"{"a":1}"#), headers), (None, headers)]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("raw.jsonl");
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &format!(
            r#"
source:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {topic}, consumerGroup: {group}, rawMode: true}}
sink:
  type: file
  file: {{path: "{out}"}}
"#,
            brokers = kafka_brokers(),
            out = out.display()
        ),
    );
    let running = Running::start(&spec);
    wait_committed(&group, &topic, 2).await;
    let log = running.stop();
    let rows = file_json_lines(&out);
    assert_eq!(rows.len(), 2, "{log}");
    let headers = serde_json::json!({"tenant": "acme", "blob": "base64:/wA="});
    assert_eq!(rows[0]["value"], serde_json::json!({"a": 1}));
    assert_eq!(rows[0]["_metadata"]["headers"], headers);
    assert_eq!(
        rows[1]["value"],
        serde_json::Value::Null,
        "a tombstone is null"
    );
    assert_eq!(rows[1]["_metadata"]["headers"], headers);
    assert_eq!(rows[1]["_metadata"]["key"], "k");
}
