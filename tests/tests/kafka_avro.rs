//! Avro on Kafka: a static schema, and Confluent Schema Registry framing.
//!
//! The broker and the Schema Registry are the real ones from `make services`
//! (Apache Kafka, and Apicurio Registry's Confluent-compatible API over HTTP and
//! HTTPS): the test registers its schema, and the processor looks ids up there;
//! the registry's own request counter shows that schemas are cached. Apicurio
//! 2.0 authenticates only through OpenID Connect, so basic authentication (the
//! `Authorization` header the processor sends, and a 401 without it) is checked
//! against a small in-process server that speaks the same API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::types::{Record, Value as Avro};
use dataflow_tests::services::{
    Running, create_topic, eventually, kafka_brokers, produce, schema_registry_env, unique,
};
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

/// Serves `GET /schemas/ids/7` with basic auth `user:secret`: the test registry
/// has no basic authentication to check it against (see the module comment).
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

/// Registers [`SCHEMA`] under `subject` in the registry at `url`; returns its id.
async fn register(url: &str, subject: &str) -> u32 {
    let response = reqwest::Client::new()
        .post(format!("{url}/subjects/{subject}/versions"))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .json(&json!({ "schema": SCHEMA }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = response.json().await.unwrap();
    u32::try_from(body["id"].as_u64().unwrap()).unwrap()
}

/// A TCP relay to the registry at `url` that counts the requests passing through
/// it; returns the relay's base URL. (The registry has no reliable counter of
/// its own; this one lets the test see which lookups the processor cached.)
fn counting_relay(url: &str, requests: Arc<AtomicUsize>) -> String {
    let target = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let path = url
        .trim_start_matches("http://")
        .trim_start_matches(&target)
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let Ok(mut server) = std::net::TcpStream::connect(&target) else {
                continue;
            };
            let (mut client_in, mut server_out) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let requests = requests.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 8192];
                while let Ok(n @ 1..) = client_in.read(&mut buffer) {
                    // Requests are small GETs: each begins a read.
                    if buffer[..n].starts_with(b"GET ") {
                        requests.fetch_add(1, Ordering::SeqCst);
                    }
                    if server_out.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server, &mut client);
            });
        }
    });
    format!("http://{address}{path}")
}

/// 20 records framed with a registered id, one with an id the registry does not
/// know, one without framing.
async fn framed_topic(prefix: &str, id: u32) -> String {
    let topic = unique(prefix);
    create_topic(&topic);
    let mut records: Vec<(i32, Option<String>, Vec<u8>)> = (1..=20)
        .map(|n| (0, None, framed(id, &datum(n, None))))
        .collect();
    records.push((0, None, framed(id + 100_000, &datum(21, None))));
    records.push((0, None, datum(22, None))); // no framing
    produce(&topic, records).await;
    topic
}

/// Checks what [`framed_topic`]'s records became.
fn check_framed(out: &[Value]) {
    let decoded: Vec<&Value> = out.iter().filter(|v| v.get("error").is_none()).collect();
    assert_eq!(decoded.len(), 20);
    assert_eq!(
        *decoded[19],
        json!({"id": 20, "customer": "c20", "amount": 25.0, "status": "PAID", "coupon": null})
    );
    let errors: Vec<&Value> = out.iter().filter(|v| v.get("error").is_some()).collect();
    assert_eq!(errors.len(), 2);
    let message = |i: usize| errors[i]["error"]["message"].as_str().unwrap().to_owned();
    assert!(message(0).contains("404"), "{}", errors[0]);
    assert!(message(1).contains("framing"), "{}", errors[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_registry_framing_with_cache_over_http_and_https() {
    let registry = schema_registry_env();
    let id = register(&registry.url, &unique("orders-value")).await;

    let topic = framed_topic("avro_registry", id).await;
    let requests = Arc::new(AtomicUsize::new(0));
    let relay = counting_relay(&registry.url, requests.clone());
    let extra = format!("    schemaRegistry:\n      url: {relay}");
    let out = tokio::task::spawn_blocking(move || run_flow(&topic, &extra, 22))
        .await
        .unwrap();
    check_framed(&out);
    // The registered schema fetched once for 20 records, the unknown id once.
    assert_eq!(requests.load(Ordering::SeqCst), 2);

    // The same over HTTPS, trusting the registry's CA.
    let topic = framed_topic("avro_registry_tls", id).await;
    let extra = format!(
        "    schemaRegistry:\n      url: {}\n      tls: {{caFile: \"{}\"}}",
        registry.tls_url, registry.ca
    );
    let out = tokio::task::spawn_blocking(move || run_flow(&topic, &extra, 22))
        .await
        .unwrap();
    check_framed(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_registry_basic_auth() {
    let requests = Arc::new(AtomicUsize::new(0));
    let url = fake_registry(requests.clone());
    let topic = unique("avro_registry_auth");
    create_topic(&topic);
    let records: Vec<(i32, Option<String>, Vec<u8>)> = (1..=3)
        .map(|id| (0, None, framed(7, &datum(id, None))))
        .collect();
    produce(&topic, records).await;
    let auth = |password: &str| {
        format!(
            "    schemaRegistry:\n      url: {url}\n      basicAuth: {{username: user, password: {password}}}"
        )
    };
    let (t, extra) = (topic.clone(), auth("secret"));
    let out = tokio::task::spawn_blocking(move || run_flow(&t, &extra, 3))
        .await
        .unwrap();
    assert!(out.iter().all(|v| v.get("error").is_none()), "{out:?}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "fetched once, then cached"
    );

    let extra = auth("wrong");
    let out = tokio::task::spawn_blocking(move || run_flow(&topic, &extra, 3))
        .await
        .unwrap();
    let message = out[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("401"), "{out:?}");
    assert!(
        !message.contains("wrong"),
        "no password in the error: {message}"
    );
}
