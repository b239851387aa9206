//! The ClickHouse poller.
//!
//! Reads a table (or the result of `query`). When the rows have an integer `id`
//! column, or else a `created_at` Date/DateTime column, reads are incremental:
//! each asks for the rows past the last one read, in that column's order, a page
//! at a time, and the position survives restarts (see [`CursorStore`]). Rows
//! arrive as `JSONEachRow` and become messages as they are.

use async_trait::async_trait;
use clickhouse::Client;
use dataflow_api::connectors::{ClickhouseSourceSpec, DEFAULT_POLL_INTERVAL_SECS};
use serde_json::value::RawValue;

use dataflow_api::ErrorType;
use dataflow_core::Message;

use super::connection::connect;
use super::cursor_store::CursorStore;
use super::errors::classify;
use super::ident::{TableName, literal, quote};
use crate::connectors::polling::{
    MemoryStore, Page, Poller, PollingSource, PositionStore, Selection, Window, position_key,
    row_message,
};
use crate::connectors::settings::{optional, required};
use crate::connectors::{ConnectorError, Health, Rejected, Retry};

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
struct ClickhousePoller {
    retry: Retry,
    client: Client,
    label: String,
    relation: String,
    cursor: Option<Cursor>,
    raw_mode: bool,
}

/// The cursor fields of a row, left as JSON text.
#[derive(serde::Deserialize)]
struct CursorFields<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created_at: Option<&'a RawValue>,
}

/// Builds the client, inspects the rows' columns and opens the position store
/// (spec path `path`); `flow` (`namespace/name`) keys the saved position.
pub async fn open_source(
    path: &str,
    spec: &ClickhouseSourceSpec,
    flow: &str,
    persist: bool,
    health: Health,
) -> Result<PollingSource, ConnectorError> {
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
    let mut poller = ClickhousePoller {
        retry: Retry::new(format!("clickhouse source {label}"), health),
        client: connection.client,
        label,
        relation,
        cursor: None,
        raw_mode: spec.raw_mode.unwrap_or(false),
    };
    poller.cursor = poller.find_cursor(path).await?;
    let store: Box<dyn PositionStore> = match poller.cursor.filter(|_| persist) {
        Some(cursor) => Box::new(
            CursorStore::open(
                poller.client.clone(),
                position_key(flow, &poller.relation, cursor.column()),
                poller.retry.connector(),
            )
            .await,
        ),
        None => Box::new(MemoryStore),
    };
    let interval = spec.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL_SECS);
    Ok(PollingSource::new(Box::new(poller), store, interval).await)
}

