//! DataFlowCron, the Go original's scheduled flow, through the real API server
//! and the operator the parent test runs.

use dataflow_tests::cluster::{Cluster, wait_for};

use super::{WAIT, workloads};

/// A Go user's DataFlowCron, applied unchanged (its `config:` connector blocks
/// and its trigger): the operator keeps a DataFlow of the same name that it
/// owns, that DataFlow's CronJob runs the flow as the pod's init container and
/// the trigger after it, and `kubectl get dfc` shows the DataFlow's phase.
pub(super) fn a_go_dataflowcron_becomes_a_cron_job(admin: &Cluster, namespace: &str) {
    let manifest = r#"
apiVersion: dataflow.dataflow.io/v1
kind: DataFlowCron
metadata:
  name: nightly-export
spec:
  schedule: "*/10 * * * *"
  concurrencyPolicy: Forbid
  source:
    type: kafka
    config:
      brokers: [kafka:9092]
      topic: input-topic
      consumerGroup: dataflow-group
  sink:
    type: nessie
    config:
      baseURL: "http://nessie:19120"
      branch: main
      namespace: analytics
      table: events
  triggers:
    - name: start-spark
      image: bitnami/kubectl:latest
      command: ["kubectl"]
      args: ["apply", "-f", "/manifests/spark-application.yaml"]
"#;
    let refused = admin
        .apply(namespace, &manifest.replace("*/10 * * * *", "61 * * * *"))
        .expect_err("a bad schedule is refused by the webhook");
    assert!(
        refused.contains("spec.execution.schedule") && refused.contains("minute"),
        "{refused}"
    );
    admin
        .apply(namespace, manifest)
        .expect("the Go DataFlowCron is accepted as written");
    let cron_uid = admin
        .get(namespace, "dataflowcron", "nightly-export")
        .expect("the DataFlowCron exists")["metadata"]["uid"]
        .as_str()
        .expect("a uid")
        .to_owned();
    let cron_job = wait_for(
        "the DataFlowCron's DataFlow and its CronJob",
        WAIT,
        || admin.get(namespace, "cronjob", "dataflow-nightly-export"),
        || workloads(admin, namespace, "nightly-export"),
    );
    let dataflow = admin
        .get(namespace, "df", "nightly-export")
        .expect("the DataFlow made for the DataFlowCron");
    let owner = &dataflow["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "DataFlowCron", "{dataflow}");
    assert_eq!(owner["uid"], cron_uid.as_str(), "{dataflow}");
    assert_eq!(
        dataflow["spec"]["execution"]["schedule"], "*/10 * * * *",
        "{dataflow}"
    );
    assert_eq!(cron_job["spec"]["schedule"], "*/10 * * * *");
    assert_eq!(cron_job["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["initContainers"][0]["name"], "processor", "{pod}");
    assert_eq!(pod["containers"][0]["name"], "start-spark", "{pod}");
    assert_eq!(pod["containers"][0]["command"][0], "kubectl", "{pod}");
    wait_for(
        "the DataFlowCron to report its DataFlow and that DataFlow's phase",
        WAIT,
        || {
            let status = admin.get(namespace, "dfc", "nightly-export")?["status"].clone();
            let phase = admin.get(namespace, "df", "nightly-export")?["status"]["phase"].clone();
            (status["dataFlow"] == "nightly-export" && !phase.is_null() && status["phase"] == phase)
                .then_some(())
        },
        || format!("{:?}", admin.get(namespace, "dfc", "nightly-export")),
    );
    let listed = admin.ok(&["get", "dfc", "-n", namespace, "--no-headers"]);
    assert!(
        listed.contains("nightly-export") && listed.contains("*/10 * * * *"),
        "{listed}"
    );
}
