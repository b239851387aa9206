//! The PostgreSQL poller.
//!
//! Reads a table (or the result of `query`). When the rows have an `id` column
//! (integer or numeric) or else a `created_at` column (timestamp or date), reads
//! are incremental: each asks for rows past the last one read, in that column's
//! order, a page at a time. Rows become JSON on the server (`to_jsonb`).

use async_trait::async_trait;
use dataflow_api::connectors::{DEFAULT_POLL_INTERVAL_SECS, PostgresqlSourceSpec};
use sqlx::{AssertSqlSafe, Column, Executor, PgPool, Row, SqlSafeStr, Statement, TypeInfo};

use super::cursor_store::CursorStore;
use super::errors::classify;
use super::ident::{QualifiedName, quote};
use crate::connectors::polling::{
    Page, Poller, PollingSource, Selection, position_key, row_message,
};
use crate::connectors::settings::{optional, required};
use crate::connectors::{ConnectorError, Health, Retry};

/// The column incremental reads follow, and the SQL type its text is cast to.
struct Cursor {
    column: &'static str,
    sql_type: &'static str,
}

/// Reads rows as JSON messages.
struct PostgresPoller {
    retry: Retry,
    pool: PgPool,
    label: String,
    relation: String,
    cursor: Option<Cursor>,
    raw_mode: bool,
}

/// Connects, inspects the rows' columns and opens the position store (spec path
/// `path`); `flow` (`namespace/name`) keys the saved position.
pub async fn open_source(
    path: &str,
    spec: &PostgresqlSourceSpec,
    flow: &str,
    persist: bool,
    health: Health,
) -> Result<PollingSource, ConnectorError> {
    let url = required(
        spec.connection_string.as_deref(),
        spec.connection_string_secret_ref.as_ref(),
        path,
        "connectionString",
    )?;
    let table = optional(
        spec.table.as_deref(),
        spec.table_secret_ref.as_ref(),
        path,
        "table",
    )?;
    let (label, relation) = match Selection::from_spec(path, table, spec.query.as_deref())? {
        Selection::Query { label, sql } => (label.to_owned(), format!("({sql}) AS q")),
        Selection::Table(table) => {
            let name = QualifiedName::parse(table).ok_or_else(|| ConnectorError::Config {
                path: format!("{path}.table"),
                reason: format!("{table:?} is not a table name"),
            })?;
            (table.to_owned(), format!("{name} AS q"))
        }
    };
    let pool = super::pool(path, url, 2)?;
    let mut poller = PostgresPoller {
        retry: Retry::new(format!("postgresql source {label}"), health),
        pool,
        label,
        relation,
        cursor: None,
        raw_mode: spec.raw_mode.unwrap_or(false),
    };
    poller.cursor = poller.find_cursor(path).await?;
    let store: Box<dyn crate::connectors::polling::PositionStore> = match &poller.cursor {
        Some(cursor) if persist => Box::new(
            CursorStore::open(
                poller.pool.clone(),
                position_key(flow, &poller.relation, cursor.column),
                poller.retry.connector(),
            )
            .await,
        ),
        _ => Box::new(crate::connectors::polling::MemoryStore),
    };
    let interval = spec.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL_SECS);
    Ok(PollingSource::new(Box::new(poller), store, interval).await)
}

