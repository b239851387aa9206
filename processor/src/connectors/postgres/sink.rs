//! The PostgreSQL sink.
//!
//! A batch is one statement whatever its size. Large batches of whole messages into
//! a `data` column go in with `COPY ... FROM STDIN` (the fastest path PostgreSQL
//! has); everything else uses one `INSERT ... SELECT` whose single parameter is a
//! JSON array of the messages, expanded by the server (`jsonb_array_elements`, or
//! `jsonb_populate_recordset` onto the table's columns). When the server refuses a batch because of a row
//! (constraint violation, bad value), the batch is retried row by row and only the
//! offending rows are rejected. Lost connections are retried with backoff, the
//! same batch in the same order. Batching itself is [`BatchingSink`]'s.

use std::fmt::Write as _;

use async_trait::async_trait;
use dataflow_api::connectors::{DEFAULT_FLUSH_INTERVAL_SECS, PostgresqlSinkSpec};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use sqlx::{AssertSqlSafe, PgPool, Row};

use super::errors::classify;
use super::ident::{QualifiedName, quote};
use crate::connectors::batching::{BatchWriter, BatchingSink, isolate_refused};
use crate::connectors::raw_envelope::write_envelope;
use crate::connectors::settings::required;
use crate::connectors::{ConnectorError, Health, Rejected, Retry, Sink};
use dataflow_api::ErrorType;
use dataflow_core::Message;

/// Batches smaller than this go in with one INSERT rather than COPY. COPY needs
/// two writes (data, then the end marker) and sqlx leaves Nagle's algorithm on, so
/// a batch that fits in one TCP segment waits for the server's delayed ACK (~40 ms);
/// large batches span many segments, are acknowledged at once, and gain from COPY.
const COPY_MIN_BYTES: usize = 256 * 1024;

/// How messages land in the table.
enum Layout {
    /// The whole message into the `data` column (`jsonb` or `json`).
    Data { jsonb: bool },
    /// Top-level fields onto the table's columns of the same name.
    Columns(Vec<String>),
    /// `rawMode`: the message into `value`, its metadata into `_metadata`
    /// (see [`write_envelope`]); the SQL types of those two columns.
    Raw { value: String, metadata: String },
}

/// The table and how to write a batch into it.
struct TableWriter {
    retry: Retry,
    pool: PgPool,
    table: QualifiedName,
    layout: Layout,
    conflict: Option<Vec<String>>,
}

/// Connects, creates the table when `autoCreateTable` asks, and reads its columns
/// (spec path `path`).
pub async fn open(
    path: &str,
    spec: &PostgresqlSinkSpec,
    health: Health,
) -> Result<Box<dyn Sink>, ConnectorError> {
    let url = required(
        spec.connection_string.as_deref(),
        spec.connection_string_secret_ref.as_ref(),
        path,
        "connectionString",
    )?;
    let table_text = required(
        spec.table.as_deref(),
        spec.table_secret_ref.as_ref(),
        path,
        "table",
    )?;
    let table = QualifiedName::parse(table_text).ok_or_else(|| ConnectorError::Config {
        path: format!("{path}.table"),
        reason: format!("{table_text:?} is not a table name"),
    })?;
    let name = format!("postgresql sink {table_text}");
    let pool = super::pool(path, url, 2)?;
    let mut sink = TableWriter {
        retry: Retry::new(name, health),
        pool,
        table,
        layout: Layout::Data { jsonb: true },
        conflict: None,
    };
    let raw = spec.raw_mode == Some(true);
    if spec.auto_create_table == Some(true) {
        sink.create_table(raw).await?;
    }
    let columns = sink.columns().await?;
    if columns.is_empty() {
        return Err(ConnectorError::Config {
            path: format!("{path}.table"),
            reason: format!(
                "table {table_text} does not exist (create it, or set autoCreateTable: true)"
            ),
        });
    }
    let json_column = |wanted: &str| {
        columns
            .iter()
            .find(|(name, ty)| name == wanted && (ty == "jsonb" || ty == "json"))
            .map(|(_, ty)| ty.clone())
    };
    sink.layout = if raw {
        match (json_column("value"), json_column("_metadata")) {
            (Some(value), Some(metadata)) => Layout::Raw { value, metadata },
            _ => {
                return Err(ConnectorError::Config {
                    path: format!("{path}.rawMode"),
                    reason: format!(
                        "table {table_text} needs json or jsonb columns value and _metadata \
                         (autoCreateTable: true makes them)"
                    ),
                });
            }
        }
    } else {
        match json_column("data") {
            Some(ty) => Layout::Data {
                jsonb: ty == "jsonb",
            },
            None => Layout::Columns(columns.into_iter().map(|(name, _)| name).collect()),
        }
    };
    if spec.upsert_mode == Some(true) {
        let keys = match &spec.conflict_key {
            Some(keys) => keys.columns().to_vec(),
            None => sink.primary_key().await?,
        };
        if keys.is_empty() {
            return Err(ConnectorError::Config {
                path: format!("{path}.conflictKey"),
                reason: format!(
                    "upsertMode needs a conflictKey: table {table_text} has no primary key"
                ),
            });
        }
        sink.conflict = Some(keys);
    }
    Ok(Box::new(BatchingSink::new(
        sink,
        spec.batch_size.unwrap_or(1) as usize,
        spec.batch_flush_interval_seconds
            .unwrap_or(DEFAULT_FLUSH_INTERVAL_SECS),
    )))
}

