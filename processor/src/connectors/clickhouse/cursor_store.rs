//! Where the ClickHouse source keeps its read position across restarts: a table
//! `dataflow_source_cursors` (ReplacingMergeTree) in the connection's database,
//! keyed by the DataFlow (`namespace/name`) and what it reads. A position is
//! written only after everything read up to it has been written, and at most once
//! a second (ClickHouse wants few, large inserts), plus once at shutdown; after a
//! crash the source re-reads at most that last second: duplicates, never loss.
//! Without the right to create or write the table the position lives in memory
//! only and a restart reads from the start.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::ident::literal;
use crate::connectors::polling::position_key;
use clickhouse::Client;

/// Shortest time between two saved positions.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Persists one source's position; disabled when the table cannot be used.
pub(super) struct CursorStore {
    client: Client,
    key: String,
    enabled: bool,
    pending: Option<String>,
    last_save: Option<Instant>,
    /// Version of the last saved row; new rows get a higher one even if the
    /// clock steps back.
    version: u64,
}

#[derive(serde::Deserialize)]
struct Saved {
    position: String,
    version: u64,
}

impl CursorStore {
    /// Prepares the table and reads the saved position, if any.
    pub(super) async fn open(
        client: Client,
        flow: &str,
        relation: &str,
        column: &str,
        name: &str,
    ) -> (Self, Option<String>) {
        let key = position_key(flow, relation, column);
        let mut store = Self {
            client,
            key,
            enabled: false,
            pending: None,
            last_save: None,
            version: 0,
        };
        let created = store
            .client
            .query_raw(
                "CREATE TABLE IF NOT EXISTS dataflow_source_cursors \
                 (source_key String, position String, version UInt64) \
                 ENGINE = ReplacingMergeTree(version) ORDER BY source_key",
            )
            .execute()
            .await;
        if let Err(e) = created {
            tracing::warn!(connector = %name, error = %e, "cannot keep the read position in dataflow_source_cursors; a restart reads from the start");
            return (store, None);
        }
        let sql = format!(
            "SELECT position, version FROM dataflow_source_cursors WHERE source_key = {} ORDER BY version DESC LIMIT 1",
            literal(&store.key)
        );
        let saved = async {
            store
                .client
                .query_raw(&sql)
                .fetch_bytes("JSONEachRow")?
                .collect()
                .await
        }
        .await;
        match saved {
            Ok(body) => {
                store.enabled = true;
                let saved = serde_json::Deserializer::from_slice(&body)
                    .into_iter::<Saved>()
                    .next()
                    .and_then(Result::ok);
                store.version = saved.as_ref().map_or(0, |s| s.version);
                let position = saved.map(|s| s.position);
                if let Some(position) = &position {
                    tracing::info!(connector = %name, %position, "resuming after the saved position");
                }
                (store, position)
            }
            Err(e) => {
                tracing::warn!(connector = %name, error = %e, "cannot read the saved position; reading from the start");
                (store, None)
            }
        }
    }

    /// Takes `position` as committed; saves it when the last save is old enough.
    pub(super) async fn commit(&mut self, position: String, name: &str) {
        if !self.enabled {
            return;
        }
        self.pending = Some(position);
        if self.last_save.is_none_or(|at| at.elapsed() >= SAVE_EVERY) {
            self.save_pending(name).await;
        }
    }

    /// Saves the last committed position, if not saved yet; a failure is logged
    /// (the next commit saves a later one).
    pub(super) async fn save_pending(&mut self, name: &str) {
        let Some(position) = self.pending.take() else {
            return;
        };
        self.last_save = Some(Instant::now());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.version = now.max(self.version + 1);
        let version = self.version;
        let sql = format!(
            "INSERT INTO dataflow_source_cursors (source_key, position, version) VALUES ({}, {}, {version})",
            literal(&self.key),
            literal(&position)
        );
        if let Err(e) = self.client.query_raw(&sql).execute().await {
            tracing::warn!(connector = %name, error = %e, "cannot save the read position");
        }
    }
}
