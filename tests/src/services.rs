//! The real servers `make services` starts (PostgreSQL, ClickHouse, Apache Kafka),
//! and small clients for arranging and checking test data on them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};

use crate::{processor_bin, workspace};

/// The value of a variable `scripts/services.sh start` exports; panics naming it when unset.
pub(crate) fn service_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: start the test servers with `eval \"$(scripts/services.sh start)\"` (make test does this)"
        ),
    }
}

/// Bootstrap address of the test broker's plaintext listener.
pub fn kafka_brokers() -> String {
    service_env("DATAFLOW_TEST_KAFKA_BROKERS")
}

/// How to reach the test broker's secured listeners.
#[derive(Debug, Clone)]
pub struct KafkaEnv {
    /// The plaintext listener.
    pub brokers: String,
    /// The SASL_SSL listener (SCRAM-SHA-512).
    pub sasl_brokers: String,
    /// Its SCRAM user.
    pub sasl_user: String,
    /// Its SCRAM password.
    pub sasl_password: String,
    /// The SSL listener that requires client certificates.
    pub mtls_brokers: String,
    /// The CA that signed the broker's and the client's certificates (PEM file).
    pub ca: String,
    /// A client certificate (PEM file).
    pub client_cert: String,
    /// Its key (PEM file).
    pub client_key: String,
}

/// The test broker's listeners and credentials, from `make services`.
pub fn kafka_env() -> KafkaEnv {
    KafkaEnv {
        brokers: kafka_brokers(),
        sasl_brokers: service_env("DATAFLOW_TEST_KAFKA_SASL_BROKERS"),
        sasl_user: service_env("DATAFLOW_TEST_KAFKA_SASL_USER"),
        sasl_password: service_env("DATAFLOW_TEST_KAFKA_SASL_PASSWORD"),
        mtls_brokers: service_env("DATAFLOW_TEST_KAFKA_MTLS_BROKERS"),
        ca: service_env("DATAFLOW_TEST_KAFKA_CA"),
        client_cert: service_env("DATAFLOW_TEST_KAFKA_CLIENT_CERT"),
        client_key: service_env("DATAFLOW_TEST_KAFKA_CLIENT_KEY"),
    }
}

/// The test Schema Registry (Apicurio, Confluent REST API), from `make services`.
#[derive(Debug, Clone)]
pub struct SchemaRegistryEnv {
    /// Base URL of its Confluent API over HTTP (`.../apis/ccompat/v6`).
    pub url: String,
    /// The same over HTTPS.
    pub tls_url: String,
    /// The CA that signed its HTTPS certificate (PEM file).
    pub ca: String,
}

/// Where the test Schema Registry answers.
pub fn schema_registry_env() -> SchemaRegistryEnv {
    SchemaRegistryEnv {
        url: service_env("DATAFLOW_TEST_SCHEMA_REGISTRY_URL"),
        tls_url: service_env("DATAFLOW_TEST_SCHEMA_REGISTRY_TLS_URL"),
        ca: service_env("DATAFLOW_TEST_SCHEMA_REGISTRY_CA"),
    }
}

/// URL of the test PostgreSQL server.
pub fn pg_url() -> String {
    service_env("DATAFLOW_TEST_PG_URL")
}

/// A name no other test run uses (`prefix_<pid>_<n>`), safe as topic, group or table.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates `topic` with `partitions` partitions through the broker's admin API,
/// and waits until clients see it.
pub fn create_topic_with(topic: &str, partitions: usize) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()
        .expect("admin client");
    let count = i32::try_from(partitions).expect("partition count");
    let new = NewTopic::new(topic, count, TopicReplication::Fixed(1));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // A broker that has just (re)started may refuse for a moment.
        let outcome = futures::executor::block_on(admin.create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ));
        let refused = match outcome {
            Ok(results) => results
                .into_iter()
                .find_map(Result::err)
                .map(|(_, code)| code.to_string()),
            Err(e) => Some(e.to_string()),
        };
        match refused {
            None => break,
            Some(reason) if Instant::now() < deadline => {
                eprintln!("creating topic {topic}: {reason}; trying again");
                std::thread::sleep(Duration::from_millis(500));
            }
            Some(reason) => panic!("cannot create topic {topic}: {reason}"),
        }
    }
    assert_eq!(create_topic(topic), partitions);
}

