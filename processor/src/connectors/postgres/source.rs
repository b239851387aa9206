//! The PostgreSQL poller.
//!
//! Reads a table (or the result of `query`). Reads are incremental when there is
//! a cursor column: `changeTrackingColumn` when set, else an `id` column (integer
//! or numeric), else a `created_at` column (timestamp or date). Each read asks for
//! rows past the last one read, in that column's order (then `orderByColumn`'s,
//! which breaks ties: the position then holds both values), a page at a time.
//! Rows whose cursor column is NULL are not read. Rows become JSON on the server
//! (`to_jsonb`).

use async_trait::async_trait;
use dataflow_api::connectors::{DEFAULT_POLL_INTERVAL_SECS, PostgresqlSourceSpec};
use sqlx::{AssertSqlSafe, Column, Executor, PgPool, Row, SqlSafeStr, Statement, TypeInfo};

use super::cursor_store::CursorStore;
use super::errors::classify;
use super::ident::{QualifiedName, quote};
use crate::connectors::polling::{
    Page, Poller, PollingSource, Selection, Window, position_key, row_message,
};
use crate::connectors::settings::{optional, required};
use crate::connectors::{ConnectorError, Health, Retry};

/// A column reads follow, and the SQL type its text is cast back to.
struct CursorColumn {
    name: String,
    sql_type: String,
}

/// The column(s) incremental reads follow.
struct Cursor {
    tracking: CursorColumn,
    /// Breaks ties of `tracking`; the position is then `[tracking, tie]` as a
    /// JSON array of texts.
    tie: Option<CursorColumn>,
    /// The tracking column is an integer or numeric `id` without a tie-breaker:
    /// its text, a JSON number, becomes each message's `id` metadata.
    id_is_metadata: bool,
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
    poller.cursor = poller.find_cursor(path, spec).await?;
    let store: Box<dyn crate::connectors::polling::PositionStore> = match &poller.cursor {
        Some(cursor) if persist => {
            let columns = match &cursor.tie {
                Some(tie) => format!("{},{}", cursor.tracking.name, tie.name),
                None => cursor.tracking.name.clone(),
            };
            Box::new(
                CursorStore::open(
                    poller.pool.clone(),
                    position_key(flow, &poller.relation, &columns),
                    poller.retry.connector(),
                )
                .await,
            )
        }
        _ => Box::new(crate::connectors::polling::MemoryStore),
    };
    let interval = spec.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL_SECS);
    Ok(PollingSource::new(Box::new(poller), store, interval)
        .await
        .with_page_rows(spec.read_batch_size))
}

/// The SQL type a cursor column's text is cast back to, from the type the server
/// reports; `None` for a type without a usable ordering (or a name that is not a
/// plain type name).
fn cursor_type(reported: &str) -> Option<String> {
    let plain = reported
        .trim_end_matches("[]")
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ');
    let unordered = matches!(
        reported,
        "JSON" | "XML" | "POINT" | "LINE" | "LSEG" | "BOX" | "PATH" | "POLYGON" | "CIRCLE"
    );
    (plain && !unordered && !reported.is_empty()).then(|| reported.to_ascii_lowercase())
}

/// Whether the default cursor can follow a column of type `reported`: `id` must
/// be an integer or numeric, `created_at` a timestamp or date.
fn default_cursor_fits(column: &str, reported: &str) -> bool {
    match column {
        "id" => matches!(
            reported,
            "INT2" | "INT4" | "INT8" | "SMALLINT" | "INT" | "INTEGER" | "BIGINT" | "NUMERIC"
        ),
        _ => matches!(reported, "TIMESTAMPTZ" | "TIMESTAMP" | "DATE"),
    }
}

impl PostgresPoller {
    async fn find_cursor(
        &self,
        path: &str,
        spec: &PostgresqlSourceSpec,
    ) -> Result<Option<Cursor>, ConnectorError> {
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
        let named = |field: &str, name: &str| -> Result<CursorColumn, ConnectorError> {
            let config = |reason: String| ConnectorError::Config {
                path: format!("{path}.{field}"),
                reason,
            };
            let reported = type_of(name)
                .ok_or_else(|| config(format!("{} has no column {name:?}", self.label)))?;
            let sql_type = cursor_type(&reported).ok_or_else(|| {
                config(format!(
                    "column {name:?} is of type {reported}, which has no order to follow"
                ))
            })?;
            Ok(CursorColumn {
                name: name.to_owned(),
                sql_type,
            })
        };
        if let Some(name) = &spec.change_tracking_column {
            let tie = match &spec.order_by_column {
                Some(tie) => Some(named("orderByColumn", tie)?),
                None => None,
            };
            let tracking = named("changeTrackingColumn", name)?;
            let id_is_metadata = tie.is_none()
                && tracking.name == "id"
                && type_of("id").is_some_and(|reported| default_cursor_fits("id", &reported));
            return Ok(Some(Cursor {
                tracking,
                tie,
                id_is_metadata,
            }));
        }
        for name in ["id", "created_at"] {
            if let Some(reported) = type_of(name)
                && default_cursor_fits(name, &reported)
                && let Some(sql_type) = cursor_type(&reported)
            {
                return Ok(Some(Cursor {
                    tracking: CursorColumn {
                        name: name.to_owned(),
                        sql_type,
                    },
                    tie: None,
                    id_is_metadata: name == "id",
                }));
            }
        }
        Ok(None)
    }

