//! Where the PostgreSQL source keeps its read position across restarts: a small
//! table `dataflow_source_cursors` in the source database, keyed by the DataFlow
//! (`namespace/name`) and what it reads (relation text and cursor column). Writing a position happens only when the
//! pipeline commits it, i.e. after everything read up to it is written. Without
//! the right to create or write that table, the position lives in memory only and
//! a restart reads from the start (duplicates, never loss).

use crate::connectors::polling::position_key;
use sqlx::{PgPool, Row};

/// Persists one source's position; disabled when the table cannot be used.
pub(super) struct CursorStore {
    pool: PgPool,
    key: String,
    enabled: bool,
}

impl CursorStore {
    /// Prepares the table and reads the saved position, if any.
    pub(super) async fn open(
        pool: PgPool,
        flow: &str,
        relation: &str,
        column: &str,
        name: &str,
    ) -> (Self, Option<String>) {
        let key = position_key(flow, relation, column);
        let mut store = Self {
            pool,
            key,
            enabled: false,
        };
        let created = sqlx::query(
            "CREATE TABLE IF NOT EXISTS dataflow_source_cursors \
             (source_key TEXT PRIMARY KEY, position TEXT NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .execute(&store.pool)
        .await;
        if let Err(e) = created {
            tracing::warn!(connector = %name, error = %e, "cannot keep the read position in dataflow_source_cursors; a restart reads from the start");
            return (store, None);
        }
        let saved =
            sqlx::query("SELECT position FROM dataflow_source_cursors WHERE source_key = $1")
                .bind(&store.key)
                .fetch_optional(&store.pool)
                .await;
        match saved {
            Ok(row) => {
                store.enabled = true;
                let position = row.and_then(|r| r.try_get::<String, _>(0).ok());
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

    /// Saves `position`; a failure is logged (the next commit saves a later one).
    pub(super) async fn save(&self, position: &str, name: &str) {
        if !self.enabled {
            return;
        }
        let saved = sqlx::query(
            "INSERT INTO dataflow_source_cursors (source_key, position) VALUES ($1, $2) \
             ON CONFLICT (source_key) DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
        )
        .bind(&self.key)
        .bind(position)
        .execute(&self.pool)
        .await;
        if let Err(e) = saved {
            tracing::warn!(connector = %name, error = %e, "cannot save the read position");
        }
    }
}
