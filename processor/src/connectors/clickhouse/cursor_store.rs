//! The ClickHouse position store: a table `dataflow_source_cursors`
//! (ReplacingMergeTree) in the connection's database, keyed by the DataFlow
//! (`namespace/name`) and what it reads. When to save is the polling skeleton's
//! rule. Without the right to create or write the table the position lives in
//! memory only and a restart reads from the start.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use clickhouse::Client;

use super::ident::literal;
use crate::connectors::polling::PositionStore;

/// Persists one source's position; disabled when the table cannot be used.
pub(super) struct CursorStore {
    client: Client,
    key: String,
    name: String,
    enabled: bool,
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
    /// Prepares the table; `name` is the connector's, for logs.
    pub(super) async fn open(client: Client, key: String, name: &str) -> Self {
        let mut store = Self {
            client,
            key,
            name: name.to_owned(),
            enabled: false,
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
        match created {
            Ok(()) => store.enabled = true,
            Err(e) => {
                tracing::warn!(connector = %name, error = %e, "cannot keep the read position in dataflow_source_cursors; a restart reads from the start");
            }
        }
        store
    }
}

#[async_trait]
impl PositionStore for CursorStore {
    async fn load(&mut self) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let sql = format!(
            "SELECT position, version FROM dataflow_source_cursors WHERE source_key = {} ORDER BY version DESC LIMIT 1",
            literal(&self.key)
        );
        let saved = async {
            self.client
                .query_raw(&sql)
                .fetch_bytes("JSONEachRow")?
                .collect()
                .await
        }
        .await;
        match saved {
            Ok(body) => {
                let saved = serde_json::Deserializer::from_slice(&body)
                    .into_iter::<Saved>()
                    .next()
                    .and_then(Result::ok);
                self.version = saved.as_ref().map_or(0, |s| s.version);
                saved.map(|s| s.position).filter(|p| !p.is_empty())
            }
            Err(e) => {
                tracing::warn!(connector = %self.name, error = %e, "cannot read the saved position; reading from the start");
                None
            }
        }
    }

    async fn save(&mut self, position: &str) {
        if let Err(e) = self.replace(Some(position)).await {
            tracing::warn!(connector = %self.name, error = %e, "cannot save the read position");
        }
    }

    /// Forgetting writes an empty position, which reads as none.
    async fn replace(&mut self, position: Option<&str>) -> Result<(), String> {
        if !self.enabled {
            return Err("the table dataflow_source_cursors cannot be used (see the warning at start); the position lives in memory only".into());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.version = now.max(self.version + 1);
        let version = self.version;
        let sql = format!(
            "INSERT INTO dataflow_source_cursors (source_key, position, version) VALUES ({}, {}, {version})",
            literal(&self.key),
            literal(position.unwrap_or_default())
        );
        self.client
            .query_raw(&sql)
            .execute()
            .await
            .map_err(|e| e.to_string())
    }
}