    /// The read of `window` in cursor order (`descending`: the other way).
    /// Binds: `$1` after, `$2` the row limit, `$3` until.
    fn select(&self, window: Window<'_>, descending: bool) -> String {
        let Some(cursor) = &self.cursor else {
            return format!(
                "SELECT to_jsonb(q)::text, NULL::text FROM {}",
                self.relation
            );
        };
        let t = format!("q.{}", quote(&cursor.tracking.name));
        let t_type = &cursor.tracking.sql_type;
        let direction = if descending { " DESC" } else { "" };
        let (position, mut filter, order) = match &cursor.tie {
            None => {
                let filter = if window.after.is_some() {
                    format!(" AND {t} > $1::text::{t_type}")
                } else {
                    String::new()
                };
                (format!("{t}::text"), filter, format!("{t}{direction}"))
            }
            Some(tie) => {
                let o = format!("q.{}", quote(&tie.name));
                let o_type = &tie.sql_type;
                // A position of one element (a reset to a tracking value) reads
                // every row past that value: `o > NULL` is never true.
                let filter = if window.after.is_some() {
                    format!(
                        " AND ({t} > ($1::jsonb->>0)::{t_type} OR ({t} = ($1::jsonb->>0)::{t_type} AND {o} > ($1::jsonb->>1)::{o_type}))"
                    )
                } else {
                    String::new()
                };
                (
                    format!("jsonb_build_array({t}::text, {o}::text)::text"),
                    filter,
                    format!("{t}{direction}, {o}{direction}"),
                )
            }
        };
        if window.until.is_some() {
            filter.push_str(&match &cursor.tie {
                None => format!(" AND {t} <= $3::text::{t_type}"),
                Some(tie) => {
                    let o = format!("q.{}", quote(&tie.name));
                    let o_type = &tie.sql_type;
                    format!(
                        " AND ({t} < ($3::jsonb->>0)::{t_type} OR ({t} = ($3::jsonb->>0)::{t_type} AND {o} <= ($3::jsonb->>1)::{o_type}))"
                    )
                }
            });
        }
        format!(
            "SELECT to_jsonb(q)::text, {position} FROM {} WHERE {t} IS NOT NULL{filter} ORDER BY {order} LIMIT $2",
            self.relation
        )
    }

    fn message(&self, document: &str, id: Option<&str>) -> dataflow_core::Message {
        let id = id.filter(|_| self.cursor.as_ref().is_some_and(|c| c.id_is_metadata));
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

    /// Asks the server to read `position` as the cursor column's type. With a
    /// tie-breaker, a position is either a JSON array of both values' texts (as
    /// the source saves it) or one tracking value (read: every row past it).
    async fn check_position(&mut self, position: &str) -> Result<String, String> {
        let Some(cursor) = &self.cursor else {
            return Err("the source has no cursor column".into());
        };
        let normalised = match &cursor.tie {
            None => position.to_owned(),
            Some(_) => match serde_json::from_str::<Vec<String>>(position) {
                Ok(values) if (1..=2).contains(&values.len()) => position.to_owned(),
                Ok(_) => return Err(format!("{position:?} must hold one or two values")),
                Err(_) => serde_json::to_string(&[position]).map_err(|e| e.to_string())?,
            },
        };
        let sql = match &cursor.tie {
            None => format!("SELECT $1::text::{}", cursor.tracking.sql_type),
            Some(tie) => format!(
                "SELECT ($1::jsonb->>0)::{}, ($1::jsonb->>1)::{}",
                cursor.tracking.sql_type, tie.sql_type
            ),
        };
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(&normalised)
            .execute(&self.pool)
            .await
            .map(|_| normalised.clone())
            .map_err(|e| {
                format!(
                    "{position:?} is not a value of column {} ({}): {e}",
                    cursor.tracking.name, cursor.tracking.sql_type
                )
            })
    }

    async fn poll(&mut self, window: Window<'_>, max: usize) -> Result<Page, ConnectorError> {
        let sql = self.select(window, false);
        self.read(&sql, window, max).await
    }

    async fn last_position(&mut self) -> Result<Option<String>, ConnectorError> {
        let sql = self.select(Window::default(), true);
        Ok(self.read(&sql, Window::default(), 1).await?.last)
    }
}

impl PostgresPoller {
    /// Runs a read made by [`Self::select`] and turns its rows into a page.
    async fn read(
        &self,
        sql: &str,
        window: Window<'_>,
        max: usize,
    ) -> Result<Page, ConnectorError> {
        let rows = self
            .retry
            .run("poll", classify, || {
                let mut query = sqlx::query(AssertSqlSafe(sql));
                if self.cursor.is_some() {
                    query = query
                        .bind(window.after.unwrap_or_default())
                        .bind(i64::try_from(max).unwrap_or(i64::MAX))
                        .bind(window.until.unwrap_or_default());
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
