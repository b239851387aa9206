//! Moving a flow's position once (`run --reset-position`, which the operator
//! passes from the DataFlow's `dataflow.dataflow.io/reset-position` annotation),
//! against the real Kafka and PostgreSQL of `make services`: Kafka to earliest,
//! explicit offsets, a time and latest; a polling source to a cursor value and to
//! its first row; a CDC source to a new snapshot. A request that does not fit is
//! refused before anything moves, and a request the DataFlow's status shows as
//! applied is not applied again, also by the second replica of a flow that
//! waits while the first applies it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use dataflow_tests::cluster::{Cluster, test_namespace};
use dataflow_tests::jobs::{job_ids, kafka_job, postgres_job, run_job};
use dataflow_tests::services::{
    Running, cdc_slot_created, ch_query, clickhouse_url, committed_total, create_topic_with,
    drop_cdc_slot, eventually, orders, pg_execute, pg_url, produce, unique,
};
use dataflow_tests::{file_json_lines, write_file};
use serde_json::json;

/// Runs the job in `spec` with `args`; returns the ids it wrote to `dir/output`.
async fn ids_after(dir: &Path, spec: &str, output: &str, args: &[&str]) -> Vec<i64> {
    job_ids(dir, spec, &dir.join(output), args).await
}

fn sorted(ids: Vec<i64>) -> Vec<i64> {
    ids.into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn a_kafka_flow_moves_to_earliest_offsets_a_time_and_latest() {
    let topic = unique("reset");
    let group = unique("g");
    create_topic_with(&topic, 1);
    produce(&topic, orders(100, 1)).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = |output: &str| kafka_job(&topic, &group, &dir.path().join(output));
    let d = dir.path();
    let first = ids_after(d, &spec("1.jsonl"), "1.jsonl", &[]).await;
    assert_eq!(first.len(), 100);
    assert!(
        ids_after(d, &spec("2.jsonl"), "2.jsonl", &[])
            .await
            .is_empty()
    );

    let again = ids_after(
        d,
        &spec("3.jsonl"),
        "3.jsonl",
        &["--reset-position", "earliest"],
    )
    .await;
    assert_eq!(sorted(again), (0..100).collect::<Vec<_>>(), "read again");
    assert_eq!(committed_total(&group, &topic), 100);

    let tail = ids_after(
        d,
        &spec("4.jsonl"),
        "4.jsonl",
        &["--reset-position", "offsets:0=90"],
    )
    .await;
    assert_eq!(sorted(tail), (90..100).collect::<Vec<_>>());

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    tokio::time::sleep(Duration::from_millis(200)).await;
    produce(&topic, orders(150, 1).into_iter().skip(100)).await;
    let at = format!("timestamp:{since}");
    let late = ids_after(d, &spec("5.jsonl"), "5.jsonl", &["--reset-position", &at]).await;
    assert_eq!(
        sorted(late),
        (100..150).collect::<Vec<_>>(),
        "only what came after the time"
    );

    // Back to the start, then to the end: nothing is read, the group is at 150.
    let (ok, log) = run_job(d, &spec("6.jsonl"), &["--reset-position", "offsets:0=0"]).await;
    assert!(ok, "{log}");
    let latest = ids_after(
        d,
        &spec("7.jsonl"),
        "7.jsonl",
        &["--reset-position", "latest"],
    )
    .await;
    assert!(latest.is_empty());
    assert_eq!(committed_total(&group, &topic), 150);
}

#[tokio::test]
async fn a_kafka_reset_that_does_not_fit_moves_nothing() {
    let topic = unique("reset_bad");
    let group = unique("g");
    create_topic_with(&topic, 1);
    produce(&topic, orders(20, 1)).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = kafka_job(&topic, &group, &dir.path().join("out.jsonl"));
    let d = dir.path();
    assert_eq!(ids_after(d, &spec, "out.jsonl", &[]).await.len(), 20);

    let (ok, log) = run_job(d, &spec, &["--reset-position", "offsets:3=0"]).await;
    assert!(!ok);
    assert!(log.contains("has no partition 3"), "{log}");
    let (ok, log) = run_job(d, &spec, &["--reset-position", "offsets:0=500"]).await;
    assert!(!ok);
    assert!(
        log.contains("outside partition 0, which holds offsets 0 to 20"),
        "{log}"
    );
    let (ok, log) = run_job(d, &spec, &["--reset-position", "beginning"]).await;
    assert!(!ok);
    assert!(log.contains("a kafka source moves to earliest"), "{log}");
    let (ok, log) = run_job(d, &spec, &["--reset-position", "last week"]).await;
    assert!(!ok);
    assert!(log.contains("use earliest, latest"), "{log}");
    assert_eq!(
        committed_total(&group, &topic),
        20,
        "the group did not move"
    );
}

#[tokio::test]
async fn a_polling_flow_moves_to_a_cursor_value_and_to_its_first_row() {
    let table = unique("reset_rows");
    pg_execute(&format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, note TEXT NOT NULL); \
         INSERT INTO {table} (note) SELECT 'row ' || n FROM generate_series(1, 50) n"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let spec = |output: &str| postgres_job(&table, &dir.path().join(output));
    let d = dir.path();
    assert_eq!(
        ids_after(d, &spec("1.jsonl"), "1.jsonl", &[]).await.len(),
        50
    );
    let after = ids_after(
        d,
        &spec("2.jsonl"),
        "2.jsonl",
        &["--reset-position", "cursor:40"],
    )
    .await;
    assert_eq!(after, (41..=50).collect::<Vec<_>>());
    let all = ids_after(
        d,
        &spec("3.jsonl"),
        "3.jsonl",
        &["--reset-position", "beginning"],
    )
    .await;
    assert_eq!(all, (1..=50).collect::<Vec<_>>());

    let (ok, log) = run_job(
        d,
        &spec("4.jsonl"),
        &["--reset-position", "cursor:forty'; DROP TABLE x"],
    )
    .await;
    assert!(!ok);
    assert!(log.contains("is not a value of column id"), "{log}");
    let unmoved = ids_after(d, &spec("5.jsonl"), "5.jsonl", &[]).await;
    assert!(
        unmoved.is_empty(),
        "the refused reset left the position at the end"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cdc_flow_reads_a_new_snapshot_then_streams_on() {
    let table = unique("reset_cdc");
    let slot = unique("reset_slot");
    pg_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, v text); \
         INSERT INTO {table} SELECT g, 'old' FROM generate_series(1, 30) g"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &format!(
            r#"
source:
  type: postgresql-cdc
  postgresqlCdc: {{connectionString: "{pg}", tables: [public.{table}], slotName: {slot}, snapshotMode: never}}
sink: {{type: file, file: {{path: "{out}"}}}}
"#,
            pg = pg_url(),
            out = out.display()
        ),
    );
    let count = |at_least: usize| {
        let out = out.clone();
        async move {
            eventually(
                &format!("{at_least} events"),
                Duration::from_secs(60),
                || async {
                    let events = if out.exists() {
                        file_json_lines(&out)
                    } else {
                        Vec::new()
                    };
                    (events.len() >= at_least).then_some(events)
                },
            )
            .await
        }
    };
    let running = Running::start(&spec);
    cdc_slot_created(&slot).await;
    pg_execute(&format!("INSERT INTO {table} VALUES (31, 'new')")).await;
    let events = count(1).await;
    assert_eq!(events[0]["op"], "c", "no snapshot without the reset");
    let log = running.stop();

    let running = Running::start_with(&spec, &["--reset-position", "snapshot"]);
    let events = count(32).await;
    pg_execute(&format!("UPDATE {table} SET v = 'newer' WHERE id = 1")).await;
    let events_then = count(33).await;
    let log2 = running.stop();
    let snapshot: BTreeSet<i64> = events[1..32]
        .iter()
        .filter(|e| e["op"] == "r")
        .map(|e| e["after"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        snapshot.len(),
        31,
        "every row in the new snapshot:\n{log}\n{log2}"
    );
    assert_eq!(events_then[32]["op"], "u", "the stream follows");
    assert!(
        log2.contains("position reset") || log2.contains("snapshot"),
        "{log2}"
    );
    drop_cdc_slot(&slot).await;
}

#[test]
fn a_reset_is_recorded_in_the_status_and_the_same_request_is_not_applied_again() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let table = unique("reset_status");
    runtime.block_on(pg_execute(&format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, note TEXT NOT NULL); \
         INSERT INTO {table} (note) SELECT 'row ' || n FROM generate_series(1, 10) n"
    )));
    let dir = tempfile::tempdir().unwrap();
    let admin = Cluster::admin();
    admin.install_crd();
    let namespace = test_namespace(&admin, "reset");
    admin.create_dataflow(
        &namespace,
        "orders",
        &json!({"source": {"type": "stdin"}, "sink": {"type": "stdout"}}),
        &json!({"phase": "Running", "positionReset": {"requested": "cursor:4#1"}}),
    );
    let status = || admin.get(&namespace, "dataflow", "orders").unwrap()["status"].clone();
    let output = dir.path().join("out.jsonl");
    let spec = write_file(
        dir.path(),
        "flow.yaml",
        &format!(
            "execution: {{mode: job}}\nsource:\n  type: postgresql\n  postgresql: {{connectionString: \"{}\", table: {table}}}\nsink: {{type: file, file: {{path: \"{}\"}}}}\n",
            pg_url(),
            output.display()
        ),
    );
    let run_as = |name: &str| {
        let output = std::process::Command::new(dataflow_tests::processor_bin())
            .args(["run", "--spec", spec.to_str().unwrap(), "--name", name])
            .args(["--namespace", &namespace, "--reset-position", "cursor:4#1"])
            .args(["--report-status", "true", "--status-interval-seconds", "1"])
            .env("KUBECONFIG", admin.kubeconfig())
            .env("LOG_LEVEL", "info")
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), log)
    };
    let run_once = || {
        let (ok, log) = run_as("orders");
        assert!(ok, "{log}");
        log
    };

    // A status that cannot be read (no such DataFlow): whether the reset was applied is unknown,
    // so the processor does not start (and moves nothing).
    let (ok, log) = run_as("missing");
    assert!(!ok);
    assert!(log.contains("the DataFlow status cannot be read"), "{log}");
    assert!(!output.exists(), "nothing was read");

    let log = run_once();
    let ids: Vec<i64> = file_json_lines(&output)
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (5..=10).collect::<Vec<_>>(), "{log}");
    let reset = status()["positionReset"].clone();
    assert_eq!(
        reset["requested"], "cursor:4#1",
        "the operator's field is kept"
    );
    assert_eq!(reset["applied"], "cursor:4#1");
    assert!(
        reset["detail"].as_str().unwrap().contains(r#"after "4""#),
        "{reset}"
    );
    assert!(
        reset["appliedTime"].as_str().unwrap().ends_with('Z'),
        "{reset}"
    );

    // The pod restarts with the same argument: the flow reads on from where it is.
    runtime.block_on(pg_execute(&format!(
        "INSERT INTO {table} (note) VALUES ('late')"
    )));
    let log = run_once();
    assert!(log.contains("applied by an earlier start"), "{log}");
    let ids: Vec<i64> = file_json_lines(&output)
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (5..=11).collect::<Vec<_>>(), "only the new row: {log}");
}

