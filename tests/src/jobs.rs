//! Flows that run to completion, as the tests write and run them: a Kafka topic
//! or a PostgreSQL table into a JSON-lines file, run by the processor binary
//! until it exits by itself.

use std::path::Path;
use std::time::Duration;

use crate::services::{kafka_brokers, pg_url};
use crate::{file_json_lines, processor, write_file};

/// A job reading `topic` in consumer group `group` into the file `output`.
pub fn kafka_job(topic: &str, group: &str, output: &Path) -> String {
    format!(
        r#"
execution: {{mode: job}}
source:
  type: kafka
  kafka: {{brokers: ["{brokers}"], topic: {topic}, consumerGroup: {group}}}
sink: {{type: file, file: {{path: "{output}"}}}}
"#,
        brokers = kafka_brokers(),
        output = output.display()
    )
}

/// A job reading PostgreSQL table `table` into the file `output`.
pub fn postgres_job(table: &str, output: &Path) -> String {
    format!(
        r#"
execution: {{mode: job}}
source:
  type: postgresql
  postgresql: {{connectionString: "{pg}", table: {table}, pollInterval: 3600}}
sink: {{type: file, file: {{path: "{output}"}}}}
"#,
        pg = pg_url(),
        output = output.display()
    )
}

/// Writes `spec` to `dir/flow.yaml` and runs it with `args` after `run --spec`;
/// returns whether it exited 0, and its log. Fails the test after 150 s.
pub async fn run_job(dir: &Path, spec: &str, args: &[&str]) -> (bool, String) {
    let path = write_file(dir, "flow.yaml", spec);
    let mut all = vec!["run".to_owned(), "--spec".to_owned()];
    all.push(path.to_string_lossy().into_owned());
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let output = tokio::time::timeout(
        Duration::from_secs(150),
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            processor(&args, "")
        }),
    )
    .await
    .expect("the job ends by itself")
    .expect("the processor runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs the job, which must exit 0, and returns the `id` of every line it wrote
/// to `output` (none when it wrote no file).
pub async fn job_ids(dir: &Path, spec: &str, output: &Path, args: &[&str]) -> Vec<i64> {
    let (ok, log) = run_job(dir, spec, args).await;
    assert!(ok, "the job exits 0: {log}");
    if !output.exists() {
        return Vec::new();
    }
    file_json_lines(output)
        .iter()
        .map(|line| line["id"].as_i64().expect("an id"))
        .collect()
}