impl ClickhousePoller {
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
        let body = self
            .retry
            .run("read the columns", classify, || async {
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

    /// The read of `window` in cursor order (`descending`: the other way),
    /// at most `max` rows. Positions are an integer's digits (checked when
    /// read) or a quoted literal.
    fn select(&self, window: Window<'_>, max: usize, descending: bool) -> String {
        let Some(cursor) = self.cursor else {
            return format!("SELECT * FROM {}", self.relation);
        };
        let column = quote(cursor.column());
        let value = |at: &str| match cursor {
            Cursor::Id => at.to_owned(),
            Cursor::CreatedAt => literal(at),
        };
        let filter = window.where_clause(&column, value);
        let direction = if descending { " DESC" } else { "" };
        format!(
            "SELECT * FROM {}{filter} ORDER BY {column}{direction} LIMIT {max}",
            self.relation
        )
    }

    async fn read_page(&self, sql: &str) -> Result<bytes::Bytes, ConnectorError> {
        self.retry
            .run("poll", classify, || async {
                self.client
                    .query_raw(sql)
                    .fetch_bytes("JSONEachRow")?
                    .collect()
                    .await
            })
            .await?
            .map_err(|(_, reason)| self.failed(reason))
    }

    fn failed(&self, reason: String) -> ConnectorError {
        ConnectorError::Failed {
            connector: self.retry.connector().to_owned(),
            error_type: ErrorType::Failed,
            reason,
        }
    }

    /// Turns a page of `JSONEachRow` lines into messages, with the cursor position
    /// of the last row.
    fn page(&self, body: &[u8]) -> Page {
        let mut messages = Vec::new();
        let mut rejected = Vec::new();
        let mut last = None;
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
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
        Page {
            messages,
            rejected,
            last,
        }
    }
}

/// Whether `text` is a JSON integer (what an integer `id` column gives).
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[async_trait]
impl Poller for ClickhousePoller {
    fn name(&self) -> &str {
        self.retry.connector()
    }

    fn incremental(&self) -> bool {
        self.cursor.is_some()
    }

    /// An `id` position must be an integer (it is written into the statement
    /// as a number); a `created_at` one must compare with the column.
    async fn check_position(&mut self, position: &str) -> Result<String, String> {
        match self.cursor {
            None => Err("the source has no cursor column".into()),
            Some(Cursor::Id) => position
                .parse::<i128>()
                .map(|id| id.to_string())
                .map_err(|_| format!("{position:?} is not an integer id")),
            Some(Cursor::CreatedAt) => {
                let sql = format!(
                    "SELECT count() FROM (SELECT 1 FROM {} WHERE `created_at` > {} LIMIT 0)",
                    self.relation,
                    literal(position)
                );
                self.client
                    .query_raw(&sql)
                    .execute()
                    .await
                    .map(|()| position.to_owned())
                    .map_err(|e| format!("{position:?} is not a created_at value: {e}"))
            }
        }
    }

    async fn poll(&mut self, window: Window<'_>, max: usize) -> Result<Page, ConnectorError> {
        let body = self.read_page(&self.select(window, max, false)).await?;
        Ok(self.page(&body))
    }

    async fn last_position(&mut self) -> Result<Option<String>, ConnectorError> {
        let body = self
            .read_page(&self.select(Window::default(), 1, true))
            .await?;
        Ok(self.page(&body).last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(cursor: Option<Cursor>, raw_mode: bool) -> ClickhousePoller {
        ClickhousePoller {
            retry: Retry::new("clickhouse source events", Health::new()),
            client: Client::default(),
            label: "events".into(),
            relation: "`default`.`events`".into(),
            cursor,
            raw_mode,
        }
    }

    #[test]
    fn reads_past_the_last_position_in_cursor_order() {
        let s = source(Some(Cursor::Id), false);
        assert_eq!(
            s.select(Window::default(), 10, false),
            "SELECT * FROM `default`.`events` ORDER BY `id` LIMIT 10"
        );
        assert_eq!(
            s.select(at(Some("42"), None), 10, false),
            "SELECT * FROM `default`.`events` WHERE `id` > 42 ORDER BY `id` LIMIT 10"
        );
        let s = source(Some(Cursor::CreatedAt), false);
        assert!(
            s.select(at(Some("2026-11-23 10:00:00"), None), 5, false)
                .contains("WHERE `created_at` > '2026-11-23 10:00:00'")
        );
        assert_eq!(
            source(None, false).select(Window::default(), 5, false),
            "SELECT * FROM `default`.`events`"
        );
    }

    fn at<'a>(after: Option<&'a str>, until: Option<&'a str>) -> Window<'a> {
        Window { after, until }
    }

    #[test]
    fn a_job_reads_up_to_the_last_row_present_at_start() {
        let s = source(Some(Cursor::Id), false);
        assert_eq!(
            s.select(Window::default(), 1, true),
            "SELECT * FROM `default`.`events` ORDER BY `id` DESC LIMIT 1"
        );
        assert_eq!(
            s.select(at(Some("42"), Some("99")), 10, false),
            "SELECT * FROM `default`.`events` WHERE `id` > 42 AND `id` <= 99 ORDER BY `id` LIMIT 10"
        );
        let s = source(Some(Cursor::CreatedAt), false);
        assert!(
            s.select(at(None, Some("2026-11-23 10:00:00")), 5, false)
                .contains("WHERE `created_at` <= '2026-11-23 10:00:00' ORDER BY")
        );
    }

    #[test]
    fn rows_become_messages_with_metadata() {
        let s = source(Some(Cursor::Id), true);
        let page = b"{\"id\":7,\"name\":\"a\"}\n{\"id\":8,\"name\":\"b\"}\nnot json\n";
        let Page {
            messages,
            rejected,
            last,
        } = s.page(page);
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
