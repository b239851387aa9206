//! Publishing the processor's counters in its DataFlow's status.
//!
//! The operator gives each processor a ServiceAccount allowed to `get` and `patch`
//! the status of its own DataFlow and nothing else. Every interval the reporter
//! merge-patches `processedCount`, `errorCount` and `lastProcessedTime`; the
//! operator owns the other status fields and never writes these.
//!
//! Counts continue from what the status held when the processor started, so the
//! `Processed` column keeps growing across restarts and spec changes.

use std::sync::Arc;
use std::time::Duration;

use dataflow_api::DataFlow;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::progress::{Progress, ProgressSnapshot};

/// Field manager of the processor's status patches.
pub const FIELD_MANAGER: &str = "dataflow-processor";

/// How often a replica waiting to apply a reset looks whether another applied it.
const APPLIED_ELSEWHERE_POLL: Duration = Duration::from_secs(2);

/// Publishes `progress` to the status of DataFlow `namespace/name`.
pub struct StatusReporter {
    api: Api<DataFlow>,
    name: String,
    progress: Arc<Progress>,
    baseline: ProgressSnapshot,
    last_sent: Option<ProgressSnapshot>,
    last_error: Option<String>,
    /// Whether the status could be read at start (else which reset was applied
    /// last is unknown).
    status_known: bool,
    /// The reset the status says was applied last.
    applied_reset: Option<String>,
    /// A reset being applied: its request text, and where its outcome arrives.
    pending_reset: Option<(String, oneshot::Receiver<String>)>,
}

