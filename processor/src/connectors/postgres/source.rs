//! The PostgreSQL source.
//!
//! Polls a table (or the result of `query`) every `pollInterval` seconds. When the
//! rows have an `id` column (integer or numeric) or else a `created_at` column
//! (timestamp or date), reads are incremental: each read asks for rows past the
//! last one read, in that column's order, a page at a time. Without either column
//! every poll reads everything again. Rows become JSON on the server (`to_jsonb`).

use async_trait::async_trait;
use dataflow_api::connectors::{DEFAULT_POLL_INTERVAL_SECS, PostgresqlSourceSpec};
use sqlx::{AssertSqlSafe, Column, Executor, PgPool, Row, SqlSafeStr, Statement, TypeInfo};

use super::cursor_store::CursorStore;
use super::errors::classify;
use super::ident::{QualifiedName, quote};
use crate::connectors::polling::{PollTimer, Selection, row_message};
use crate::connectors::retry::Failure;
use crate::connectors::settings::{optional, required};
use crate::connectors::{AckToken, Backoff, ConnectorError, Source, SourceBatch};
use crate::wasm::Message;

/// The column incremental reads follow, and the SQL type its text is cast to.
struct Cursor {
    column: &'static str,
    sql_type: &'static str,
}

/// Reads rows as JSON messages.
pub struct PostgresSource {
    name: String,
    pool: PgPool,
    label: String,
    relation: String,
    cursor: Option<Cursor>,
    position: Option<String>,
    timer: PollTimer,
    raw_mode: bool,
    store: Option<CursorStore>,
}

/// The cursor value of the last row of a batch.
struct Position(String);

impl PostgresSource {
    /// Connects and inspects the rows' columns (spec path `path`).
    pub async fn open(
        path: &str,
        spec: &PostgresqlSourceSpec,
        flow: &str,
    ) -> Result<Self, ConnectorError> {
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
        let name = format!("postgresql source {label}");
        let mut source = Self {
            name,
            pool,
            label,
            relation,
            cursor: None,
            position: None,
            timer: PollTimer::new(spec.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL_SECS)),
            raw_mode: spec.raw_mode.unwrap_or(false),
            store: None,
        };
        source.cursor = source.find_cursor(path).await?;
        match &source.cursor {
            Some(cursor) => {
                let (store, saved) = CursorStore::open(
                    source.pool.clone(),
                    flow,
                    &source.relation,
                    cursor.column,
                    &source.name,
                )
                .await;
                source.position = saved;
                source.store = Some(store);
            }
            None => {
                tracing::warn!(connector = %source.name, "no id or created_at column: every poll reads all rows again");
            }
        }
        Ok(source)
    }

    async fn find_cursor(&self, path: &str) -> Result<Option<Cursor>, ConnectorError> {
        let probe = format!("SELECT * FROM {} LIMIT 0", self.relation);
        let mut backoff = Backoff::default();
        let described = loop {
            match (&self.pool)
                .prepare(AssertSqlSafe(probe.as_str()).into_sql_str())
                .await
            {
                Ok(described) => break described,
                Err(e) => match classify(&e) {
                    Failure::Transient(reason) => {
                        tracing::warn!(connector = %self.name, %reason, "cannot reach PostgreSQL; retrying");
                        backoff.wait().await;
                    }
                    Failure::Rows(_, reason) | Failure::Fatal(_, reason) => {
                        return Err(ConnectorError::Config {
                            path: path.to_owned(),
                            reason: format!("cannot read {}: {reason}", self.label),
                        });
                    }
                },
            }
        };
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

    fn select(&self) -> String {
        match &self.cursor {
            Some(cursor) => {
                let column = quote(cursor.column);
                let filter = if self.position.is_some() {
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

    async fn read_page(&self, max: usize) -> Result<Vec<(String, Option<String>)>, ConnectorError> {
        let sql = self.select();
        let mut backoff = Backoff::default();
        loop {
            let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
            if self.cursor.is_some() {
                query = query
                    .bind(self.position.as_deref().unwrap_or_default())
                    .bind(max as i64);
            }
            match query.fetch_all(&self.pool).await {
                Ok(rows) => {
                    return rows
                        .iter()
                        .map(|row| {
                            Ok((
                                row.try_get::<String, _>(0)?,
                                row.try_get::<Option<String>, _>(1)?,
                            ))
                        })
                        .collect::<Result<_, sqlx::Error>>()
                        .map_err(|e| self.failed(e.to_string()));
                }
                Err(e) => match classify(&e) {
                    Failure::Transient(reason) => {
                        if backoff.attempts() < 3 || backoff.attempts().is_multiple_of(20) {
                            tracing::warn!(connector = %self.name, %reason, "poll failed; retrying");
                        }
                        backoff.wait().await;
                    }
                    Failure::Rows(_, reason) | Failure::Fatal(_, reason) => {
                        return Err(self.failed(reason));
                    }
                },
            }
        }
    }

    fn failed(&self, reason: String) -> ConnectorError {
        ConnectorError::Failed {
            connector: self.name.clone(),
            error_type: crate::error_type::ErrorType::Failed,
            reason,
        }
    }

    fn message(&self, document: &str, id: Option<&str>) -> Message {
        // Only an integer or numeric `id` is metadata; its text is a JSON number.
        let id = id.filter(|_| self.cursor.as_ref().is_some_and(|c| c.column == "id"));
        row_message(document.as_bytes(), &self.label, id, self.raw_mode)
    }
}

#[async_trait]
impl Source for PostgresSource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<SourceBatch>, ConnectorError> {
        loop {
            self.timer.wait().await;
            let rows = self.read_page(max).await?;
            // A full page means more rows are waiting.
            self.timer
                .polled(self.cursor.is_some() && rows.len() >= max);
            if rows.is_empty() {
                continue;
            }
            let last = rows.last().and_then(|(_, position)| position.clone());
            if let Some(last) = &last {
                self.position = Some(last.clone());
            }
            let messages = rows
                .into_iter()
                .map(|(doc, id)| self.message(&doc, id.as_deref()))
                .collect();
            let mut batch = SourceBatch::unacked(messages);
            batch.ack = last.map(|p| AckToken(Box::new(Position(p))));
            return Ok(Some(batch));
        }
    }

    async fn commit(&mut self, token: AckToken) -> Result<(), ConnectorError> {
        if let (Some(store), Ok(position)) = (&self.store, token.0.downcast::<Position>()) {
            store.save(&position.0, &self.name).await;
        }
        Ok(())
    }
}
