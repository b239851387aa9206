//! The chart's monitoring: the PodMonitor selects the pods the operator makes for
//! processors, and the PrometheusRule's alerts are evaluated by Prometheus's own
//! rule engine (`promtool test rules`, built by `scripts/services.sh start` from
//! the Go module proxy and named by `DATAFLOW_TEST_PROMTOOL`) over series shaped
//! like the processor's: each alert fires for a flow in trouble and stays quiet
//! for a healthy one.

use std::process::Command;

use serde_json::{Value, json};

mod helm;

use helm::render_chart;

fn monitoring(rule: Value) -> Vec<Value> {
    render_chart(&json!({"metrics": {
        "podMonitor": {"enabled": true},
        "prometheusRule": rule,
    }}))
}

fn the_kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = documents.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

/// A healthy flow (`team/quiet`) and one in every kind of trouble (`team/orders`),
/// minute by minute for 40 minutes, and the alerts expected at minute 30.
const UNIT_TEST: &str = r#"
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'dataflow_messages_received_total{namespace="team",name="orders",source_type="kafka"}'
        values: '0+600x40'
      - series: 'dataflow_task_stage_errors_total{namespace="team",name="orders",stage="transformation",error_type="invalid_data"}'
        values: '0+60x40'
      - series: 'dataflow_messages_received_total{namespace="team",name="quiet",source_type="kafka"}'
        values: '0+600x40'
      - series: 'dataflow_task_stage_errors_total{namespace="team",name="quiet",stage="transformation",error_type="invalid_data"}'
        values: '0+3x40'
      - series: 'dataflow_task_end_to_end_latency_seconds_bucket{namespace="team",name="orders",le="1"}'
        values: '0+0x40'
      - series: 'dataflow_task_end_to_end_latency_seconds_bucket{namespace="team",name="orders",le="60"}'
        values: '0+10x40'
      - series: 'dataflow_task_end_to_end_latency_seconds_bucket{namespace="team",name="orders",le="+Inf"}'
        values: '0+10x40'
      - series: 'dataflow_task_end_to_end_latency_seconds_bucket{namespace="team",name="quiet",le="1"}'
        values: '0+10x40'
      - series: 'dataflow_task_end_to_end_latency_seconds_bucket{namespace="team",name="quiet",le="+Inf"}'
        values: '0+10x40'
      - series: 'dataflow_task_queue_size{namespace="team",name="orders",queue_type="output"}'
        values: '4000x40'
      - series: 'dataflow_task_queue_capacity{namespace="team",name="orders",queue_type="output"}'
        values: '4096x40'
      - series: 'dataflow_task_queue_size{namespace="team",name="quiet",queue_type="output"}'
        values: '100x40'
      - series: 'dataflow_task_queue_capacity{namespace="team",name="quiet",queue_type="output"}'
        values: '4096x40'
      - series: 'dataflow_task_active_messages{namespace="team",name="orders"}'
        values: '100x40'
      - series: 'dataflow_task_operations_total{namespace="team",name="orders",operation="write",status="success"}'
        values: '5x40'
      - series: 'dataflow_task_active_messages{namespace="team",name="quiet"}'
        values: '100x40'
      - series: 'dataflow_task_operations_total{namespace="team",name="quiet",operation="write",status="success"}'
        values: '0+30x40'
      - series: 'dataflow_connector_connection_status{namespace="team",name="orders",connector_type="postgresql",connector_name="sink"}'
        values: '0x40'
      - series: 'dataflow_connector_connection_status{namespace="team",name="quiet",connector_type="postgresql",connector_name="sink"}'
        values: '1x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: DataFlowHighErrorRate
        exp_alerts:
          - exp_labels: {severity: warning, namespace: team, name: orders}
            exp_annotations:
              summary: "DataFlow team/orders: 10% of messages fail"
              description: "More than 5% of the messages read went to the error sink over 5 minutes. The error records say why (errorType, reason)."
      - eval_time: 30m
        alertname: DataFlowHighLatency
        exp_alerts:
          - exp_labels: {severity: warning, namespace: team, name: orders}
            exp_annotations:
              summary: "DataFlow team/orders: p99 end-to-end latency 59.41s"
              description: "The 99th percentile of the time from reading a batch to its being written exceeds 30 s: a slow sink or transformation."
      - eval_time: 30m
        alertname: DataFlowQueueSaturated
        exp_alerts:
          - exp_labels: {severity: warning, namespace: team, name: orders, queue_type: output}
            exp_annotations:
              summary: "DataFlow team/orders: the output queue is 97.66% full"
              description: "A pipeline queue stays nearly full: the stage after it (transformations for `default`, the sinks for `output`) cannot keep up with the source."
      - eval_time: 30m
        alertname: DataFlowNoProgress
        exp_alerts:
          - exp_labels: {severity: critical, namespace: team, name: orders}
            exp_annotations:
              summary: "DataFlow team/orders holds messages but has written nothing for 10 minutes"
              description: "Messages are in flight and no batch reached the sinks. The processor's /livez fails after the DataFlow's progressDeadlineSeconds (default 600 s) and Kubernetes restarts it; if this persists, look at the sink's health and the processor's log."
      - eval_time: 30m
        alertname: DataFlowConnectorDown
        exp_alerts:
          - exp_labels: {severity: warning, namespace: team, name: orders, connector_type: postgresql, connector_name: sink}
            exp_annotations:
              summary: "DataFlow team/orders: postgresql sink unreachable"
              description: "The connector has been failing to reach its server and is retrying with backoff; nothing is lost, but nothing moves."
