//! Avro on Kafka: a static schema, and Confluent Schema Registry framing.
//!
//! The broker is the real one from `make services`. No Schema Registry can run
//! here, so the registry is an in-process HTTP server that answers the Confluent
//! REST call the processor makes (`GET /schemas/ids/{id}` -> `{"schema": "..."}`,
//! 404 with `{"error_code":40403,...}` for unknown ids, 401 without the right basic
//! auth), and counts requests so the test can check schemas are cached.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::types::{Record, Value as Avro};
use dataflow_tests::services::{Running, create_topic, eventually, kafka_brokers, produce, unique};
use serde_json::{Value, json};

const SCHEMA: &str = r#"{"type":"record","name":"Order","fields":[
    {"name":"id","type":"long"},
    {"name":"customer","type":"string"},
    {"name":"amount","type":"double"},
    {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
    {"name":"coupon","type":["null","string"],"default":null}]}"#;

fn datum(id: i64, coupon: Option<&str>) -> Vec<u8> {
    let schema = Schema::parse_str(SCHEMA).unwrap();
    let mut record = Record::new(&schema).unwrap();
    record.put("id", id);
    record.put("customer", format!("c{id}"));
    record.put("amount", id as f64 * 1.25);
    record.put("status", Avro::Enum(1, "PAID".into()));
    record.put(
        "coupon",
        match coupon {
            Some(c) => Avro::Union(1, Box::new(Avro::String(c.into()))),
            None => Avro::Union(0, Box::new(Avro::Null)),
        },
    );
    #[allow(deprecated)]
    apache_avro::to_avro_datum(&schema, record).unwrap()
}

fn framed(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

fn run_flow(topic: &str, kafka_extra: &str, expected_lines: usize) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let errors = dir.path().join("errors.jsonl");
    let spec = dir.path().join("flow.yaml");
    std::fs::write(
        &spec,
        format!(
            r#"
source:
  type: kafka
  kafka:
    brokers: ["{brokers}"]
    topic: {topic}
    consumerGroup: {group}
    format: avro
{kafka_extra}
sink:
  type: file
  file: {{path: "{out}"}}
errors:
  type: file
  file: {{path: "{errors}"}}
"#,
            brokers = kafka_brokers(),
            group = unique("g"),
            out = out.display(),
            errors = errors.display(),
        ),
    )
    .unwrap();
    let running = Running::start(&spec);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(eventually("output", Duration::from_secs(30), || async {
        let lines = std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .count()
            + std::fs::read_to_string(&errors)
                .unwrap_or_default()
                .lines()
                .count();
        (lines >= expected_lines).then_some(())
    }));
    running.stop();
    let mut all = dataflow_tests::json_lines(&std::fs::read_to_string(&out).unwrap_or_default());
    all.extend(dataflow_tests::json_lines(
        &std::fs::read_to_string(&errors).unwrap_or_default(),
    ));
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn static_schema() {
    let topic = unique("avro_static");
    create_topic(&topic);
    produce(
        &topic,
        [
            (0, None, datum(1, Some("SPRING"))),
            (0, None, vec![0xff, 0x01]),
            (0, None, datum(2, None)),
        ],
    )
    .await;
    let schema = SCHEMA.replace('\n', " ");
    let out = tokio::task::spawn_blocking(move || {
        run_flow(&topic, &format!("    avroSchema: '{schema}'"), 3)
    })
    .await
    .unwrap();
    assert_eq!(
        out[0],
        json!({"id": 1, "customer": "c1", "amount": 1.25, "status": "PAID", "coupon": "SPRING"})
    );
    assert_eq!(out[1]["id"], 2);
    assert_eq!(out[1]["coupon"], Value::Null);
    assert_eq!(out[2]["error"]["type"], "invalid_data");
    assert_eq!(out[2]["error"]["stage"], "read");
    assert!(
        out[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid Avro data")
    );
}

/// Serves `GET /schemas/ids/7` with basic auth `user:secret`.
fn fake_registry(requests: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut authorized = false;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                // base64("user:secret")
                if header.to_ascii_lowercase().starts_with("authorization:")
                    && header.contains("Basic dXNlcjpzZWNyZXQ=")
                {
                    authorized = true;
                }
            }
            requests.fetch_add(1, Ordering::SeqCst);
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let (status, body) = if !authorized {
                (
                    "401 Unauthorized",
                    json!({"error_code": 401, "message": "Unauthorized"}),
                )
            } else if path == "/schemas/ids/7" {
                ("200 OK", json!({"schema": SCHEMA}))
            } else {
                (
                    "404 Not Found",
                    json!({"error_code": 40403, "message": "Schema not found"}),
                )
            };
            let body = body.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_registry_framing_with_cache_and_auth() {
    let requests = Arc::new(AtomicUsize::new(0));
    let url = fake_registry(requests.clone());
    let topic = unique("avro_registry");
    create_topic(&topic);
    let mut records: Vec<(i32, Option<String>, Vec<u8>)> = (1..=20)
        .map(|id| (0, None, framed(7, &datum(id, None))))
        .collect();
    records.push((0, None, framed(99, &datum(21, None))));
    records.push((0, None, datum(22, None))); // no framing
    produce(&topic, records).await;
    let extra = format!(
        "    schemaRegistry:\n      url: {url}\n      basicAuth: {{username: user, password: secret}}"
    );
    let out = tokio::task::spawn_blocking(move || run_flow(&topic, &extra, 22))
        .await
        .unwrap();
    let decoded: Vec<&Value> = out.iter().filter(|v| v.get("error").is_none()).collect();
    assert_eq!(decoded.len(), 20);
    assert_eq!(decoded[19]["customer"], "c20");
    let errors: Vec<&Value> = out.iter().filter(|v| v.get("error").is_some()).collect();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("404"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("framing"),
        "{}",
        errors[1]
    );
    // Schema 7 fetched once, schema 99 once.
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}