/// A ClickHouse job reading `table` (by `id`, else `created_at`) into `output`.
fn clickhouse_job(table: &str, output: &Path) -> String {
    format!(
        "execution: {{mode: job}}\nsource:\n  type: clickhouse\n  clickhouse: {{connectionString: \"{ch}/default\", table: {table}}}\nsink: {{type: file, file: {{path: \"{out}\"}}}}\n",
        ch = clickhouse_url(),
        out = output.display()
    )
}

#[tokio::test]
async fn a_clickhouse_flow_moves_to_an_id_or_a_time_and_refuses_what_the_column_cannot_hold() {
    let by_id = unique("reset_ch_id");
    ch_query(&format!(
        "CREATE TABLE {by_id} (id UInt64, name String) ENGINE = MergeTree() ORDER BY id"
    ))
    .await;
    ch_query(&format!(
        "INSERT INTO {by_id} SELECT number + 1, toString(number + 1) FROM system.numbers LIMIT 20"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = |output: &str| clickhouse_job(&by_id, &d.join(output));
    assert_eq!(
        ids_after(d, &spec("1.jsonl"), "1.jsonl", &[]).await.len(),
        20
    );
    let tail = ids_after(
        d,
        &spec("2.jsonl"),
        "2.jsonl",
        &["--reset-position", "cursor:15"],
    )
    .await;
    assert_eq!(tail, (16..=20).collect::<Vec<_>>());
    let all = ids_after(
        d,
        &spec("3.jsonl"),
        "3.jsonl",
        &["--reset-position", "beginning"],
    )
    .await;
    assert_eq!(all, (1..=20).collect::<Vec<_>>());
    let (ok, log) = run_job(
        d,
        &spec("4.jsonl"),
        &["--reset-position", "cursor:1 OR 1=1"],
    )
    .await;
    assert!(!ok);
    assert!(log.contains("is not an integer id"), "{log}");

    let by_time = unique("reset_ch_time");
    ch_query(&format!(
        "CREATE TABLE {by_time} (created_at DateTime, n UInt32) ENGINE = MergeTree() ORDER BY created_at"
    ))
    .await;
    ch_query(&format!(
        "INSERT INTO {by_time} VALUES ('2026-01-01 00:00:00', 1), ('2026-01-02 00:00:00', 2), ('2026-01-03 00:00:00', 3)"
    ))
    .await;
    let spec = |output: &str| clickhouse_job(&by_time, &d.join(output));
    let (ok, log) = run_job(
        d,
        &spec("5.jsonl"),
        &["--reset-position", "cursor:2026-01-01 12:00:00"],
    )
    .await;
    assert!(ok, "{log}");
    let rows: Vec<u64> = file_json_lines(&d.join("5.jsonl"))
        .iter()
        .map(|r| r["n"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [2, 3], "the rows after the time");
    let (ok, log) = run_job(
        d,
        &spec("6.jsonl"),
        &["--reset-position", "cursor:last tuesday"],
    )
    .await;
    assert!(!ok);
    assert!(log.contains("is not a created_at value"), "{log}");
}

/// Both replicas of a Deployment start with the same `--reset-position`: the
/// group's offsets can be committed only while it has no member, so one applies
/// the reset and joins, and the other, waiting for an empty group, must see the
/// reset applied in the status and read on (not wait out its 60 s and fail).
#[tokio::test]
async fn replicas_of_a_flow_apply_a_kafka_reset_once_and_neither_waits_for_the_other() {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};

    let topic = unique("reset_replicas");
    let group = unique("g");
    create_topic_with(&topic, 4);
    produce(&topic, orders(100, 4)).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let read = ids_after(
        d,
        &kafka_job(&topic, &group, &d.join("0.jsonl")),
        "0.jsonl",
        &[],
    )
    .await;
    assert_eq!(read.len(), 100, "the group is at the end");

    let admin = Cluster::admin();
    admin.install_crd();
    let namespace = test_namespace(&admin, "replicas");
    admin.create_dataflow(
        &namespace,
        "orders",
        &json!({"source": {"type": "stdin"}, "sink": {"type": "stdout"}}),
        &json!({"phase": "Running", "positionReset": {"requested": "earliest"}}),
    );
    // A member holds the group, so both replicas start and wait to commit.
    let holder: BaseConsumer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            dataflow_tests::services::kafka_brokers(),
        )
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    holder.subscribe(&[&topic]).unwrap();
    let joined = std::time::Instant::now();
    while holder.assignment().map_or(0, |a| a.count()) == 0 {
        assert!(
            joined.elapsed() < Duration::from_secs(30),
            "the holder joins"
        );
        let _ = holder.poll(Duration::from_millis(100));
    }
    let kubeconfig = admin.kubeconfig();
    let replica = |n: usize| {
        let spec = write_file(
            d,
            &format!("replica{n}.yaml"),
            &format!(
                "source:\n  type: kafka\n  kafka: {{brokers: [\"{}\"], topic: {topic}, consumerGroup: {group}}}\nsink: {{type: file, file: {{path: \"{}\"}}}}\n",
                dataflow_tests::services::kafka_brokers(),
                d.join(format!("replica{n}.jsonl")).display()
            ),
        );
        Running::start_with_env(
            &spec,
            &[
                "--name",
                "orders",
                "--namespace",
                &namespace,
                "--reset-position",
                "earliest",
                "--report-status",
                "true",
                "--status-interval-seconds",
                "1",
            ],
            &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
        )
    };
    let replicas = [replica(1), replica(2)];
    let waiting = "moving the source's position before reading";
    eventually(
        "both replicas waiting to apply the reset",
        Duration::from_secs(30),
        || {
            let ready = replicas.iter().all(|r| r.log().contains(waiting));
            async move { ready.then_some(()) }
        },
    )
    .await;
    drop(holder);

    // Well inside the 60 s a replica would wait for an empty group.
    let passed = |log: &str| {
        log.contains("position reset") && log.contains("from offset")
            || log.contains("another replica of the flow applied this position reset")
    };
    eventually(
        "both replicas past the reset",
        Duration::from_secs(30),
        || {
            let done = replicas.iter().all(|r| passed(&r.log()));
            async move { done.then_some(()) }
        },
    )
    .await;
    let lines = || {
        (1..=2)
            .flat_map(|n| dataflow_tests::file_json_lines(&d.join(format!("replica{n}.jsonl"))))
            .map(|l| l["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    eventually("the topic read again", Duration::from_secs(30), || {
        let n = lines().len();
        async move { (n >= 100).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ids = lines();
    assert_eq!(sorted(ids.clone()), (0..100).collect::<Vec<_>>());
    assert_eq!(ids.len(), 100, "read once, not once per replica");
    let [first, second] = replicas;
    let logs = [first.stop(), second.stop()];
    assert!(
        logs.iter()
            .all(|log| !log.contains("did not accept the new offsets"))
    );
    let status = admin.get(&namespace, "dataflow", "orders").unwrap()["status"].clone();
    assert_eq!(status["positionReset"]["applied"], "earliest", "{status}");
}