impl StatusReporter {
    /// A reporter for DataFlow `namespace/name`. Reads the current counts as the
    /// baseline; a DataFlow that cannot be read starts from zero.
    pub async fn new(client: Client, namespace: &str, name: &str, progress: Arc<Progress>) -> Self {
        let api: Api<DataFlow> = Api::namespaced(client, namespace);
        let mut applied_reset = None;
        let mut status_known = false;
        let baseline = match api.get_status(name).await {
            Ok(dataflow) => {
                status_known = true;
                let status = dataflow.status.unwrap_or_default();
                applied_reset = status.position_reset.and_then(|r| r.applied);
                ProgressSnapshot {
                    processed: status
                        .processed_count
                        .and_then(|v| u64::try_from(v).ok())
                        .unwrap_or(0),
                    errors: status
                        .error_count
                        .and_then(|v| u64::try_from(v).ok())
                        .unwrap_or(0),
                    last_processed_ms: 0,
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the DataFlow status; counts start at zero");
                ProgressSnapshot::default()
            }
        };
        Self {
            api,
            name: name.to_owned(),
            progress,
            baseline,
            last_sent: None,
            last_error: None,
            status_known,
            applied_reset,
            pending_reset: None,
        }
    }

    /// The reset request the status shows as applied, read at start: `None`
    /// when the status could not be read, `Some(None)` when none was applied.
    pub fn applied_reset(&self) -> Option<Option<&str>> {
        self.status_known.then_some(self.applied_reset.as_deref())
    }

    /// Watches the status for reset `request` applied by another replica of the
    /// flow while this one waits to apply it (the group's offsets can only be
    /// committed while no member is in the group, so the first replica to start
    /// applies it and the others would wait for an empty group that never comes).
    /// The receiver turns `true` once the status shows `request` applied; the
    /// watching ends when every receiver is dropped.
    pub fn watch_applied_elsewhere(&self, request: String) -> watch::Receiver<bool> {
        let (applied, receiver) = watch::channel(false);
        let api = self.api.clone();
        let name = self.name.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = applied.closed() => return,
                    () = tokio::time::sleep(APPLIED_ELSEWHERE_POLL) => {}
                }
                let shown = match api.get_status(&name).await {
                    Ok(dataflow) => dataflow
                        .status
                        .and_then(|s| s.position_reset)
                        .and_then(|r| r.applied),
                    Err(error) => {
                        tracing::debug!(%error, "cannot read the DataFlow status; asking again");
                        continue;
                    }
                };
                if shown.as_deref() == Some(request.as_str()) {
                    let _ = applied.send(true);
                    return;
                }
            }
        });
        receiver
    }

    /// Publishes the outcome of reset `request` once `outcome` delivers it.
    pub fn expect_reset(&mut self, request: String, outcome: oneshot::Receiver<String>) {
        self.pending_reset = Some((request, outcome));
    }

    /// Records an applied reset: the request (so it is not applied again), when,
    /// and what was done. False when the API refused it (tried again later).
    async fn report_reset(&mut self, request: &str, detail: &str) -> bool {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.send(json!({"status": {"positionReset": {
            "applied": request,
            "appliedTime": now,
            "detail": detail,
        }}}))
        .await
    }

    /// Waits for the pending reset's outcome (forever when there is none).
    async fn reset_outcome(&mut self) -> Option<(String, String)> {
        let Some((_, outcome)) = self.pending_reset.as_mut() else {
            return std::future::pending().await;
        };
        let result = outcome.await;
        let (request, _) = self.pending_reset.take()?;
        // A flow that ended before applying it leaves nothing to record.
        result.ok().map(|detail| (request, detail))
    }

    /// Says the processor has started: clears the error a stopped one reported.
    pub async fn report_started(&mut self) {
        self.send(json!({"status": {"processorError": null}})).await;
    }

    /// Reports the error that stops the processor, for the operator to show as the
    /// DataFlow's phase `Error` while no processor runs.
    pub async fn report_failure(&mut self, error: &str) {
        self.report().await;
        // Anyone who may read the DataFlow reads this: no credential in it.
        let error = dataflow_api::redact::redact(error);
        self.send(json!({"status": {"processorError": error.as_ref()}}))
            .await;
    }

    /// Sends the counts if they changed since the last report. Failures are
    /// logged once per distinct error and retried at the next report.
    pub async fn report(&mut self) {
        let now = self.progress.snapshot();
        if self.last_sent == Some(now) || (self.last_sent.is_none() && now.last_processed_ms == 0) {
            return;
        }
        let mut status = serde_json::Map::new();
        let total =
            |base: u64, own: u64| i64::try_from(base.saturating_add(own)).unwrap_or(i64::MAX);
        status.insert(
            "processedCount".into(),
            json!(total(self.baseline.processed, now.processed)),
        );
        status.insert(
            "errorCount".into(),
            json!(total(self.baseline.errors, now.errors)),
        );
        if let Some(time) = chrono::DateTime::from_timestamp_millis(now.last_processed_ms)
            .filter(|_| now.last_processed_ms > 0)
        {
            status.insert(
                "lastProcessedTime".into(),
                json!(time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            );
        }
        if self.send(json!({ "status": status })).await {
            self.last_sent = Some(now);
        }
    }

    /// Merges `patch` into the DataFlow's status; false when the API refused it.
    async fn send(&mut self, patch: serde_json::Value) -> bool {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match self
            .api
            .patch_status(&self.name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                self.last_error = None;
                true
            }
            Err(error) => {
                let text = error.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, "cannot update the DataFlow status");
                    self.last_error = Some(text);
                }
                false
            }
        }
    }

    /// Reports every `interval` until `stop` is cancelled, then once more; then
    /// hands itself back for a last word about a failure.
    pub async fn run(mut self, interval: Duration, stop: CancellationToken) -> Self {
        self.report_started().await;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut unreported: Option<(String, String)> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticker.tick() => {
                    self.report().await;
                    if let Some((request, detail)) = unreported.take()
                        && !self.report_reset(&request, &detail).await
                    {
                        unreported = Some((request, detail));
                    }
                }
                Some((request, detail)) = self.reset_outcome() => {
                    if !self.report_reset(&request, &detail).await {
                        unreported = Some((request, detail));
                    }
                }
            }
        }
        // A short flow (a job) may end before the loop saw the outcome.
        if let Some((request, mut outcome)) = self.pending_reset.take()
            && let Ok(detail) = outcome.try_recv()
        {
            unreported = Some((request, detail));
        }
        if let Some((request, detail)) = unreported {
            self.report_reset(&request, &detail).await;
        }
        self.report().await;
        self
    }
}