impl PostgresPoller {
    async fn find_cursor(&self, path: &str) -> Result<Option<Cursor>, ConnectorError> {
        let probe = format!("SELECT * FROM {} LIMIT 0", self.relation);
        let described = self
            .retry
            .run("read the columns", classify, || {
                (&self.pool).prepare(AssertSqlSafe(probe.as_str()).into_sql_str())
            })
            .await
            .map_err(|e| ConnectorError::Config {
                path: path.to_owned(),
                reason: format!("cannot read {}: {e}", self.label),
            })?
            .map_err(|(_, reason)| ConnectorError::Config {
                path: path.to_owned(),
                reason: format!("cannot read {}: {reason}", self.label),
            })?;
        let type_of = |wanted: &str| {
            described
                .columns()
                .iter()
                .find(|c| c.name() == wanted)
                .map(|c| c.type_info().name().to_ascii_uppercase())
        };
        if let Some(ty) = type_of("id") {
            let sql_type = match ty.as_str() {
                "INT2" | "INT4" | "INT8" | "SMALLINT" | "INT" | "INTEGER" | "BIGINT" => {
                    Some("bigint")
                }
                "NUMERIC" => Some("numeric"),
                _ => None,
            };
            if let Some(sql_type) = sql_type {
                return Ok(Some(Cursor {
                    column: "id",
                    sql_type,
                }));
            }
        }
        if let Some(ty) = type_of("created_at") {
            let sql_type = match ty.as_str() {
                "TIMESTAMPTZ" => Some("timestamptz"),
                "TIMESTAMP" => Some("timestamp"),
                "DATE" => Some("date"),
                _ => None,
            };
            if let Some(sql_type) = sql_type {
                return Ok(Some(Cursor {
                    column: "created_at",
                    sql_type,
                }));
            }
        }
        Ok(None)
    }

    fn select(&self, after: Option<&str>) -> String {
        match &self.cursor {
            Some(cursor) => {
                let column = quote(cursor.column);
                let filter = if after.is_some() {
                    format!(" WHERE q.{column} > $1::text::{}", cursor.sql_type)
                } else {
                    String::new()
                };
                format!(
                    "SELECT to_jsonb(q)::text, q.{column}::text FROM {}{filter} ORDER BY q.{column} LIMIT $2",
                    self.relation
                )
            }
            None => format!(
                "SELECT to_jsonb(q)::text, NULL::text FROM {}",
                self.relation
            ),
        }
    }

    fn message(&self, document: &str, id: Option<&str>) -> dataflow_core::Message {
        // Only an integer or numeric `id` is metadata; its text is a JSON number.
        let id = id.filter(|_| self.cursor.as_ref().is_some_and(|c| c.column == "id"));
        row_message(document.as_bytes(), &self.label, id, self.raw_mode)
    }
}

#[async_trait]
impl Poller for PostgresPoller {
    fn name(&self) -> &str {
        self.retry.connector()
    }

    fn incremental(&self) -> bool {
        self.cursor.is_some()
    }

    /// Asks the server to read `position` as the cursor column's type.
    async fn check_position(&mut self, position: &str) -> Result<(), String> {
        let Some(cursor) = &self.cursor else {
            return Err("the source has no cursor column".into());
        };
        let sql = format!("SELECT $1::text::{}", cursor.sql_type);
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(position)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| {
                format!(
                    "{position:?} is not a value of column {} ({}): {e}",
                    cursor.column, cursor.sql_type
                )
            })
    }

    async fn poll(&mut self, after: Option<&str>, max: usize) -> Result<Page, ConnectorError> {
        let sql = self.select(after);
        let rows = self
            .retry
            .run("poll", classify, || {
                let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
                if self.cursor.is_some() {
                    query = query
                        .bind(after.unwrap_or_default())
                        .bind(i64::try_from(max).unwrap_or(i64::MAX));
                }
                query.fetch_all(&self.pool)
            })
            .await?
            .map_err(|(error_type, reason)| ConnectorError::Failed {
                connector: self.name().to_owned(),
                error_type,
                reason,
            })?;
        let mut page = Page::default();
        for row in &rows {
            let decoded = row
                .try_get::<String, _>(0)
                .and_then(|doc| Ok((doc, row.try_get::<Option<String>, _>(1)?)));
            let (document, position) = decoded.map_err(|e| ConnectorError::Failed {
                connector: self.name().to_owned(),
                error_type: dataflow_api::ErrorType::Failed,
                reason: e.to_string(),
            })?;
            page.messages
                .push(self.message(&document, position.as_deref()));
            if position.is_some() {
                page.last = position;
            }
        }
        Ok(page)
    }
}