/// A Kafka -> Kafka flow reading `input` and writing `output` over `security`
/// (the YAML of the brokers, tls and sasl settings, the same for source and sink).
pub fn secured_flow(input: &str, output: &str, security: &str) -> String {
    format!(
        r#"
source:
  type: kafka
  kafka: {{topic: {input}, consumerGroup: {group}, {security}}}
sink:
  type: kafka
  kafka: {{topic: {output}, {security}}}
"#,
        group = unique("g")
    )
}

/// `n` JSON records `{"id": i, "partition": p}` spread over `partitions`, keyed `k<i>`.
pub fn orders(n: u64, partitions: i32) -> Vec<(i32, Option<String>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let partition = i32::try_from(i % u64::try_from(partitions).unwrap_or(1)).unwrap_or(0);
            (
                partition,
                Some(format!("k{i}")),
                format!(r#"{{"id":{i},"partition":{partition}}}"#).into_bytes(),
            )
        })
        .collect()
}

/// Makes the broker create `topic` by asking for it (topics are created on first
/// use, with four partitions) and returns its partition count once every
/// partition has a leader.
pub fn create_topic(topic: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("allow.auto.create.topics", "true")
        .create()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))
            && let Some(t) = metadata.topics().first()
            && t.error().is_none()
            && !t.partitions().is_empty()
            && t.partitions()
                .iter()
                .all(|p| p.leader() >= 0 && p.error().is_none())
        {
            return t.partitions().len();
        }
        assert!(Instant::now() < deadline, "topic {topic} was not created");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Produces `(partition, key, payload)` records and waits for every delivery.
pub async fn produce(
    topic: &str,
    records: impl IntoIterator<Item = (i32, Option<String>, Vec<u8>)>,
) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let mut pending = Vec::new();
    for (partition, key, payload) in records {
        let mut record = FutureRecord::<String, Vec<u8>>::to(topic)
            .partition(partition)
            .payload(&payload);
        if let Some(key) = &key {
            record = record.key(key);
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((_, back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        if pending.len() >= 10_000 {
            for delivery in pending.drain(..) {
                delivery.await.expect("delivery").expect("delivered");
            }
        }
    }
    for delivery in pending {
        delivery.await.expect("delivery").expect("delivered");
    }
}

/// The sum of the offsets consumer group `group` has committed on `topic`: how
/// many of the topic's records it has marked done.
pub fn committed_total(group: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut partitions = rdkafka::TopicPartitionList::new();
    for partition in 0..create_topic(topic) {
        partitions.add_partition(topic, i32::try_from(partition).expect("partition"));
    }
    // Right after a group first commits, its coordinator may still be moving:
    // report nothing committed yet and let the caller ask again.
    let Ok(committed) = consumer.committed_offsets(partitions, Duration::from_secs(10)) else {
        return -1;
    };
    committed
        .elements()
        .iter()
        .filter_map(|element| match element.offset() {
            rdkafka::Offset::Offset(offset) => Some(offset),
            _ => None,
        })
        .sum()
}

/// A consumed record.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// Partition.
    pub partition: i32,
    /// Key as text.
    pub key: Option<String>,
    /// Value.
    pub payload: Vec<u8>,
}

/// Reads `topic` from the start until `count` records arrived (or `timeout`).
pub fn consume(topic: &str, count: usize, timeout: Duration) -> Vec<Consumed> {
    consume_until(topic, timeout, |records| records.len() >= count)
}

/// Reads `topic` from the start until `done` holds for what arrived (or `timeout`).
pub fn consume_until(
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&[Consumed]) -> bool,
) -> Vec<Consumed> {
    // Every partition assigned directly, from its start: no consumer group to join,
    // so reading back works at once, also right after a broker restart.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", unique("checker"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let partitions = create_topic(topic);
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        let partition = i32::try_from(partition).expect("partition");
        assignment
            .add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while !done(&out) && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            out.push(Consumed {
                partition: message.partition(),
                key: message
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: message.payload().unwrap_or_default().to_vec(),
            });
        }
    }
    out
}

