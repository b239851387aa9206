//! The Trino source.
//!
//! Polls a table (or the result of `query`) every `pollInterval` seconds. With an
//! integer `id` column, or else a `created_at` timestamp or date, reads are
//! incremental: each asks for the rows past the last one read, in that column's
//! order, a page at a time. The position is kept in memory (Trino catalogs are
//! often read-only), so a restarted processor reads from the start: duplicates,
//! never loss. Without either column every poll reads everything again. Each row
//! becomes a JSON object of its columns, values as Trino's protocol gives them.

use async_trait::async_trait;
use dataflow_api::connectors::{DEFAULT_POLL_INTERVAL_SECS, TrinoSourceSpec};
use serde_json::{Map, Value};

use super::client::{Column, TrinoClient, literal, quote, settings_of};
use super::errors::classify;
use crate::connectors::polling::{PollTimer, Selection};
use crate::connectors::retry::retrying;
use crate::connectors::settings::optional;
use crate::connectors::{AckToken, ConnectorError, Source, SourceBatch};
use crate::error_type::ErrorType;
use crate::wasm::Message;

/// The column incremental reads follow, and its Trino type.
struct Cursor {
    column: &'static str,
    sql_type: String,
}

/// Reads rows as JSON messages.
pub struct TrinoSource {
    name: String,
    client: TrinoClient,
    label: String,
    relation: String,
    cursor: Option<Cursor>,
    position: Option<Value>,
    timer: PollTimer,
    raw_mode: bool,
}

impl TrinoSource {
    /// Builds the client and inspects the rows' columns (spec path `path`).
    pub async fn open(path: &str, spec: &TrinoSourceSpec) -> Result<Self, ConnectorError> {
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
            name: format!("trino source {label}"),
            client,
            label,
            relation,
            cursor: None,
            position: None,
            timer: PollTimer::new(spec.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL_SECS)),
            raw_mode: spec.raw_mode.unwrap_or(false),
        };
        let probe = format!("SELECT * FROM {} AS q LIMIT 0", source.relation);
        let described = retrying(&source.name, "read the columns", classify, || {
            source.client.execute(&probe)
        })
        .await?
        .map_err(|(_, reason)| ConnectorError::Config {
            path: path.to_owned(),
            reason: format!("cannot read {}: {reason}", source.label),
        })?;
        source.cursor = find_cursor(&described.columns);
        if source.cursor.is_none() {
            tracing::warn!(connector = %source.name, "no id or created_at column: every poll reads all rows again");
        }
        Ok(source)
    }

    fn select(&self, max: usize) -> String {
        match &self.cursor {
            Some(cursor) => {
                let column = quote(cursor.column);
                let filter = match &self.position {
                    Some(Value::Number(n)) => format!(" WHERE q.{column} > {n}"),
                    Some(Value::String(s)) => {
                        format!(
                            " WHERE q.{column} > CAST({} AS {})",
                            literal(s),
                            cursor.sql_type
                        )
                    }
                    _ => String::new(),
                };
                format!(
                    "SELECT * FROM {} AS q{filter} ORDER BY q.{column} LIMIT {max}",
                    self.relation
                )
            }
            None => format!("SELECT * FROM {} AS q", self.relation),
        }
    }

    fn message(&self, columns: &[Column], row: Vec<Value>) -> (Message, Option<Value>) {
        let mut object = Map::with_capacity(columns.len());
        for (column, value) in columns.iter().zip(row) {
            object.insert(column.name.clone(), value);
        }
        let position = self
            .cursor
            .as_ref()
            .and_then(|c| object.get(c.column).cloned());
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

#[async_trait]
impl Source for TrinoSource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<SourceBatch>, ConnectorError> {
        loop {
            self.timer.wait().await;
            let sql = self.select(max);
            let result = retrying(&self.name, "poll", classify, || self.client.execute(&sql))
                .await?
                .map_err(|(_, reason)| ConnectorError::Failed {
                    connector: self.name.clone(),
                    error_type: ErrorType::Failed,
                    reason,
                })?;
            // A full page means more rows are waiting.
            self.timer
                .polled(self.cursor.is_some() && result.rows.len() >= max);
            if result.rows.is_empty() {
                continue;
            }
            let mut messages = Vec::with_capacity(result.rows.len());
            for row in result.rows {
                let (message, position) = self.message(&result.columns, row);
                if let Some(position) = position {
                    self.position = Some(position);
                }
                messages.push(message);
            }
            return Ok(Some(SourceBatch::unacked(messages)));
        }
    }

    async fn commit(&mut self, _token: AckToken) -> Result<(), ConnectorError> {
        // Batches carry no position: it lives in memory and moves on read.
        Ok(())
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
