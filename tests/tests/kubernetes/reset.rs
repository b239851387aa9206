//! A position reset through the real API server: the annotation on the
//! DataFlow, the operator's event, status and restarted processor, and the
//! processor's record that it applied the reset, once.

use std::path::Path;
use std::time::Duration;

use dataflow_tests::cluster::{Cluster, wait_for};
use dataflow_tests::kubelet::RunningContainer;
use dataflow_tests::services::{consume, consume_until, produce};
use serde_json::Value;

use super::{WAIT, run_redact_pod};

const RESET: &str = "dataflow.dataflow.io/reset-position";

/// The `redact` flow has moved its 20 records. The pod is stopped (the
/// Deployment's `Recreate` strategy does so before the new one starts), the
/// DataFlow annotated `earliest`: the operator publishes a `PositionReset`
/// event, records the request and gives the processor `--reset-position`; the
/// new pod moves the group back, writes the 20 records again and records the
/// reset as applied. A restart with the annotation still there does not apply
/// it again: one new record is written once. Returns the running processor.
pub(super) fn a_reset_annotation_replays_the_topic_once(
    admin: &Cluster,
    namespace: &str,
    dir: &Path,
    mut processor: RunningContainer,
) -> RunningContainer {
    let (input, output) = (format!("{namespace}-in"), format!("{namespace}-out"));
    processor.stop();
    admin.ok(&[
        "annotate",
        "-n",
        namespace,
        "df",
        "redact",
        &format!("{RESET}=earliest"),
    ]);
    let args = wait_for(
        "the operator to give the processor the reset",
        WAIT,
        || {
            let deployment = admin.get(namespace, "deployment", "dataflow-redact")?;
            let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone();
            args.to_string()
                .contains("--reset-position=earliest")
                .then_some(args)
        },
        || admin.ok(&["get", "-n", namespace, "df", "redact", "-o", "yaml"]),
    );
    let status = admin.get(namespace, "df", "redact").expect("the DataFlow");
    assert_eq!(
        status["status"]["positionReset"]["requested"], "earliest",
        "{status}"
    );
    let events = admin.ok(&["get", "events", "-n", namespace, "-o", "json"]);
    let events: Value = serde_json::from_str(&events).expect("events as JSON");
    assert!(
        events["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|e| e["reason"] == "PositionReset"
                && e["involvedObject"]["name"] == "redact"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("earliest")))),
        "a PositionReset event: {events}"
    );

    let mut replayed = run_redact_pod(
        admin,
        namespace,
        &dir.join("reset"),
        "dataflow-redact-reset",
    );
    let written = consume(&output, 40, Duration::from_secs(60));
    assert_eq!(
        written.len(),
        40,
        "the 20 records once more ({args}): {}",
        replayed.log()
    );
    let applied = wait_for(
        "the processor to record the reset as applied",
        WAIT,
        || {
            let dataflow = admin.get(namespace, "df", "redact")?;
            let reset = dataflow["status"]["positionReset"].clone();
            (reset["applied"] == "earliest").then_some(reset)
        },
        || replayed.log(),
    );
    assert!(
        applied["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&input)),
        "the detail names the topic's partitions: {applied}"
    );

    // A restart, the annotation unchanged: the position is not moved again.
    replayed.stop();
    let restarted = run_redact_pod(
        admin,
        namespace,
        &dir.join("restart"),
        "dataflow-redact-restart",
    );
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(produce(
        &input,
        vec![(0, None, br#"{"id":20,"email":"late@example.com"}"#.to_vec())],
    ));
    let written = consume(&output, 41, Duration::from_secs(60));
    assert_eq!(written.len(), 41, "{}", restarted.log());
    // Give a second replay time to show itself.
    let settled = consume_until(&output, Duration::from_secs(5), |records| {
        records.len() > 41
    });
    assert_eq!(
        settled.len(),
        41,
        "the reset was applied only once: {}",
        restarted.log()
    );
    restarted
}
