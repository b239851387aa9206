//! Leader election on a `coordination.k8s.io` Lease, so that of several operator
//! replicas exactly one reconciles. Built on `kube-lease-manager`, which claims
//! and renews the Lease with server-side apply and treats a conflict as "someone
//! else holds it".

use std::future::Future;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::telemetry::Metrics;

/// Name of the Lease the operator replicas compete for.
pub const LEASE_NAME: &str = "dataflow-operator.dataflow.io";

/// Lease timing in seconds: how long a claim lasts, and how long before expiry
/// the holder renews it.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
    /// Lease duration.
    pub duration: u64,
    /// Renewal margin (must be below `duration`).
    pub grace: u64,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            duration: 15,
            grace: 5,
        }
    }
}

/// A running election: `leading` says whether this replica holds the Lease.
/// Dropping every receiver releases the Lease.
pub struct Election {
    /// `true` while this replica leads.
    pub leading: watch::Receiver<bool>,
    /// The task that claims and renews the Lease.
    pub task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

/// Joins the election for [`LEASE_NAME`] in `namespace` as `identity`.
pub async fn join(
    client: Client,
    namespace: &str,
    identity: &str,
    timing: LeaseTiming,
) -> Result<Election, LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(timing.duration)
        .with_grace(timing.grace)
        .build()
        .await?;
    let (leading, task) = manager.watch().await;
    Ok(Election { leading, task })
}

/// Resolves when this replica stops leading or the process shuts down.
#[derive(Clone)]
pub struct LeadershipLost {
    leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
}

impl LeadershipLost {
    /// Waits for the loss of leadership (or shutdown).
    pub async fn wait(mut self) {
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = self.leading.wait_for(|leading| !*leading) => {}
        }
    }
}

/// Runs `work` each time this replica becomes leader, and stops it (through the
/// [`LeadershipLost`] it is given) when leadership is lost. Returns on shutdown or
/// when the election ends.
pub async fn while_leading<F, Fut>(
    mut leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
    metrics: Metrics,
    mut work: F,
) where
    F: FnMut(LeadershipLost) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        metrics.set_leader(false);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            won = leading.wait_for(|leading| *leading) => {
                if won.is_err() {
                    tracing::warn!("leader election ended");
                    return;
                }
            }
        }
        tracing::info!(lease = LEASE_NAME, "leading: reconciling starts");
        metrics.set_leader(true);
        work(LeadershipLost {
            leading: leading.clone(),
            shutdown: shutdown.clone(),
        })
        .await;
        if shutdown.is_cancelled() {
            metrics.set_leader(false);
            return;
        }
        tracing::warn!(lease = LEASE_NAME, "lost the lease: reconciling stopped");
    }
}
