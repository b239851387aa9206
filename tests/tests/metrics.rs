//! The processor's `/metrics`, `/healthz` and `/readyz`, scraped over HTTP while a
//! flow runs: metric names and labels as `spec/metrics.md` lists them, and counts
//! that add up to what flowed (received = sent + filtered + errors).

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One sample: metric name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Parses Prometheus text format (the subset the exporter writes: no escaped
/// quotes or commas inside label values here).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a numeric value"),
            }
        })
        .collect()
}

/// Sum of the samples of `name` whose labels include every pair of `labels`.
fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

fn has(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> bool {
    samples.iter().any(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// `GET http://addr/path` over a plain socket: status and body.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[test]
fn metrics_count_what_flowed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let vip = dir.path().join("vip.jsonl");
    let failed = dir.path().join("failed.jsonl");
    let spec = dir.path().join("flow.yaml");
    std::fs::write(
        &spec,
        format!(
            r#"
source: {{type: stdin}}
transformations:
  - type: timestamp
  - type: filter
    filter: {{condition: "$.active"}}
  - type: mask
    mask: {{fields: [card]}}
  - type: router
    router:
      routes:
        - condition: "$.vip == true"
          sink: {{type: file, file: {{path: {vip}}}}}
  - type: wasm
    wasm: {{path: {pii}}}
sink: {{type: file, file: {{path: {out}}}}}
errors: {{type: file, file: {{path: {failed}}}}}
"#,
            vip = vip.display(),
            out = out.display(),
            failed = failed.display(),
            pii = dataflow_tests::component("pii_redact").display(),
        ),
    )
    .unwrap();

    // 40 active (10 of them vip), 20 inactive, 5 not JSON: 65 lines.
    let mut input = String::new();
    for i in 0..60 {
        let active = i < 40;
        let vip = i < 10;
        input.push_str(&format!(
            "{{\"id\":{i},\"active\":{active},\"vip\":{vip},\"card\":\"4111111111111111\",\"email\":\"u{i}@example.com\"}}\n"
        ));
    }
    for _ in 0..5 {
        input.push_str("not json\n");
    }

    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Running(
        Command::new(dataflow_tests::processor_bin())
            .args(["run", "--spec", spec.to_str().unwrap()])
            .args(["--name", "orders", "--namespace", "team"])
            .args(["--metrics-addr", &addr])
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.flush().unwrap();

    // Scrape until every line is accounted for (the pipe stays open, so the flow
    // keeps running while we look).
    let deadline = Instant::now() + Duration::from_secs(30);
    let samples = loop {
        if let Some((200, text)) = get(&addr, "/metrics") {
            let samples = parse(&text);
            let received = sum(&samples, "dataflow_messages_received_total", &[]);
            let active = sum(&samples, "dataflow_task_active_messages", &[]);
            if received == 65.0
                && active == 0.0
                && has(&samples, "dataflow_messages_sent_total", &[])
            {
                break samples;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the metrics never showed 65 messages handled"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(get(&addr, "/healthz").map(|r| r.0), Some(200));
    assert_eq!(get(&addr, "/readyz").map(|r| r.0), Some(200));

    let flow = [("namespace", "team"), ("name", "orders")];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        flow.iter().chain(extra).copied().collect()
    };

    // Per flow.
    assert_eq!(
        sum(
            &samples,
            "dataflow_messages_received_total",
            &with(&[("source_type", "stdin")])
        ),
        65.0
    );
    let sent_main = sum(
        &samples,
        "dataflow_messages_sent_total",
        &with(&[("sink_type", "file"), ("route", "default")]),
    );
    let sent_vip = sum(
        &samples,
        "dataflow_messages_sent_total",
        &with(&[("sink_type", "file"), ("route", "route_0")]),
    );
    assert_eq!((sent_main, sent_vip), (30.0, 10.0));
    assert_eq!(
        sum(&samples, "dataflow_status", &with(&[("phase", "Running")])),
        1.0
    );
    assert!(
        sum(
            &samples,
            "dataflow_processing_duration_seconds_count",
            &flow
        ) >= 1.0
    );

    // Transformers: the fused built-ins report each step; the custom component its own.
    let step = |index: &'static str, kind: &'static str, metric: &str| {
        sum(
            &samples,
            metric,
            &with(&[("transformer_index", index), ("transformer_type", kind)]),
        )
    };
    assert_eq!(
        step("0", "timestamp", "dataflow_transformer_messages_in_total"),
        65.0
    );
    assert_eq!(
        step("0", "timestamp", "dataflow_transformer_messages_out_total"),
        60.0
    );
    assert_eq!(
        step("0", "timestamp", "dataflow_transformer_errors_total"),
        5.0,
        "invalid JSON fails at the first step"
    );
    let expected = [
        ("1", "filter", "messages_in", 60.0),
        ("1", "filter", "messages_out", 40.0),
        ("1", "filter", "executions", 60.0),
        ("2", "mask", "messages_out", 40.0),
        ("3", "router", "messages_out", 40.0),
        ("4", "wasm", "messages_in", 40.0),
        ("4", "wasm", "messages_out", 40.0),
    ];
    for (index, kind, metric, count) in expected {
        let name = format!("dataflow_transformer_{metric}_total");
        assert_eq!(step(index, kind, &name), count, "{name} #{index} {kind}");
    }
    assert!(has(
        &samples,
        "dataflow_transformer_duration_seconds_count",
        &with(&[("transformer_index", "0-3")])
    ));
    assert!(has(
        &samples,
        "dataflow_transformer_duration_seconds_count",
        &with(&[("transformer_index", "4"), ("transformer_type", "wasm")])
    ));
    assert_eq!(
        sum(
            &samples,
            "dataflow_transformer_errors_total",
            &with(&[("transformer_index", "0"), ("error_type", "invalid_data")])
        ),
        5.0
    );

    // Connectors.
    assert_eq!(
        sum(
            &samples,
            "dataflow_connector_messages_read_total",
            &with(&[("connector_type", "stdin"), ("connector_name", "source")])
        ),
        65.0
    );
    assert_eq!(
        sum(
            &samples,
            "dataflow_connector_messages_written_total",
            &with(&[("connector_name", "error_sink"), ("connector_type", "file")])
        ),
        5.0
    );
    for name in ["source", "sink", "error_sink", "route_0"] {
        assert_eq!(
            sum(
                &samples,
                "dataflow_connector_connection_status",
                &with(&[("connector_name", name)])
            ),
            1.0,
            "{name}"
        );
    }

    // Task detail.
    let errors = sum(&samples, "dataflow_task_stage_errors_total", &flow);
    assert_eq!(
        sum(
            &samples,
            "dataflow_task_stage_errors_total",
            &with(&[("stage", "transform"), ("error_type", "invalid_data")])
        ),
        5.0
    );
    let filtered = step("1", "filter", "dataflow_transformer_messages_in_total")
        - step("1", "filter", "dataflow_transformer_messages_out_total");
    assert_eq!(
        65.0,
        sent_main + sent_vip + filtered + errors,
        "received = sent + filtered + errors"
    );
    for stage in [
        "read",
        "transformation",
        "write",
        "sink_write",
        "error_sink_write",
    ] {
        assert!(
            sum(
                &samples,
                "dataflow_task_stage_duration_seconds_count",
                &with(&[("stage", stage)])
            ) >= 1.0,
            "stage {stage}"
        );
    }
    // The custom component is its own stage; the fused built-ins share one.
    assert!(
        sum(
            &samples,
            "dataflow_task_stage_duration_seconds_count",
            &with(&[("stage", "transformer_4")])
        ) >= 1.0
    );
    assert!(samples.iter().any(|s| {
        s.name == "dataflow_task_stage_duration_seconds_count"
            && s.labels
                .get("stage")
                .is_some_and(|v| v.starts_with("transformer_0"))
    }));
    for stage in ["input", "output"] {
        let count = sum(
            &samples,
            "dataflow_task_message_size_bytes_count",
            &with(&[("stage", stage)]),
        );
        let total = sum(
            &samples,
            "dataflow_task_message_size_bytes_sum",
            &with(&[("stage", stage)]),
        );
        assert!(
            count >= 1.0 && total / count > 10.0,
            "{stage}: {total} / {count}"
        );
    }
    for (from, to) in [("read", "transformation"), ("transformation", "write")] {
        assert!(has(
            &samples,
            "dataflow_task_stage_latency_seconds_count",
            &with(&[("from_stage", from), ("to_stage", to)])
        ));
    }
    for queue in ["default", "output"] {
        assert!(has(
            &samples,
            "dataflow_task_queue_size",
            &with(&[("queue_type", queue)])
        ));
        assert!(has(
            &samples,
            "dataflow_task_queue_wait_time_seconds_count",
            &with(&[("queue_type", queue)])
        ));
        let capacity = sum(
            &samples,
            "dataflow_task_queue_capacity",
            &with(&[("queue_type", queue)]),
        );
        assert!(capacity >= 4.0, "{queue} queue capacity {capacity}");
    }
    let success = sum(&samples, "dataflow_task_success_rate", &flow);
    assert!((success - 60.0 / 65.0).abs() < 1e-9, "{success}");
    assert!(
        sum(
            &samples,
            "dataflow_task_end_to_end_latency_seconds_count",
            &flow
        ) >= 1.0
    );
    assert!(has(
        &samples,
        "dataflow_task_throughput_messages_per_second",
        &flow
    ));
    assert!(
        sum(
            &samples,
            "dataflow_task_operations_total",
            &with(&[("operation", "transform")])
        ) >= 1.0
    );

    dashboard_queries_only_known_metrics(&samples);

    // End of input: the flow finishes and its files agree with the metrics.
    drop(stdin);
    let status = child.0.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("processed=65 written=40 filtered=20 errors=5"),
        "{stderr}"
    );
    let lines = |path: &std::path::Path| std::fs::read_to_string(path).unwrap().lines().count();
    assert_eq!((lines(&out), lines(&vip), lines(&failed)), (30, 10, 5));
}

/// A taken metrics port fails the start with a message naming the address,
/// instead of running a flow nobody can observe.
#[test]
fn a_taken_metrics_port_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("flow.yaml");
    std::fs::write(&spec, "source: {type: stdin}\nsink: {type: stdout}\n").unwrap();
    let output = dataflow_tests::processor(
        &[
            "run",
            "--spec",
            spec.to_str().unwrap(),
            "--metrics-addr",
            &addr,
        ],
        "",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
}

#[test]
fn livez_fails_while_input_waits_on_a_stuck_step_and_recovers_after() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("flow.yaml");
    // The component spins on the evil message until its 6 s time limit: input waits
    // with no batch handled for longer than the 1 s stall limit.
    std::fs::write(
        &spec,
        format!(
            r#"
source: {{type: stdin}}
transformations:
  - type: wasm
    wasm: {{path: {hostile}, config: {{mode: loop}}, limits: {{timeoutMs: 6000}}}}
sink: {{type: stdout}}
"#,
            hostile = dataflow_tests::component("dataflow_test_components").display(),
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Running(
        Command::new(dataflow_tests::processor_bin())
            .args(["run", "--spec", spec.to_str().unwrap()])
            .args(["--metrics-addr", &addr, "--stall-seconds", "1"])
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let wait_for = |want: u16, within: Duration| -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some((status, body)) = get(&addr, "/livez")
                && status == want
            {
                return body;
            }
            assert!(Instant::now() < deadline, "/livez never answered {want}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(200, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(get(&addr, "/livez").map(|r| r.0), Some(200), "idle is live");
    let mut stdin = child.0.stdin.take().unwrap();
    stdin.write_all(b"{\"evil\":true}\n").unwrap();
    stdin.flush().unwrap();
    let reason = wait_for(503, Duration::from_secs(5));
    assert!(reason.starts_with("stalled: input has waited"), "{reason}");
    assert_eq!(get(&addr, "/healthz").map(|r| r.0), Some(200));
    // The time limit fails the message; the batch is handled and the flow is live.
    wait_for(200, Duration::from_secs(15));
    drop(stdin);
}

/// Metrics that exist only once their event happened (a sandbox limit hit, a
/// connector failure), so a clean run cannot show them.
const EVENT_ONLY: [&str; 4] = [
    "dataflow_wasm_instance_rebuilds_total",
    "dataflow_wasm_interruptions_total",
    "dataflow_wasm_memory_limit_hits_total",
    "dataflow_connector_errors_total",
];

/// Every metric the Grafana dashboard queries is one the processor exports.
fn dashboard_queries_only_known_metrics(samples: &[Sample]) {
    let path =
        dataflow_tests::workspace().join("charts/dataflow-operator/dashboards/dataflow.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let names = regex::Regex::new(r"dataflow_[a-z_]+").unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for name in names.find_iter(expr).map(|m| m.as_str()) {
                queried += 1;
                let exported = samples.iter().any(|s| s.name == name);
                assert!(
                    exported || EVENT_ONLY.contains(&name),
                    "panel {:?} queries {name}, which the processor does not export",
                    panel["title"]
                );
            }
        }
    }
    assert!(
        queried >= 20,
        "only {queried} metric references in the dashboard"
    );
}
