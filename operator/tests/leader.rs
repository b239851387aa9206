//! Leader election between two operator replicas, each with its own client,
//! against the real kube-apiserver of `make services` (named by
//! `DATAFLOW_TEST_KUBECONFIG`): the Lease, server-side apply's ownership
//! conflicts on its holder, and its expiry are the server's own.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dataflow_operator::leader::{self, LEASE_NAME, LeaseTiming};
use dataflow_operator::telemetry::Metrics;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use support::until;
use tokio_util::sync::CancellationToken;

const TIMING: LeaseTiming = LeaseTiming {
    duration: 3,
    grace: 1,
};

/// A client of the test API server, as its administrator.
async fn client() -> Client {
    // The workspace enables more than one rustls provider; pick the one the
    // operator's binary installs.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = std::env::var("DATAFLOW_TEST_KUBECONFIG").unwrap_or_else(|_| {
        panic!("DATAFLOW_TEST_KUBECONFIG is not set: run `make test`, or `eval \"$(scripts/services.sh start)\"` first")
    });
    let kubeconfig = Kubeconfig::read_from(&path).expect("the test kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client configuration");
    Client::try_from(config).expect("a client")
}

/// A new namespace for one test's Lease; deleted when the test is done.
async fn namespace(client: &Client, test: &str) -> String {
    let name = format!("lease-{test}-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the namespace");
    name
}

async fn delete_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(name, &DeleteParams::default()).await;
}

async fn holder(client: &Client, namespace: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    leases
        .get_opt(LEASE_NAME)
        .await
        .expect("read the Lease")
        .and_then(|lease| lease.spec?.holder_identity)
}

struct Replica {
    reconciling: Arc<AtomicBool>,
    passes: Arc<AtomicUsize>,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

/// Starts a replica whose "controller" marks itself as reconciling until it is
/// told leadership is lost.
async fn replica(namespace: &str, identity: &str) -> Replica {
    let election = leader::join(client().await, namespace, identity, TIMING)
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
    let admin = client().await;
    let ns = namespace(&admin, "takeover").await;
    let a = replica(&ns, "operator-a").await;
    let b = replica(&ns, "operator-b").await;
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
    let (winner, loser, winner_name) = if a.reconciling.load(Ordering::SeqCst) {
        (a, b, "operator-a")
    } else {
        (b, a, "operator-b")
    };
    assert_eq!(holder(&admin, &ns).await.as_deref(), Some(winner_name));

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
    let holder_now = holder(&admin, &ns).await;
    assert!(
        holder_now.as_deref().is_some_and(|h| h != winner_name),
        "{holder_now:?}"
    );
    loser.shutdown.cancel();
    loser.done.await.unwrap();
    delete_namespace(&admin, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_lease_stops_reconciling() {
    let admin = client().await;
    let ns = namespace(&admin, "lost").await;
    let a = replica(&ns, "operator-a").await;
    assert!(
        until(Duration::from_secs(10), || a
            .reconciling
            .load(Ordering::SeqCst))
        .await
    );
    assert_eq!(a.passes.load(Ordering::SeqCst), 1);

    // Someone else takes the lease (as after a long pause of this replica):
    // a forced apply makes another field manager own its holder.
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let intruder = Lease {
        metadata: ObjectMeta {
            name: Some(LEASE_NAME.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("intruder".into()),
            lease_duration_seconds: Some(60),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..LeaseSpec::default()
        }),
    };
    let leases: Api<Lease> = Api::namespaced(admin.clone(), &ns);
    leases
        .patch(
            LEASE_NAME,
            &PatchParams::apply("intruder").force(),
            &Patch::Apply(&intruder),
        )
        .await
        .expect("the intruder takes the Lease");
    assert!(
        until(Duration::from_secs(10), || !a
            .reconciling
            .load(Ordering::SeqCst))
        .await,
        "reconciling went on without the lease"
    );
    assert_eq!(holder(&admin, &ns).await.as_deref(), Some("intruder"));
    a.shutdown.cancel();
    a.done.await.unwrap();
    delete_namespace(&admin, &ns).await;
}