impl TableWriter {
    async fn retrying<T, F, Fut>(
        &self,
        what: &str,
        run: F,
    ) -> Result<Result<T, (ErrorType, String)>, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.retry.run(what, classify, run).await
    }

    /// `raw`: the `rawMode` table (`value`, `_metadata`), else one `data` column.
    async fn create_table(&self, raw: bool) -> Result<(), ConnectorError> {
        let (columns, indexed) = if raw {
            (
                "value JSONB NOT NULL, _metadata JSONB NOT NULL DEFAULT '{}'",
                "value",
            )
        } else {
            ("data JSONB NOT NULL", "data")
        };
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (id BIGSERIAL PRIMARY KEY, {columns}, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            self.table
        );
        let index = format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} USING GIN ({indexed})",
            quote(&format!("{}_{indexed}_gin", self.table.name())),
            self.table
        );
        for statement in [create, index] {
            self.retrying("create table", || {
                sqlx::query(AssertSqlSafe(statement.as_str())).execute(&self.pool)
            })
            .await?
            .map_err(|(error_type, reason)| ConnectorError::Failed {
                connector: self.retry.connector().to_owned(),
                error_type,
                reason,
            })?;
        }
        Ok(())
    }

    /// `(name, type)` of every column, in order; empty when the table is missing.
    async fn columns(&self) -> Result<Vec<(String, String)>, ConnectorError> {
        let table = self.table.to_string();
        let rows = self
            .retrying("read table columns", || {
                sqlx::query(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                )
                .bind(&table)
                .fetch_all(&self.pool)
            })
            .await?
            .map_err(|(error_type, reason)| self.failed(error_type, reason))?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| self.failed(ErrorType::Failed, e.to_string()))
    }

    async fn primary_key(&self) -> Result<Vec<String>, ConnectorError> {
        let table = self.table.to_string();
        let rows = self
            .retrying("read primary key", || {
                sqlx::query(
                    "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
                     ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                     WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY a.attnum",
                )
                .bind(&table)
                .fetch_all(&self.pool)
            })
            .await?
            .map_err(|(error_type, reason)| self.failed(error_type, reason))?;
        rows.iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| self.failed(ErrorType::Failed, e.to_string()))
    }

    fn failed(&self, error_type: ErrorType, reason: String) -> ConnectorError {
        ConnectorError::Failed {
            connector: self.retry.connector().to_owned(),
            error_type,
            reason,
        }
    }

    /// The INSERT for `rows` (already checked to be JSON objects where needed).
    fn statement(&self, used_columns: &[bool]) -> String {
        let mut sql = String::with_capacity(256);
        match &self.layout {
            Layout::Data { jsonb } => {
                let (cast, elements) = if *jsonb {
                    ("jsonb", "jsonb_array_elements")
                } else {
                    ("json", "json_array_elements")
                };
                let _ = write!(
                    sql,
                    "INSERT INTO {} (data) SELECT e.value FROM {elements}($1::{cast}) WITH ORDINALITY AS e(value, n) ORDER BY e.n",
                    self.table
                );
                if let Some(keys) = &self.conflict {
                    let keys: Vec<String> = keys.iter().map(|k| quote(k)).collect();
                    let _ = write!(
                        sql,
                        " ON CONFLICT ({}) DO UPDATE SET data = EXCLUDED.data",
                        keys.join(", ")
                    );
                }
            }
            Layout::Raw { value, metadata } => {
                let _ = write!(
                    sql,
                    "INSERT INTO {} (value, _metadata) SELECT (e.value->'value')::{value}, (e.value->'_metadata')::{metadata} \
                     FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(value, n) ORDER BY e.n",
                    self.table
                );
            }
            Layout::Columns(columns) => {
                let used: Vec<&String> = columns
                    .iter()
                    .zip(used_columns)
                    .filter_map(|(c, used)| used.then_some(c))
                    .collect();
                let list = used.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
                let select = used
                    .iter()
                    .map(|c| format!("r.{}", quote(c)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let _ = write!(
                    sql,
                    "INSERT INTO {table} ({list}) SELECT {select} FROM jsonb_populate_recordset(NULL::{table}, $1::jsonb) AS r",
                    table = self.table
                );
                if let Some(keys) = &self.conflict {
                    let quoted: Vec<String> = keys.iter().map(|k| quote(k)).collect();
                    let updates: Vec<String> = used
                        .iter()
                        .filter(|c| !keys.contains(c))
                        .map(|c| format!("{0} = EXCLUDED.{0}", quote(c)))
                        .collect();
                    if updates.is_empty() {
                        let _ = write!(sql, " ON CONFLICT ({}) DO NOTHING", quoted.join(", "));
                    } else {
                        let _ = write!(
                            sql,
                            " ON CONFLICT ({}) DO UPDATE SET {}",
                            quoted.join(", "),
                            updates.join(", ")
                        );
                    }
                }
            }
        }
        sql
    }

    /// Checks each message of a batch and marks the columns it uses; bad ones are
    /// rejected.
    fn screen(
        &self,
        messages: Vec<Message>,
        used: &mut [bool],
        rejected: &mut Vec<Rejected>,
    ) -> Vec<Message> {
        let mut good = Vec::with_capacity(messages.len());
        for message in messages {
            match self.check(&message, false, used) {
                Ok(()) => good.push(message),
                Err(reason) => rejected.push(Rejected {
                    message,
                    error_type: ErrorType::InvalidData,
                    reason,
                }),
            }
        }
        good
    }

    /// Checks one message and marks the columns it uses. `single`: it is being
    /// inserted on its own.
    fn check(&self, message: &Message, single: bool, used: &mut [bool]) -> Result<(), String> {
        match &self.layout {
            // Whole messages (and raw envelopes) are checked by the server; a
            // batch it refuses is retried row by row, where each message is
            // checked here first.
            Layout::Data { .. } | Layout::Raw { .. } if !single => Ok(()),
            Layout::Data { .. } => serde_json::from_slice::<IgnoredAny>(&message.payload)
                .map(|_| ())
                .map_err(|e| format!("not valid JSON: {e}")),
            Layout::Columns(columns) => mark_columns(&message.payload, columns, used),
            Layout::Raw { .. } => write_envelope(message, &mut Vec::new()),
        }
    }

    /// The statement's one parameter: the batch as a JSON array.
    fn batch_array(&self, messages: &[Message]) -> String {
        match self.layout {
            Layout::Raw { .. } => raw_array(messages),
            _ => json_array(messages),
        }
    }

    /// Inserts `messages` as one statement, falling back to one row at a time when a
    /// row is refused.
    async fn insert(&self, messages: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError> {
        let mut rejected = Vec::new();
        let columns = match &self.layout {
            Layout::Columns(columns) => columns.len(),
            Layout::Data { .. } | Layout::Raw { .. } => 0,
        };
        let mut used = vec![false; columns];
        let messages = self.screen(messages, &mut used, &mut rejected);
        if messages.is_empty() {
            return Ok(rejected);
        }
        if columns > 0 && !used.contains(&true) {
            for message in messages {
                rejected.push(Rejected {
                    message,
                    error_type: ErrorType::InvalidData,
                    reason: format!("no field matches a column of {}", self.table),
                });
            }
            return Ok(rejected);
        }
        let bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
        let first_try = if matches!(self.layout, Layout::Data { .. })
            && self.conflict.is_none()
            && bytes >= COPY_MIN_BYTES
        {
            let rows = copy_text(&messages);
            self.retrying("copy", || self.copy(&rows)).await?
        } else {
            let sql = self.statement(&used);
            let array = self.batch_array(&messages);
            self.retrying("insert", || {
                sqlx::query(AssertSqlSafe(sql.as_str()))
                    .bind(array.as_str())
                    .execute(&self.pool)
            })
            .await?
            .map(|_| ())
        };
        let refused = isolate_refused(
            self.retry.connector(),
            first_try,
            messages,
            |message| async move {
                let mut used = vec![false; columns];
                if let Err(reason) = self.check(&message, true, &mut used) {
                    return Ok((message, Err((ErrorType::InvalidData, reason))));
                }
                let sql = self.statement(&used);
                let array = self.batch_array(std::slice::from_ref(&message));
                let outcome = self
                    .retrying("insert", || {
                        sqlx::query(AssertSqlSafe(sql.as_str()))
                            .bind(array.as_str())
                            .execute(&self.pool)
                    })
                    .await?
                    .map(|_| ());
                Ok((message, outcome))
            },
        )
        .await?;
        rejected.extend(refused);
        Ok(rejected)
    }
}

impl TableWriter {
    /// Streams `rows` (COPY text format) into the `data` column.
    async fn copy(&self, rows: &[u8]) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let statement = format!("COPY {} (data) FROM STDIN", self.table);
        let mut copy = conn.copy_in_raw(&statement).await?;
        if let Err(e) = copy.send(rows).await {
            // The connection may be gone; aborting is best effort.
            let _ = copy.abort("send failed").await;
            return Err(e);
        }
        copy.finish().await.map(|_| ())
    }
}

/// One COPY text-format line per payload: backslash, newline, carriage return and
/// tab escaped, so any JSON text (which may contain raw whitespace) survives.
fn copy_text(messages: &[Message]) -> Vec<u8> {
    let size = messages.iter().map(|m| m.payload.len() + 1).sum::<usize>();
    let mut out = Vec::with_capacity(size + size / 16);
    for message in messages {
        let mut rest = message.payload.as_slice();
        while let Some(at) = rest
            .iter()
            .position(|b| matches!(b, b'\\' | b'\n' | b'\r' | b'\t'))
        {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(match rest[at] {
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                _ => b"\\t",
            });
            rest = &rest[at + 1..];
        }
        out.extend_from_slice(rest);
        out.push(b'\n');
    }
    out
}

/// `[m1,m2,...]` from the payloads.
fn json_array(messages: &[Message]) -> String {
    let size = messages.iter().map(|m| m.payload.len() + 1).sum::<usize>() + 2;
    let mut out = Vec::with_capacity(size);
    out.push(b'[');
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&message.payload);
    }
    out.push(b']');
    // A payload that is not UTF-8 (so not JSON) empties the text; the server refuses
    // it, and the row-by-row retry then names the bad message.
    String::from_utf8(out).unwrap_or_default()
}

