//! The Trino poller.
//!
//! Reads a table (or the result of `query`). With an integer `id` column, or else
//! a `created_at` timestamp or date, reads are incremental: each asks for the rows
//! past the last one read, in that column's order, a page at a time. The position
//! is kept in memory (Trino catalogs are often read-only), so a restarted
//! processor reads from the start: duplicates, never loss. Each row becomes a JSON
//! object of its columns, values as Trino's protocol gives them.

use async_trait::async_trait;
use dataflow_api::connectors::{DEFAULT_POLL_INTERVAL_SECS, TrinoSourceSpec};
use serde_json::{Map, Value};

use dataflow_core::Message;

use super::client::{Column, TrinoClient, literal, quote, settings_of};
use super::errors::classify;
use crate::connectors::polling::{MemoryStore, Page, Poller, PollingSource, Selection, Window};
use crate::connectors::settings::optional;
use crate::connectors::{ConnectorError, Health, Retry};

/// The column incremental reads follow, and its Trino type.
struct Cursor {
    column: &'static str,
    sql_type: String,
}

/// Reads rows as JSON messages.
struct TrinoPoller {
    retry: Retry,
    client: TrinoClient,
    label: String,
    relation: String,
    cursor: Option<Cursor>,
    raw_mode: bool,
}

/// Builds the client and inspects the rows' columns (spec path `path`).
pub async fn open_source(
    path: &str,
    spec: &TrinoSourceSpec,
    health: Health,
) -> Result<PollingSource, ConnectorError> {
    let poller = TrinoPoller::open(path, spec, health).await?;
    let interval = spec.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL_SECS);
    Ok(PollingSource::new(Box::new(poller), Box::new(MemoryStore), interval).await)
}

impl TrinoPoller {
    async fn open(
        path: &str,
        spec: &TrinoSourceSpec,
        health: Health,
    ) -> Result<Self, ConnectorError> {
        let client = TrinoClient::from_settings(path, settings_of!(spec))?;
        let (catalog, schema) = (client.catalog.clone(), client.schema.clone());
        let table = optional(
            spec.table.as_deref(),
            spec.table_secret_ref.as_ref(),
            path,
            "table",
        )?;
        let (label, relation) = match Selection::from_spec(path, table, spec.query.as_deref())? {
            Selection::Query { label, sql } => (label.to_owned(), format!("({sql})")),
            Selection::Table(table) => (
                table.to_owned(),
                format!("{}.{}.{}", quote(&catalog), quote(&schema), quote(table)),
            ),
        };
        let mut source = Self {
            retry: Retry::new(format!("trino source {label}"), health),
            client,
            label,
            relation,
            cursor: None,
            raw_mode: spec.raw_mode.unwrap_or(false),
        };
        let probe = format!("SELECT * FROM {} AS q LIMIT 0", source.relation);
        let described = source
            .retry
            .run("read the columns", classify, || {
                source.client.execute(&probe)
            })
            .await?
            .map_err(|(_, reason)| ConnectorError::Config {
                path: path.to_owned(),
                reason: format!("cannot read {}: {reason}", source.label),
            })?;
        source.cursor = find_cursor(&described.columns);
        Ok(source)
    }

    /// The read of `window` in cursor order (`descending`: the other way), at
    /// most `max` rows.
    fn select(&self, window: Window<'_>, max: usize, descending: bool) -> String {
        let Some(cursor) = &self.cursor else {
            return format!("SELECT * FROM {} AS q", self.relation);
        };
        let column = quote(cursor.column);
        let value = |at: &str| {
            if cursor.column == "id" && is_integer(at) {
                // An integer id: its digits are a literal as they are.
                at.to_owned()
            } else {
                format!("CAST({} AS {})", literal(at), cursor.sql_type)
            }
        };
        let filter = window.where_clause(&format!("q.{column}"), value);
        let direction = if descending { " DESC" } else { "" };
        format!(
            "SELECT * FROM {} AS q{filter} ORDER BY q.{column}{direction} LIMIT {max}",
            self.relation
        )
    }

