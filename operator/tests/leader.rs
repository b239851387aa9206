//! Leader election between two operator replicas, each with its own client, both
//! against one fake API server (see `support`: no real API server can run here;
//! the fake applies server-side apply's ownership conflict to a Lease's holder as
//! the API server does).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dataflow_operator::leader::{self, LEASE_NAME, LeaseTiming};
use dataflow_operator::telemetry::Metrics;
use serde_json::json;
use support::{FakeApi, until};
use tokio_util::sync::CancellationToken;

const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/ops/leases/dataflow-operator.dataflow.io";
const TIMING: LeaseTiming = LeaseTiming {
    duration: 3,
    grace: 1,
};

struct Replica {
    reconciling: Arc<AtomicBool>,
    passes: Arc<AtomicUsize>,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

/// Starts a replica whose "controller" marks itself as reconciling until it is
/// told leadership is lost.
async fn replica(fake: &FakeApi, identity: &str) -> Replica {
    let election = leader::join(fake.client(), "ops", identity, TIMING)
        .await
        .unwrap();
    let reconciling = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicUsize::new(0));
    let shutdown = CancellationToken::new();
    let (flag, count, stop) = (reconciling.clone(), passes.clone(), shutdown.clone());
    let done = tokio::spawn(async move {
        leader::while_leading(election.leading, stop, Metrics::new().unwrap(), |lost| {
            let flag = flag.clone();
            let count = count.clone();
            async move {
                flag.store(true, Ordering::SeqCst);
                count.fetch_add(1, Ordering::SeqCst);
                lost.wait().await;
                flag.store(false, Ordering::SeqCst);
            }
        })
        .await;
        let _ = election.task.await;
    });
    Replica {
        reconciling,
        passes,
        shutdown,
        done,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_replica_reconciles_and_the_other_takes_over() {
    let fake = FakeApi::default();
    let a = replica(&fake, "operator-a").await;
    let b = replica(&fake, "operator-b").await;
    let leaders = || {
        usize::from(a.reconciling.load(Ordering::SeqCst))
            + usize::from(b.reconciling.load(Ordering::SeqCst))
    };
    assert!(
        until(Duration::from_secs(10), || leaders() == 1).await,
        "nobody leads"
    );

    // Over several renewals, never two leaders and never none.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        assert_eq!(leaders(), 1);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let lease = fake.get(LEASE).expect("the lease exists");
    assert_eq!(lease["metadata"]["name"], LEASE_NAME);
    let (winner, loser) = if a.reconciling.load(Ordering::SeqCst) {
        (a, b)
    } else {
        (b, a)
    };
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap().to_owned();
    assert!(holder.starts_with("operator-"), "{holder}");

    // The leader shuts down and releases the lease; the other one takes over.
    winner.shutdown.cancel();
    winner.done.await.unwrap();
    assert!(
        until(Duration::from_secs(10), || loser
            .reconciling
            .load(Ordering::SeqCst))
        .await,
        "the standby replica did not take over"
    );
    assert!(!winner.reconciling.load(Ordering::SeqCst));
    let holder_now = fake.get(LEASE).unwrap()["spec"]["holderIdentity"].clone();
    assert_ne!(holder_now, json!(holder));
    loser.shutdown.cancel();
    loser.done.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_lease_stops_reconciling() {
    let fake = FakeApi::default();
    let a = replica(&fake, "operator-a").await;
    assert!(
        until(Duration::from_secs(10), || a
            .reconciling
            .load(Ordering::SeqCst))
        .await
    );
    assert_eq!(a.passes.load(Ordering::SeqCst), 1);

    // Someone else takes the lease (as after a long pause of this replica).
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut lease = fake.get(LEASE).unwrap();
    lease["spec"]["holderIdentity"] = json!("intruder");
    lease["spec"]["renewTime"] = json!(now);
    lease["spec"]["acquireTime"] = json!(now);
    lease["spec"]["leaseDurationSeconds"] = json!(60);
    fake.put(LEASE, lease);
    assert!(
        until(Duration::from_secs(10), || !a
            .reconciling
            .load(Ordering::SeqCst))
        .await,
        "reconciling went on without the lease"
    );
    a.shutdown.cancel();
    a.done.await.unwrap();
}
