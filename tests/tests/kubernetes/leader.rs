//! Leader election on the real Lease API: of two operator replicas one
//! reconciles, and the other takes over when it goes.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use dataflow_tests::cluster::{Cluster, free_port, wait_for};
use dataflow_tests::kubelet::RunningContainer;
use serde_json::Value;

use super::{RELEASE, SYSTEM, WAIT, start_operator};

const LEASE: &str = "dataflow-operator.dataflow.io";
const FIRST: &str = "dataflow-7d9f-test";
const SECOND: &str = "dataflow-7d9f-second";

/// The operator replicas (`reportingInstance`) that published events about
/// the DataFlow `name`.
fn reporters(admin: &Cluster, namespace: &str, name: &str) -> BTreeSet<String> {
    let events = admin.ok(&["get", "events", "-n", namespace, "-o", "json"]);
    let events: Value = serde_json::from_str(&events).expect("events as JSON");
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| e["reportingInstance"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn holder(admin: &Cluster) -> Option<String> {
    admin
        .get(SYSTEM, "lease", LEASE)
        .and_then(|lease| lease["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

/// `first` (pod `dataflow-7d9f-test`) holds the Lease. A second replica
/// started beside it waits and reconciles nothing; stopping the first releases
/// the Lease, the second claims it and reconciles a new DataFlow (the webhook
/// pointed at it, as a Service would route to the pod left). Returns the second.
pub(super) fn a_second_operator_takes_over_the_lease(
    admin: &Cluster,
    namespace: &str,
    dir: &Path,
    mut first: RunningContainer,
) -> RunningContainer {
    assert_eq!(holder(admin).as_deref(), Some(FIRST), "{}", first.log());
    let second_dir = dir.join("operator-second");
    std::fs::create_dir_all(&second_dir).expect("mkdir");
    let second_port = free_port();
    let mut second = start_operator(admin, second_port, &second_dir, SECOND);

    let waiting = "apiVersion: dataflow.dataflow.io/v1\nkind: DataFlow\nmetadata: {name: while-waiting}\nspec:\n  source: {type: generator, generator: {count: 1}}\n  sink: {type: stdout}\n";
    admin
        .apply(namespace, waiting)
        .expect("apply a DataFlow while both run");
    wait_for(
        "the leader to reconcile the DataFlow",
        WAIT,
        || admin.get(namespace, "deployment", "dataflow-while-waiting"),
        || first.log(),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(holder(admin).as_deref(), Some(FIRST));
    let log = second.log();
    assert!(log.contains("waiting for the lease"), "{log}");
    assert_eq!(
        reporters(admin, namespace, "while-waiting"),
        BTreeSet::from([FIRST.to_owned()]),
        "only the leader reconciled:\n{log}"
    );

    first.stop();
    let first_log = first.log();
    assert!(
        first_log.contains("lease released") && !first_log.contains("forbidden"),
        "{first_log}"
    );
    wait_for(
        "the second replica to take the Lease",
        WAIT,
        || (holder(admin).as_deref() == Some(SECOND)).then_some(()),
        || second.log(),
    );
    let url = format!("https://127.0.0.1:{second_port}/validate-dataflow");
    let patch =
        format!(r#"[{{"op":"replace","path":"/webhooks/0/clientConfig/url","value":"{url}"}}]"#);
    admin.ok(&[
        "patch",
        "validatingwebhookconfiguration",
        RELEASE,
        "--type=json",
        "-p",
        &patch,
    ]);
    let after = waiting.replace("while-waiting", "after-takeover");
    wait_for(
        "the webhook on the second replica to admit a DataFlow",
        WAIT,
        || admin.apply(namespace, &after).ok(),
        || second.log(),
    );
    wait_for(
        "the new leader to reconcile the DataFlow",
        WAIT,
        || admin.get(namespace, "deployment", "dataflow-after-takeover"),
        || second.log(),
    );
    assert_eq!(
        wait_for(
            "the new leader's events",
            WAIT,
            || Some(reporters(admin, namespace, "after-takeover")).filter(|r| !r.is_empty()),
            || second.log(),
        ),
        BTreeSet::from([SECOND.to_owned()])
    );
    assert!(second.running(), "{}", second.log());
    second
}
