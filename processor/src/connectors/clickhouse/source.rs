//! The ClickHouse source.
//!
//! Polls a table (or the result of `query`) every `pollInterval` seconds. When the
//! rows have an integer `id` column, or else a `created_at` Date/DateTime column,
//! reads are incremental: each asks for the rows past the last one read, in that
//! column's order, a page at a time, and the position survives restarts (see
//! [`CursorStore`]). Without either column every poll reads everything again.
//! Rows arrive as `JSONEachRow` and become messages as they are.

use async_trait::async_trait;
use clickhouse::Client;
use dataflow_api::connectors::{ClickhouseSourceSpec, DEFAULT_POLL_INTERVAL_SECS};
use serde_json::value::RawValue;

use super::connection::connect;
use super::cursor_store::CursorStore;
use super::errors::classify;
use super::ident::{TableName, literal, quote};
use crate::connectors::polling::{PollTimer, Selection, row_message};
use crate::connectors::retry::retrying;
use crate::connectors::settings::{optional, required};
use crate::connectors::{AckToken, ConnectorError, Rejected, Source, SourceBatch};
use crate::error_type::ErrorType;
use crate::wasm::Message;

/// The column incremental reads follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    /// An integer `id`: positions are numbers.
    Id,
    /// A `created_at` Date or DateTime: positions are its text.
    CreatedAt,
}

impl Cursor {
    fn column(self) -> &'static str {
        match self {
            Cursor::Id => "id",
            Cursor::CreatedAt => "created_at",
        }
    }
}

/// Reads rows as JSON messages.
pub struct ClickhouseSource {
    name: String,
    client: Client,
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

/// The cursor fields of a row, left as JSON text.
#[derive(serde::Deserialize)]
struct CursorFields<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created_at: Option<&'a RawValue>,
}