/// `[envelope1,...]`: each message as its raw envelope. A message that is not
/// JSON goes in as it is, so the server refuses the batch and the row-by-row
/// retry names that message (as with whole messages in `data`).
fn raw_array(messages: &[Message]) -> String {
    let size = messages.iter().map(|m| m.payload.len() + 64).sum::<usize>() + 2;
    let mut out = Vec::with_capacity(size);
    out.push(b'[');
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let start = out.len();
        if write_envelope(message, &mut out).is_err() {
            out.truncate(start);
            out.extend_from_slice(&message.payload);
        }
    }
    out.push(b']');
    String::from_utf8(out).unwrap_or_default()
}

/// Checks that `payload` is a JSON object and marks which of `columns` it has.
fn mark_columns(payload: &[u8], columns: &[String], used: &mut [bool]) -> Result<(), String> {
    struct Keys<'a> {
        columns: &'a [String],
        used: &'a mut [bool],
    }
    impl<'de> Visitor<'de> for Keys<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object (its fields map to table columns)")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if let Some(i) = self.columns.iter().position(|c| *c == key) {
                    self.used[i] = true;
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_slice(payload);
    de.deserialize_map(Keys { columns, used })
        .and_then(|()| de.end())
        .map_err(|e| format!("cannot map onto columns: {e}"))
}

