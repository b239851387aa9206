//! `/api/v1` of a real processor run: the tap at every point (a step inside a
//! fused run included), its limits (rate, size, clients, a slow client), the
//! masked fields, the recent failures with their position, the live figures,
//! the playground's dry run, the token, the tap off by default in a cluster,
//! and `dataflow tap --spec` / `--url` and `dataflow test`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dataflow_tests::cluster::free_port;
use dataflow_tests::{processor_bin, write_file};
use serde_json::{Value, json};

const TOKEN: &str = "inspect-test-token-0123456789";

/// A generator flow: timestamp, filter, mask, a Python step that raises on
/// orders over 1900, a router, snakeCase.
const FLOW: &str = r#"
metadata: {name: watched}
spec:
  source: {type: generator, generator: {count: 0, template: orders, ratePerSecond: 400}}
  transformations:
    - type: timestamp
    - type: filter
      filter: {condition: "$.active"}
    - type: mask
      mask: {fields: [card]}
    - type: python
      python:
        code: |
          def transform(doc, ctx):
              if doc["totalAmount"] > 1900:
                  raise ValueError("too big")
              return doc
    - type: router
      router:
        routes:
          - condition: "$.level == 'error'"
            sink: {type: file, file: {path: ROUTE}}
    - type: snakeCase
      snakeCase: {deep: true}
  sink: {type: file, file: {path: SINK}}
  errors: {type: file, file: {path: ERRORS}}
  observability:
    maskFields: [customerName, user.email]
"#;