impl ClickhouseSource {
    /// Builds the client and inspects the rows' columns (spec path `path`); `flow`
    /// (`namespace/name`) keys the saved position.
    pub async fn open(
        path: &str,
        spec: &ClickhouseSourceSpec,
        flow: &str,
    ) -> Result<Self, ConnectorError> {
        let connection_string = required(
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
        let connection = connect(path, connection_string)?;
        let (label, relation) = match Selection::from_spec(path, table, spec.query.as_deref())? {
            Selection::Query { label, sql } => (label.to_owned(), format!("({sql})")),
            Selection::Table(table) => {
                let name = TableName::parse(table, &connection.database).ok_or_else(|| {
                    ConnectorError::Config {
                        path: format!("{path}.table"),
                        reason: format!("{table:?} is not a table name"),
                    }
                })?;
                (table.to_owned(), name.to_string())
            }
        };
        let mut source = Self {
            name: format!("clickhouse source {label}"),
            client: connection.client,
            label,
            relation,
            cursor: None,
            position: None,
            timer: PollTimer::new(spec.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL_SECS)),
            raw_mode: spec.raw_mode.unwrap_or(false),
            store: None,
        };
        source.cursor = source.find_cursor(path).await?;
        match source.cursor {
            Some(cursor) => {
                let (store, saved) = CursorStore::open(
                    source.client.clone(),
                    flow,
                    &source.relation,
                    cursor.column(),
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

    /// The cursor column the rows offer, from their names and types.
    async fn find_cursor(&self, path: &str) -> Result<Option<Cursor>, ConnectorError> {
        #[derive(serde::Deserialize)]
        struct Column {
            name: String,
            r#type: String,
        }
        #[derive(serde::Deserialize)]
        struct Described {
            meta: Vec<Column>,
        }
        let probe = format!("SELECT * FROM {} LIMIT 0", self.relation);
        let body = retrying(&self.name, "read the columns", classify, || async {
            self.client
                .query_raw(&probe)
                .fetch_bytes("JSONCompact")?
                .collect()
                .await
        })
        .await?
        .map_err(|(_, reason)| ConnectorError::Config {
            path: path.to_owned(),
            reason: format!("cannot read {}: {reason}", self.label),
        })?;
        let described: Described = serde_json::from_slice(&body)
            .map_err(|e| self.failed(format!("reading the columns: {e}")))?;
        let type_of = |wanted: &str| {
            described
                .meta
                .iter()
                .find(|c| c.name == wanted)
                .map(|c| c.r#type.as_str())
        };
        if type_of("id").is_some_and(|t| t.starts_with("Int") || t.starts_with("UInt")) {
            return Ok(Some(Cursor::Id));
        }
        if type_of("created_at").is_some_and(|t| t.starts_with("Date")) {
            return Ok(Some(Cursor::CreatedAt));
        }
        Ok(None)
    }

    fn select(&self, max: usize) -> String {
        match self.cursor {
            Some(cursor) => {
                let column = quote(cursor.column());
                let filter = match (&self.position, cursor) {
                    (Some(at), Cursor::Id) => format!(" WHERE {column} > {at}"),
                    (Some(at), Cursor::CreatedAt) => format!(" WHERE {column} > {}", literal(at)),
                    (None, _) => String::new(),
                };
                format!(
                    "SELECT * FROM {}{filter} ORDER BY {column} LIMIT {max}",
                    self.relation
                )
            }
            None => format!("SELECT * FROM {}", self.relation),
        }
    }

    async fn read_page(&self, max: usize) -> Result<bytes::Bytes, ConnectorError> {
        let sql = self.select(max);
        retrying(&self.name, "poll", classify, || async {
            self.client
                .query_raw(&sql)
                .fetch_bytes("JSONEachRow")?
                .collect()
                .await
        })
        .await?
        .map_err(|(_, reason)| self.failed(reason))
    }

    fn failed(&self, reason: String) -> ConnectorError {
        ConnectorError::Failed {
            connector: self.name.clone(),
            error_type: ErrorType::Failed,
            reason,
        }
    }

    /// Turns a page of `JSONEachRow` lines into messages; returns them with the
    /// cursor position of the last row.
    fn messages(&self, page: &[u8]) -> (Vec<Message>, Vec<Rejected>, Option<String>) {
        let mut messages = Vec::new();
        let mut rejected = Vec::new();
        let mut last = None;
        for line in page.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let fields = match serde_json::from_slice::<CursorFields<'_>>(line) {
                Ok(fields) => fields,
                Err(e) => {
                    rejected.push(Rejected {
                        message: Message {
                            payload: line.to_vec(),
                            metadata: vec![("table".to_owned(), self.label.clone())],
                        },
                        error_type: ErrorType::InvalidData,
                        reason: format!("row is not a JSON object: {e}"),
                    });
                    continue;
                }
            };
            let id = fields.id.map(RawValue::get).filter(|id| is_integer(id));
            match self.cursor {
                Some(Cursor::Id) => last = id.map(str::to_owned).or(last),
                Some(Cursor::CreatedAt) => {
                    last = fields
                        .created_at
                        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
                        .or(last);
                }
                None => {}
            }
            messages.push(row_message(line, &self.label, id, self.raw_mode));
        }
        (messages, rejected, last)
    }
}

/// Whether `text` is a JSON integer (what an integer `id` column gives).
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[async_trait]
impl Source for ClickhouseSource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<SourceBatch>, ConnectorError> {
        loop {
            self.timer.wait().await;
            let page = self.read_page(max).await?;
            let (messages, rejected, last) = self.messages(&page);
            let rows = messages.len() + rejected.len();
            // A full page means more rows are waiting.
            self.timer.polled(self.cursor.is_some() && rows >= max);
            if rows == 0 {
                continue;
            }
            if let Some(last) = &last {
                self.position = Some(last.clone());
            }
            return Ok(Some(SourceBatch {
                messages,
                rejected,
                ack: last.map(|p| AckToken(Box::new(Position(p)))),
            }));
        }
    }

    async fn commit(&mut self, token: AckToken) -> Result<(), ConnectorError> {
        if let (Some(store), Ok(position)) = (&mut self.store, token.0.downcast::<Position>()) {
            store.commit(position.0, &self.name).await;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(store) = &mut self.store {
            store.save_pending(&self.name).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(cursor: Option<Cursor>, raw_mode: bool) -> ClickhouseSource {
        ClickhouseSource {
            name: "clickhouse source events".into(),
            client: Client::default(),
            label: "events".into(),
            relation: "`default`.`events`".into(),
            cursor,
            position: None,
            timer: PollTimer::new(5),
            raw_mode,
            store: None,
        }
    }

    #[test]
    fn reads_past_the_last_position_in_cursor_order() {
        let mut s = source(Some(Cursor::Id), false);
        assert_eq!(
            s.select(10),
            "SELECT * FROM `default`.`events` ORDER BY `id` LIMIT 10"
        );
        s.position = Some("42".into());
        assert_eq!(
            s.select(10),
            "SELECT * FROM `default`.`events` WHERE `id` > 42 ORDER BY `id` LIMIT 10"
        );
        let mut s = source(Some(Cursor::CreatedAt), false);
        s.position = Some("2026-11-23 10:00:00".into());
        assert!(
            s.select(5)
                .contains("WHERE `created_at` > '2026-11-23 10:00:00'")
        );
        assert_eq!(
            source(None, false).select(5),
            "SELECT * FROM `default`.`events`"
        );
    }

    #[test]
    fn rows_become_messages_with_metadata() {
        let s = source(Some(Cursor::Id), true);
        let page = b"{\"id\":7,\"name\":\"a\"}\n{\"id\":8,\"name\":\"b\"}\nnot json\n";
        let (messages, rejected, last) = s.messages(page);
        assert_eq!(messages.len(), 2);
        assert_eq!(rejected.len(), 1);
        assert_eq!(last.as_deref(), Some("8"));
        assert_eq!(
            String::from_utf8(messages[0].payload.clone()).unwrap(),
            r#"{"value":{"id":7,"name":"a"},"_metadata":{"table":"events","id":7}}"#
        );
        assert_eq!(messages[1].metadata[1], ("id".to_owned(), "8".to_owned()));
    }
}