/// HTTP address of the test ClickHouse server (`http://127.0.0.1:18123`).
pub fn clickhouse_url() -> String {
    service_env("DATAFLOW_TEST_CLICKHOUSE_URL")
}

/// Runs one SQL statement on the test ClickHouse server over HTTP; returns the
/// response body (`FORMAT TSV` unless the statement says otherwise).
pub async fn ch_query(sql: &str) -> String {
    let response = reqwest::Client::new()
        .post(clickhouse_url())
        .body(sql.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "{sql}: {status} {body}");
    body
}

/// A pool on the test PostgreSQL server.
pub async fn pg() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&pg_url())
        .await
        .expect("connect to the test PostgreSQL")
}

/// Waits until a CDC flow has created replication slot `slot` (it reads changes
/// from then on).
pub async fn cdc_slot_created(slot: &str) {
    let pool = pg().await;
    eventually("the slot", Duration::from_secs(30), || async {
        let found: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1")
                .bind(slot)
                .fetch_one(&pool)
                .await
                .ok()?;
        (found == 1).then_some(())
    })
    .await;
}

/// Drops the slot and the publication a CDC test made. The processor has
/// stopped, but the server backend that served its last read may still hold the
/// slot until it notices: that backend is ended first, and the drop tried again
/// until the slot is free (30 s at most).
pub async fn drop_cdc_slot(slot: &str) {
    let pool = pg().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = sqlx::query(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE slot_name = $1 AND active_pid IS NOT NULL",
        )
        .bind(slot)
        .execute(&pool)
        .await;
        let dropped = sqlx::query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(slot)
        .execute(&pool)
        .await;
        match dropped {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("dropping slot {slot}: {e}; trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot drop slot {slot}: {e}"),
        }
    }
    pg_execute(&format!("DROP PUBLICATION IF EXISTS {slot}")).await;
}

/// Runs SQL text (several statements allowed) on the test server.
pub async fn pg_execute(sql: &str) {
    use sqlx::Executor;
    let pool = pg().await;
    pool.execute(sqlx::AssertSqlSafe(sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs `scripts/services.sh` with `action`.
pub fn services(action: &str) {
    let status = Command::new(workspace().join("scripts/services.sh"))
        .arg(action)
        .stdout(Stdio::null())
        .status()
        .expect("scripts/services.sh runs");
    assert!(status.success(), "scripts/services.sh {action} failed");
}

/// A processor started in the background on a spec file.
pub struct Running {
    child: Child,
    /// The spec file.
    pub spec: PathBuf,
    log: PathBuf,
}

impl Running {
    /// Starts `dataflow-processor run --spec <spec>`; its output goes to `<spec>.log`.
    pub fn start(spec: &Path) -> Self {
        Self::start_with(spec, &[])
    }

    /// Like [`Running::start`], with more arguments for `run`.
    pub fn start_with(spec: &Path, args: &[&str]) -> Self {
        Self::start_with_env(spec, args, &[])
    }

    /// Like [`Running::start_with`], with more environment variables.
    pub fn start_with_env(spec: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = spec.with_extension(format!("{}.log", std::process::id()));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(processor_bin())
            .args(["run", "--spec"])
            .arg(spec)
            .args(args)
            .env("LOG_LEVEL", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("the processor binary runs (build it with `make build`)");
        Self {
            child,
            spec: spec.to_owned(),
            log,
        }
    }

    /// SIGKILL, no chance to flush or commit.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit; returns the log.
    pub fn stop(mut self) -> String {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().expect("wait for the processor");
        let log = self.log();
        assert!(status.success(), "processor exited with {status}:\n{log}");
        log
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }

    /// Waits up to `timeout` for the processor to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Everything the processor printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
