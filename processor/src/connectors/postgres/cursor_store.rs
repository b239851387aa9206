//! The PostgreSQL position store: a small table `dataflow_source_cursors` in the
//! source database, keyed by the DataFlow (`namespace/name`) and what it reads
//! (relation text and cursor column). When to save is the polling skeleton's rule.
//! Without the right to create or write that table, the position lives in memory
//! only and a restart reads from the start (duplicates, never loss).

use async_trait::async_trait;
use sqlx::{PgPool, Row};

use crate::connectors::polling::PositionStore;

/// Persists one source's position; disabled when the table cannot be used.
pub(super) struct CursorStore {
    pool: PgPool,
    key: String,
    name: String,
    enabled: bool,
}

impl CursorStore {
    /// Prepares the table; `name` is the connector's, for logs.
    pub(super) async fn open(pool: PgPool, key: String, name: &str) -> Self {
        let mut store = Self {
            pool,
            key,
            name: name.to_owned(),
            enabled: false,
        };
        let created = sqlx::query(
            "CREATE TABLE IF NOT EXISTS dataflow_source_cursors \
             (source_key TEXT PRIMARY KEY, position TEXT NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .execute(&store.pool)
        .await;
        match created {
            Ok(_) => store.enabled = true,
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
        let saved =
            sqlx::query("SELECT position FROM dataflow_source_cursors WHERE source_key = $1")
                .bind(&self.key)
                .fetch_optional(&self.pool)
                .await;
        match saved {
            Ok(row) => row.and_then(|r| r.try_get::<String, _>(0).ok()),
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

    async fn replace(&mut self, position: Option<&str>) -> Result<(), String> {
        if !self.enabled {
            return Err("the table dataflow_source_cursors cannot be used (see the warning at start); the position lives in memory only".into());
        }
        let written = match position {
            Some(position) => sqlx::query(
                "INSERT INTO dataflow_source_cursors (source_key, position) VALUES ($1, $2) \
                 ON CONFLICT (source_key) DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
            )
            .bind(&self.key)
            .bind(position),
            None => sqlx::query("DELETE FROM dataflow_source_cursors WHERE source_key = $1")
                .bind(&self.key),
        }
        .execute(&self.pool)
        .await;
        written.map(drop).map_err(|e| e.to_string())
    }
}