    fn message(&self, columns: &[Column], row: Vec<Value>) -> (Message, Option<String>) {
        let mut object = Map::with_capacity(columns.len());
        for (column, value) in columns.iter().zip(row) {
            object.insert(column.name.clone(), value);
        }
        let position = self
            .cursor
            .as_ref()
            .and_then(|c| object.get(c.column))
            .and_then(|value| match value {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) => Some(s.clone()),
                _ => None,
            });
        let id = object
            .get("id")
            .filter(|v| v.is_i64() || v.is_u64())
            .map(ToString::to_string);
        let mut metadata = vec![
            ("catalog".to_owned(), self.client.catalog.clone()),
            ("schema".to_owned(), self.client.schema.clone()),
            ("table".to_owned(), self.label.clone()),
        ];
        if let Some(id) = &id {
            metadata.push(("id".to_owned(), id.clone()));
        }
        let value = Value::Object(object);
        let document = if self.raw_mode {
            let mut meta = Map::new();
            meta.insert("catalog".into(), self.client.catalog.clone().into());
            meta.insert("schema".into(), self.client.schema.clone().into());
            meta.insert("table".into(), self.label.clone().into());
            if let Some(id) = value.get("id").filter(|v| v.is_i64() || v.is_u64()) {
                meta.insert("id".into(), id.clone());
            }
            let mut wrapped = Map::new();
            wrapped.insert("value".into(), value);
            wrapped.insert("_metadata".into(), Value::Object(meta));
            Value::Object(wrapped)
        } else {
            value
        };
        let payload = document.to_string().into_bytes();
        (Message { payload, metadata }, position)
    }
}

/// An integer `id`, or else a timestamp or date `created_at`.
fn find_cursor(columns: &[Column]) -> Option<Cursor> {
    let type_of = |name: &str| {
        columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.r#type.as_str())
    };
    if let Some(ty) =
        type_of("id").filter(|t| matches!(*t, "tinyint" | "smallint" | "integer" | "bigint"))
    {
        return Some(Cursor {
            column: "id",
            sql_type: ty.to_owned(),
        });
    }
    if let Some(ty) = type_of("created_at").filter(|t| t.starts_with("timestamp") || *t == "date") {
        return Some(Cursor {
            column: "created_at",
            sql_type: ty.to_owned(),
        });
    }
    None
}

/// Whether `text` is an integer's digits (with an optional sign).
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[async_trait]
impl Poller for TrinoPoller {
    fn name(&self) -> &str {
        self.retry.connector()
    }

    fn incremental(&self) -> bool {
        self.cursor.is_some()
    }

    async fn check_position(&mut self, _position: &str) -> Result<String, String> {
        Err("a Trino source keeps no position between runs".into())
    }

    async fn poll(&mut self, window: Window<'_>, max: usize) -> Result<Page, ConnectorError> {
        self.read(&self.select(window, max, false)).await
    }

    async fn last_position(&mut self) -> Result<Option<String>, ConnectorError> {
        Ok(self
            .read(&self.select(Window::default(), 1, true))
            .await?
            .last)
    }
}

impl TrinoPoller {
    /// Runs a read made by [`Self::select`] and turns its rows into a page.
    async fn read(&self, sql: &str) -> Result<Page, ConnectorError> {
        let result = self
            .retry
            .run("poll", classify, || self.client.execute(sql))
            .await?
            .map_err(|(error_type, reason)| ConnectorError::Failed {
                connector: self.name().to_owned(),
                error_type,
                reason,
            })?;
        let mut page = Page::default();
        for row in result.rows {
            let (message, position) = self.message(&result.columns, row);
            if position.is_some() {
                page.last = position;
            }
            page.messages.push(message);
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, ty: &str) -> Column {
        Column {
            name: name.into(),
            r#type: ty.into(),
        }
    }

    #[test]
    fn follows_id_or_created_at() {
        let c = find_cursor(&[column("id", "bigint"), column("name", "varchar")]).unwrap();
        assert_eq!((c.column, c.sql_type.as_str()), ("id", "bigint"));
        let c = find_cursor(&[
            column("id", "varchar"),
            column("created_at", "timestamp(3)"),
        ])
        .unwrap();
        assert_eq!(c.column, "created_at");
        assert!(find_cursor(&[column("name", "varchar")]).is_none());
    }
}