struct Running {
    child: Child,
    base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(flow: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let text = flow
            .replace("ROUTE", &format!("{d}/route.jsonl"))
            .replace("SINK", &format!("{d}/sink.jsonl"))
            .replace("ERRORS", &format!("{d}/errors.jsonl"));
        let spec = write_file(dir.path(), "flow.yaml", &text);
        let port = free_port();
        let mut child = Command::new(processor_bin())
            .args(["run", "--spec"])
            .arg(&spec)
            .arg(format!("--metrics-addr=127.0.0.1:{port}"))
            .env("LOG_LEVEL", "debug")
            .env("DATAFLOW_TAP_TOKEN", TOKEN)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the processor starts");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kept = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut log) = kept.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let running = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let started = Instant::now();
        while plain_http::blocking_get(&format!("{}/healthz", running.base)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{}",
                running.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        running
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare blocking GET for start-up polling (no runtime needed).
mod plain_http {
    pub fn blocking_get(url: &str) -> std::io::Result<()> {
        use std::io::{Read, Write};
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stream = std::net::TcpStream::connect(host)?;
        write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            Err(std::io::Error::other(answer))
        }
    }
}

async fn get(base: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the processor answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Reads the tap at `query` until `count` samples came (or `within` passed);
/// the samples and the `dropped` counts.
async fn tap(base: &str, query: &str, count: usize, within: Duration) -> (Vec<Value>, u64) {
    let mut response = reqwest::Client::new()
        .get(format!("{base}/api/v1/tap?{query}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{query}");
    let mut buffer = String::new();
    let (mut samples, mut dropped) = (Vec::new(), 0);
    let deadline = tokio::time::Instant::now() + within;
    while samples.len() < count {
        let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            _ => break,
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            if block.starts_with("event: sample") {
                samples.push(serde_json::from_str(&data).unwrap());
            } else if block.starts_with("event: dropped") {
                dropped += serde_json::from_str::<Value>(&data).unwrap()["dropped"]
                    .as_u64()
                    .unwrap();
            }
        }
    }
    (samples, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_point_of_a_running_flow_can_be_watched() {
    let running = Running::start(FLOW, &[]);
    let base = &running.base;
    let within = Duration::from_secs(20);
    let (source, _) = tap(base, "at=source&rate=50", 5, within).await;
    assert_eq!(source.len(), 5, "{}", running.log());
    assert!(source[0].get("step").is_none());
    assert_eq!(
        source[0]["payload"]["customerName"], "***",
        "masked where it is shown"
    );
    assert!(
        source[0]["payload"]["card"]
            .as_str()
            .unwrap()
            .starts_with("4111"),
        "the mask step comes later"
    );

    // Inside the first fused run: step 1 (filter) has only active orders, step 2 masks.
    let (filtered, _) = tap(base, "at=step:1&rate=50", 5, within).await;
    assert!(
        filtered
            .iter()
            .all(|s| s["payload"]["active"] == true && s["step"] == 1)
    );
    let (masked, _) = tap(base, "at=step:2&rate=50", 5, within).await;
    assert!(masked.iter().all(|s| {
        s["payload"]["card"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c == '*')
    }));
    assert!(
        masked[0]["payload"].get("created_at").is_some(),
        "timestamp ran before"
    );
    let (python, _) = tap(base, "at=step:3&rate=50", 5, within).await;
    assert!(
        python
            .iter()
            .all(|s| s["payload"]["totalAmount"].as_f64().unwrap() <= 1900.0)
    );
    let (snake, _) = tap(base, "at=step:5&rate=50", 3, within).await;
    assert!(
        snake[0]["payload"].get("customer_name").is_some(),
        "{}",
        snake[0]
    );
    let (sink, _) = tap(base, "at=sink&rate=50", 5, within).await;
    assert!(
        sink.iter()
            .all(|s| s["payload"]["level"] != "error" && s["step"] == 5)
    );
    let (route, _) = tap(base, "at=route:0&rate=50", 2, within).await;
    assert!(
        route
            .iter()
            .all(|s| s["payload"]["level"] == "error" && s["metadata"]["route"] == "0")
    );
    let (errors, _) = tap(base, "at=errors&rate=50", 2, within).await;
    assert_eq!(errors[0]["error"]["type"], "script_error", "{}", errors[0]);
    assert_eq!(errors[0]["step"], 3);
    assert!(
        errors[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too big")
    );

    // The figures add up, per step and sink.
    let (status, figures) = get(base, "/api/v1/figures", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let steps = figures["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 6);
    assert!(steps[3]["failed"].as_u64().unwrap() > 0, "{figures}");
    assert!(steps[1]["in"].as_u64().unwrap() >= steps[1]["out"].as_u64().unwrap());
    assert_eq!(figures["phase"], "running");
    assert_eq!(figures["sinks"][2]["at"], "route:0");

    // The recent failures, newest first, with their type and step.
    let (_, failures) = get(base, "/api/v1/failures", Some(TOKEN)).await;
    let list = failures["failures"].as_array().unwrap();
    assert!(!list.is_empty() && list.len() <= 100);
    assert_eq!(list[0]["type"], "script_error");
    assert_eq!(list[0]["step"], 3);
    assert!(list[0]["seq"].as_u64() > list.last().unwrap()["seq"].as_u64());
    assert_eq!(list[0]["original"]["customerName"], "***");

    // The graph.
    let (_, flow) = get(base, "/api/v1/flow", Some(TOKEN)).await;
    assert_eq!(flow["name"], "watched");
    assert_eq!(flow["steps"][2]["fused"], true);
    assert_eq!(flow["steps"][3]["custom"], true);
    assert_eq!(flow["payloads"], true);

    // No payload ever reaches the log.
    let log = running.log();
    assert!(!log.contains("orderId") && !log.contains("4111"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_taps_limits_hold_and_a_slow_client_slows_nothing() {
    let running = Running::start(FLOW, &[]);
    let base = &running.base;
    // The rate: about 20 a second, not the flow's 400.
    let started = Instant::now();
    let (samples, _) = tap(base, "at=source&rate=20", 60, Duration::from_secs(10)).await;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(samples.len(), 60);
    assert!(seconds > 1.5, "60 samples at 20/s came in {seconds} s");
    // The size limit cuts and says so.
    let (cut, _) = tap(base, "at=source&maxBytes=100", 1, Duration::from_secs(10)).await;
    assert_eq!(cut[0]["cut"], true);
    assert!(cut[0]["payload"].as_str().unwrap().len() <= 100);
    assert!(cut[0]["bytes"].as_u64().unwrap() > 100);

    // Refusals are clear 4xx.
    let client = reqwest::Client::new();
    for (query, status) in [
        ("at=step:6", 400),
        ("at=nowhere", 400),
        ("at=sink&rate=1001", 400),
        ("at=sink&maxBytes=2000000", 400),
    ] {
        let response = client
            .get(format!("{base}/api/v1/tap?{query}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{query}");
    }
    for token in [None, Some("wrong-token-0123456789")] {
        let (status, body) = get(base, "/api/v1/tap?at=sink", token).await;
        assert_eq!(status, 401, "{body}");
    }
    let huge = format!(r#"{{"messages":["{}"]}}"#, "x".repeat(9 * 1024 * 1024));
    let response = client
        .post(format!("{base}/api/v1/dry-run"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);

    // Eight clients at most; a ninth is told to wait.
    let mut held = Vec::new();
    for _ in 0..8 {
        let response = client
            .get(format!("{base}/api/v1/tap?at=source&rate=1000"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        held.push(response);
    }
    let ninth = client
        .get(format!("{base}/api/v1/tap?at=sink"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ninth.status().as_u16(), 429);
    // Eight clients that never read: the flow goes on at its rate. (That a
    // client whose queue is full is told what it lost is
    // `inspect/src/tap/tests.rs`'s: over loopback the kernel and the server's
    // write buffer hold megabytes before the queue fills.)
    let (_, before) = get(base, "/api/v1/figures", Some(TOKEN)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, after) = get(base, "/api/v1/figures", Some(TOKEN)).await;
    let read = after["read"].as_u64().unwrap() - before["read"].as_u64().unwrap();
    assert!(
        read > 1000,
        "the flow kept its pace while no client read: {read} in 4 s"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_runs_messages_in_a_sandbox_only() {
    let running = Running::start(FLOW, &[]);
    let base = &running.base;
    let client = reqwest::Client::new();
    let dry_run = |body: Value| {
        let client = client.clone();
        async move {
            let response = client
                .post(format!("{base}/api/v1/dry-run"))
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let order = |total: f64, level: &str| {
        json!({"orderId": 1, "active": true, "level": level, "customerName": "A B",
        "card": "4111222233334444", "totalAmount": total})
    };
    let (status, body) = dry_run(
        json!({"messages": [order(10.0, "info"), order(2000.0, "info"), order(5.0, "error"),
        {"payload": order(1.0, "info"), "metadata": {"topic": "t"}}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    // The flow's own mask step (three characters without keepLength).
    assert_eq!(results[0]["outputs"][0]["payload"]["card"], "***");
    assert_eq!(results[0]["outputs"][0]["payload"]["customer_name"], "***");
    assert_eq!(results[1]["error"]["type"], "script_error");
    assert_eq!(results[1]["error"]["step"], 3);
    assert_eq!(results[2]["outputs"][0]["route"], 0);
    assert_eq!(results[3]["outputs"][0]["metadata"]["topic"], "t");
    // An edited chain: without the Python step nothing fails.
    let (_, flow) = get(base, "/api/v1/flow", Some(TOKEN)).await;
    let mut edited = flow["transformations"].as_array().unwrap().clone();
    edited.remove(3);
    let (status, body) =
        dry_run(json!({"messages": [order(2000.0, "info")], "transformations": edited})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["results"][0].get("error").is_none());
    // A bad edit names its field.
    let (status, body) = dry_run(json!({"messages": [order(1.0, "info")], "transformations": [{"type": "mask", "mask": {"fields": []}}]})).await;
    assert_eq!(status, 422);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("spec.transformations[0].mask.fields"),
        "{body}"
    );
    // The last sampled messages at a point.
    let _ = tap(base, "at=source&rate=50", 5, Duration::from_secs(10)).await;
    let (status, body) = dry_run(json!({"from": {"at": "source", "last": 3}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 3);
    // Nothing of it reached a sink: the sink file never holds orderId 1 with totalAmount 10.
    let sink = std::fs::read_to_string(running._dir.path().join("sink.jsonl")).unwrap_or_default();
    assert!(!sink.contains("\"total_amount\":10.0") && !sink.contains("\"total_amount\":1.0"));
}

/// The figures name where a Kafka source has committed to, per partition: the
/// last offset of each once every message is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_figures_show_the_committed_kafka_offsets() {
    use dataflow_tests::services::{create_topic_with, kafka_env, orders, produce, unique};
    let topic = unique("inspect-position");
    create_topic_with(&topic, 2);
    produce(&topic, orders(40, 2)).await;
    let flow = format!(
        r#"
metadata: {{name: positioned}}
spec:
  source:
    type: kafka
    kafka: {{brokers: ["{}"], topic: {topic}, consumerGroup: {topic}}}
  sink: {{type: file, file: {{path: SINK}}}}
"#,
        kafka_env().brokers
    );
    let running = Running::start(&flow, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, figures) = get(&running.base, "/api/v1/figures", Some(TOKEN)).await;
        let position = &figures["position"];
        // Twenty records each, at offsets 0 to 19.
        if position[format!("{topic}/0")] == "19" && position[format!("{topic}/1")] == "19" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no committed offset 19 of both partitions in {figures}\n{}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_the_tap_is_off_unless_the_flow_allows_it() {
    let cluster_env = [
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
        ("DATAFLOW_REPORT_STATUS", "false"),
    ];
    let running = Running::start(FLOW, &cluster_env);
    let (status, body) = get(&running.base, "/api/v1/tap?at=sink", Some(TOKEN)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("spec.observability.tap")
    );
    let (status, figures) = get(&running.base, "/api/v1/figures", Some(TOKEN)).await;
    assert_eq!(status, 200, "figures show no payload: {figures}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, failures) = get(&running.base, "/api/v1/failures", Some(TOKEN)).await;
    let first = &failures["failures"][0];
    assert_eq!(first["type"], "script_error", "{failures}");
    assert!(first["original"].is_null(), "{first}");
    drop(running);
    let open = FLOW.replace("  observability:\n", "  observability:\n    tap: true\n");
    let running = Running::start(&open, &cluster_env);
    let (samples, _) = tap(&running.base, "at=sink", 1, Duration::from_secs(20)).await;
    assert_eq!(samples.len(), 1);
}

#[test]
fn dataflow_tap_runs_a_flow_here_and_prints_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        "source: {type: generator, generator: {count: 30, template: counter}}\ntransformations:\n  - type: filter\n    filter: {condition: \"$.id > 9\"}\nsink: {type: stdout}\n",
    );
    let output = Command::new(dataflow_tests::cli_bin())
        .args(["tap", "--spec"])
        .arg(&spec)
        .args(["--at", "step:0", "--rate", "1000"])
        .env("DATAFLOW_PROCESSOR", processor_bin())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<u64> = lines
        .iter()
        .map(|s| s["payload"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (10..30).collect::<Vec<_>>(),
        "the first messages too: the flow waited for the tap"
    );
    let table = Command::new(dataflow_tests::cli_bin())
        .args(["tap", "--spec"])
        .arg(&spec)
        .args([
            "--at", "source", "--rate", "1000", "--table", "--count", "3",
        ])
        .env("DATAFLOW_PROCESSOR", processor_bin())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().next().unwrap().contains("{\"id\":0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataflow_tap_reads_a_running_processor_by_url() {
    let running = Running::start(FLOW, &[]);
    let dir = tempfile::tempdir().unwrap();
    let token = write_file(dir.path(), "token", TOKEN);
    let base = running.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(dataflow_tests::cli_bin())
            .args(["tap", "--url", &base, "--token-file"])
            .arg(&token)
            .args(["--at", "errors", "--count", "2", "--rate", "100"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let first: Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["error"]["type"], "script_error");
    let wrong_dir = tempfile::tempdir().unwrap();
    let wrong = write_file(wrong_dir.path(), "t", "not-the-token-0123456789");
    let refused = Command::new(dataflow_tests::cli_bin())
        .args(["tap", "--url", &running.base, "--token-file"])
        .arg(&wrong)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("the tap refused (401): wrong token"),
        "{stderr}"
    );
}