"#;

/// Runs the unit test above against the rules the chart renders with `rule`
/// values; promtool's verdict and output.
fn promtool_verdict(rule: Value) -> (bool, String) {
    let documents = monitoring(rule);
    let rules = &the_kind(&documents, "PrometheusRule")["spec"];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rules.to_string()).unwrap();
    std::fs::write(dir.path().join("test.yaml"), UNIT_TEST).unwrap();
    let promtool = std::env::var("DATAFLOW_TEST_PROMTOOL").unwrap_or_else(|_| {
        panic!("DATAFLOW_TEST_PROMTOOL is not set: run `make test`, or `eval \"$(scripts/services.sh start)\"` first")
    });
    let output = Command::new(&promtool)
        .current_dir(dir.path())
        .args(["test", "rules", "test.yaml"])
        .output()
        .unwrap_or_else(|e| panic!("running {promtool}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn every_alert_fires_for_a_flow_in_trouble_and_not_for_a_healthy_one() {
    let (passed, output) = promtool_verdict(json!({"enabled": true}));
    assert!(passed, "{output}");
}

#[test]
fn alert_thresholds_come_from_the_values() {
    // At 20% the 10% error rate no longer alerts, and the unit test says so.
    let (passed, output) = promtool_verdict(json!({"enabled": true, "errorRatePercent": 20}));
    assert!(!passed, "{output}");
    assert!(output.contains("DataFlowHighErrorRate"), "{output}");
}

#[test]
fn the_pod_monitor_scrapes_the_processors_the_operator_makes() {
    let documents = monitoring(json!({"enabled": false}));
    assert!(documents.iter().all(|d| d["kind"] != "PrometheusRule"));
    let monitor = the_kind(&documents, "PodMonitor");
    let processor = dataflow_operator::desired::labels("orders");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    for (key, value) in selector {
        assert_eq!(
            processor.get(key).map(String::as_str),
            value.as_str(),
            "processor pods carry {key}"
        );
    }
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(
        endpoint["port"], "metrics",
        "the processor container's port name"
    );
    assert_eq!(
        endpoint["honorLabels"], true,
        "keep the flow's namespace label"
    );
    assert_eq!(monitor["spec"]["namespaceSelector"]["any"], true);
}
