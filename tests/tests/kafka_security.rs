//! Flows against Apache Kafka behind its secured listeners: SASL_SSL with
//! SCRAM-SHA-512, mutual TLS, and refused credentials.

use std::time::Duration;

use dataflow_tests::services::{
    Running, consume, create_topic_with, kafka_env, orders, produce, unique,
};

fn write_spec(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("flow.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

use dataflow_tests::services::secured_flow;

async fn moves_messages_over(security: &str) {
    let (input, output) = (unique("secured_in"), unique("secured_out"));
    create_topic_with(&input, 2);
    create_topic_with(&output, 2);
    produce(&input, orders(500, 2)).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(&dir, &secured_flow(&input, &output, security));
    let running = Running::start(&spec);
    let got = tokio::task::spawn_blocking(move || consume(&output, 500, Duration::from_secs(60)))
        .await
        .unwrap();
    running.stop();
    assert_eq!(got.len(), 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flow_over_sasl_ssl_with_scram() {
    let env = kafka_env();
    moves_messages_over(&format!(
        r#"brokers: ["{}"], tls: {{caFile: "{}"}}, sasl: {{mechanism: scram-sha-512, username: {}, password: "{}"}}"#,
        env.sasl_brokers, env.ca, env.sasl_user, env.sasl_password
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flow_over_mutual_tls() {
    let env = kafka_env();
    moves_messages_over(&format!(
        r#"brokers: ["{}"], tls: {{caFile: "{}", certFile: "{}", keyFile: "{}"}}"#,
        env.mtls_brokers, env.ca, env.client_cert, env.client_key
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_ends_the_flow_with_an_auth_error_and_no_password_in_the_log() {
    let env = kafka_env();
    let topic = unique("secured_in");
    create_topic_with(&topic, 1);
    let wrong = "not-the-password-0123";
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        &dir,
        &format!(
            r#"
source:
  type: kafka
  kafka: {{brokers: ["{}"], topic: {topic}, consumerGroup: g, tls: {{caFile: "{}"}}, sasl: {{mechanism: scram-sha-512, username: {}, password: "{wrong}"}}}}
sink: {{type: stdout}}
"#,
            env.sasl_brokers, env.ca, env.sasl_user
        ),
    );
    let mut running = Running::start(&spec);
    let status = tokio::task::block_in_place(|| running.wait_exit(Duration::from_secs(60)))
        .expect("refused credentials end the flow");
    assert!(!status.success());
    let log = running.log();
    assert!(log.contains("auth_error"), "{log}");
    assert!(
        log.contains(&env.sasl_brokers),
        "the listener is named: {log}"
    );
    assert!(!log.contains(wrong), "no password in the log: {log}");
}