#[async_trait]
impl BatchWriter for TableWriter {
    fn name(&self) -> &str {
        self.retry.connector()
    }

    async fn write_batch(&self, batch: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError> {
        self.insert(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_columns_and_rejects_non_objects() {
        let columns = vec!["id".to_owned(), "name".to_owned(), "qty".to_owned()];
        let mut used = vec![false; 3];
        mark_columns(
            br#"{"name":"a","other":{"x":[1]},"qty":2}"#,
            &columns,
            &mut used,
        )
        .unwrap();
        assert_eq!(used, [false, true, true]);
        assert!(mark_columns(b"[1,2]", &columns, &mut used).is_err());
        assert!(mark_columns(br#"{"name":"a"} x"#, &columns, &mut used).is_err());
    }

    #[test]
    fn copy_lines_escape_what_copy_interprets() {
        let m = |p: &[u8]| Message {
            payload: p.to_vec(),
            metadata: Vec::new(),
        };
        assert_eq!(
            copy_text(&[m(br#"{"a":"x\"y"}"#), m(b"{\n\t\"b\":1}")]),
            b"{\"a\":\"x\\\\\"y\"}\n{\\n\\t\"b\":1}\n".to_vec()
        );
    }

    #[test]
    fn array_of_payloads() {
        let m = |p: &str| Message {
            payload: p.as_bytes().to_vec(),
            metadata: Vec::new(),
        };
        assert_eq!(json_array(&[m(r#"{"a":1}"#), m("2")]), r#"[{"a":1},2]"#);
    }
}
