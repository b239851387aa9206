//! The ClickHouse sink.
//!
//! Each batch is one `INSERT ... FORMAT JSONEachRow`. A table with a `data` String
//! column (what `autoCreateTable` makes: `data String, created_at DateTime DEFAULT
//! now()`, MergeTree) gets each message whole, as JSON text, in `data`; any other
//! table gets each message's top-level fields in the columns of the same name
//! (unknown fields skipped). ClickHouse inserts a batch whole or not at all: when
//! it refuses one for its data, the batch is inserted again row by row and only the
//! refused rows go to the error sink. Transient failures are retried with backoff.
//! `upsertMode` keeps the newest row per key: see [`super::upsert`].

use async_trait::async_trait;
use bytes::Bytes;
use clickhouse::Client;
use dataflow_api::connectors::{ClickhouseSinkSpec, DEFAULT_FLUSH_INTERVAL_SECS};

use super::connection::connect;
use super::errors::classify;
use super::ident::{TableName, literal};
use super::upsert::UpsertKey;
use crate::connectors::batching::{BatchWriter, BatchingSink, isolate_refused};
use crate::connectors::settings::required;
use crate::connectors::{ConnectorError, Health, Rejected, Retry, Sink};
use dataflow_api::ErrorType;
use dataflow_core::Message;

/// Rows per insert when `batchSize` is not set.
const DEFAULT_BATCH_SIZE: u32 = 100;

/// How messages land in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// The whole message, as JSON text, in the `data` column.
    Data,
    /// Top-level fields onto the columns of the same name.
    Columns,
}

/// Writes batches into one table.
struct TableWriter {
    retry: Retry,
    client: Client,
    table: TableName,
    layout: Layout,
    /// `upsertMode`: the conflict key every message must carry.
    upsert: Option<UpsertKey>,
}

/// Connects, creates the table when `autoCreateTable` asks, and reads its columns
/// (spec path `path`).
pub async fn open(
    path: &str,
    spec: &ClickhouseSinkSpec,
    health: Health,
) -> Result<Box<dyn Sink>, ConnectorError> {
    let connection_string = required(
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
    let connection = connect(path, connection_string)?;
    let table = TableName::parse(table_text, &connection.database).ok_or_else(|| {
        ConnectorError::Config {
            path: format!("{path}.table"),
            reason: format!("{table_text:?} is not a table name"),
        }
    })?;
    let mut writer = TableWriter {
        retry: Retry::new(format!("clickhouse sink {table_text}"), health),
        client: connection.client,
        table,
        layout: Layout::Data,
        upsert: None,
    };
    if spec.upsert_mode == Some(true) {
        let key = spec
            .conflict_key
            .as_ref()
            .ok_or_else(|| ConnectorError::Config {
                path: format!("{path}.conflictKey"),
                reason: "upsertMode needs the columns that identify a row".into(),
            })?;
        writer.upsert = Some(UpsertKey::new(key.columns()));
    }
    if spec.auto_create_table == Some(true) {
        writer.create_table(path).await?;
    }
    let columns = writer.columns().await?;
    if columns.is_empty() {
        return Err(ConnectorError::Config {
            path: format!("{path}.table"),
            reason: format!(
                "table {table_text} does not exist on {} (create it, or set autoCreateTable: true)",
                connection.endpoint
            ),
        });
    }
    writer.layout = layout_for(&columns);
    if spec.raw_mode == Some(true) && writer.layout != Layout::Data {
        return Err(ConnectorError::Config {
            path: format!("{path}.rawMode"),
            reason: format!("table {table_text} has no data String column for whole messages"),
        });
    }
    if let Some(key) = &writer.upsert {
        let (engine, sorting_key) = writer.engine().await?;
        key.check_table(&engine, &sorting_key)
            .map_err(|reason| ConnectorError::Config {
                path: format!("{path}.upsertMode"),
                reason: format!("table {table_text}: {reason}"),
            })?;
    }
    tracing::info!(connector = %writer.retry.connector(), endpoint = %connection.endpoint, layout = ?writer.layout, "clickhouse sink ready");
    Ok(Box::new(BatchingSink::new(
        writer,
        spec.batch_size.unwrap_or(DEFAULT_BATCH_SIZE) as usize,
        spec.batch_flush_interval_seconds
            .unwrap_or(DEFAULT_FLUSH_INTERVAL_SECS),
    )))
}

/// `data String` (possibly `Nullable` or `LowCardinality`) takes whole messages.
fn layout_for(columns: &[(String, String)]) -> Layout {
    let whole = columns
        .iter()
        .any(|(name, ty)| name == "data" && ty.contains("String"));
    if whole { Layout::Data } else { Layout::Columns }
}

impl TableWriter {
    /// Creates the table when missing: `data` and `created_at`, a MergeTree (a
    /// ReplacingMergeTree by the key with `upsertMode`).
    async fn create_table(&self, path: &str) -> Result<(), ConnectorError> {
        let sql = match &self.upsert {
            Some(key) => {
                key.create_statement(&self.table)
                    .map_err(|reason| ConnectorError::Config {
                        path: format!("{path}.conflictKey"),
                        reason,
                    })?
            }
            None => format!(
                "CREATE TABLE IF NOT EXISTS {} (data String, created_at DateTime DEFAULT now()) \
                 ENGINE = MergeTree() ORDER BY created_at",
                self.table
            ),
        };
        self.retry
            .run("create table", classify, || {
                self.client.query_raw(&sql).execute()
            })
            .await?
            .map_err(|(error_type, reason)| self.failed(error_type, reason))
    }

    /// Runs `sql` (a read of a system table, retried like any call) and returns
    /// its `JSONEachRow` rows as `T`.
    async fn system_rows<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        sql: &str,
    ) -> Result<Vec<T>, ConnectorError> {
        let body = self
            .retry
            .run(what, classify, || async {
                self.client
                    .query_raw(sql)
                    .fetch_bytes("JSONEachRow")?
                    .collect()
                    .await
            })
            .await?
            .map_err(|(error_type, reason)| self.failed(error_type, reason))?;
        serde_json::Deserializer::from_slice(&body)
            .into_iter::<T>()
            .collect::<Result<_, _>>()
            .map_err(|e| self.failed(ErrorType::Failed, format!("{what}: {e}")))
    }

    /// `(name, type)` of every column; empty when the table is missing.
    async fn columns(&self) -> Result<Vec<(String, String)>, ConnectorError> {
        #[derive(serde::Deserialize)]
        struct Column {
            name: String,
            r#type: String,
        }
        let sql = format!(
            "SELECT name, type FROM system.columns WHERE database = {} AND table = {}",
            literal(self.table.database()),
            literal(self.table.table())
        );
        let columns: Vec<Column> = self.system_rows("read table columns", &sql).await?;
        Ok(columns.into_iter().map(|c| (c.name, c.r#type)).collect())
    }

    /// The table's engine and sorting key.
    async fn engine(&self) -> Result<(String, String), ConnectorError> {
        #[derive(serde::Deserialize)]
        struct Table {
            engine: String,
            sorting_key: String,
        }
        let sql = UpsertKey::engine_query(&self.table);
        let tables: Vec<Table> = self.system_rows("read the table engine", &sql).await?;
        let table = tables
            .into_iter()
            .next()
            .ok_or_else(|| self.failed(ErrorType::Failed, "the table is gone".into()))?;
        Ok((table.engine, table.sorting_key))
    }

    fn failed(&self, error_type: ErrorType, reason: String) -> ConnectorError {
        ConnectorError::Failed {
            connector: self.retry.connector().to_owned(),
            error_type,
            reason,
        }
    }

    /// The `JSONEachRow` body for `messages`; messages that cannot be rows are
    /// moved to `rejected`.
    fn body(&self, messages: Vec<Message>, rejected: &mut Vec<Rejected>) -> (Vec<Message>, Bytes) {
        let size: usize = messages.iter().map(|m| m.payload.len() + 16).sum();
        let mut out = Vec::with_capacity(size + size / 8);
        let mut kept = Vec::with_capacity(messages.len());
        for message in messages {
            match self.row(&message, &mut out) {
                Ok(()) => kept.push(message),
                Err(reason) => rejected.push(Rejected {
                    message,
                    error_type: ErrorType::InvalidData,
                    reason,
                }),
            }
        }
        (kept, Bytes::from(out))
    }

    /// Appends `message` as one `JSONEachRow` line, or says why it cannot be one.
    fn row(&self, message: &Message, out: &mut Vec<u8>) -> Result<(), String> {
        let key_values = match &self.upsert {
            Some(key) => key.key_values(&message.payload)?,
            None => Vec::new(),
        };
        match self.layout {
            Layout::Data => {
                let text = std::str::from_utf8(&message.payload)
                    .map_err(|e| format!("not UTF-8 text: {e}"))?;
                out.extend_from_slice(b"{\"data\":");
                serde_json::to_writer(&mut *out, text).map_err(|e| e.to_string())?;
                if let Some(key) = &self.upsert {
                    key.write_key_fields(&key_values, out);
                }
                out.extend_from_slice(b"}\n");
            }
            Layout::Columns => {
                if message.payload.first() != Some(&b'{') {
                    return Err("not a JSON object (its fields map to table columns)".into());
                }
                out.extend_from_slice(&message.payload);
                out.push(b'\n');
            }
        }
        Ok(())
    }

    fn insert_statement(&self) -> String {
        match self.layout {
            Layout::Data => match &self.upsert {
                Some(key) => format!(
                    "INSERT INTO {} (data, {}) FORMAT JSONEachRow",
                    self.table,
                    key.column_list()
                ),
                None => format!("INSERT INTO {} (data) FORMAT JSONEachRow", self.table),
            },
            Layout::Columns => format!("INSERT INTO {} FORMAT JSONEachRow", self.table),
        }
    }

    async fn insert(&self, body: &Bytes) -> Result<(), clickhouse::error::Error> {
        let mut insert = self
            .client
            .insert_formatted_with(self.insert_statement())
            .with_setting("input_format_skip_unknown_fields", "1");
        insert.send(body.clone()).await?;
        insert.end().await
    }

    async fn insert_all(&self, messages: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError> {
        let mut rejected = Vec::new();
        let (messages, body) = self.body(messages, &mut rejected);
        if messages.is_empty() {
            return Ok(rejected);
        }
        let whole = self
            .retry
            .run("insert", classify, || self.insert(&body))
            .await?;
        let refused = isolate_refused(
            self.retry.connector(),
            whole,
            messages,
            |message| async move {
                let mut line = Vec::with_capacity(message.payload.len() + 16);
                if let Err(reason) = self.row(&message, &mut line) {
                    return Ok((message, Err((ErrorType::InvalidData, reason))));
                }
                let body = Bytes::from(line);
                let outcome = self
                    .retry
                    .run("insert", classify, || self.insert(&body))
                    .await?;
                Ok((message, outcome))
            },
        )
        .await?;
        rejected.extend(refused);
        Ok(rejected)
    }
}

#[async_trait]
impl BatchWriter for TableWriter {
    fn name(&self) -> &str {
        self.retry.connector()
    }

    async fn write_batch(&self, batch: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError> {
        self.insert_all(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(layout: Layout) -> TableWriter {
        TableWriter {
            retry: Retry::new("clickhouse sink t", Health::new()),
            client: Client::default(),
            table: TableName::parse("t", "default").unwrap_or_else(|| unreachable!()),
            layout,
            upsert: None,
        }
    }

    fn message(payload: &[u8]) -> Message {
        Message {
            payload: payload.to_vec(),
            metadata: Vec::new(),
        }
    }

    #[test]
    fn data_rows_carry_the_message_as_json_text() {
        let mut rejected = Vec::new();
        let (kept, body) = writer(Layout::Data).body(
            vec![message(br#"{"a":"x\"y","n":1}"#), message(b"\xff")],
            &mut rejected,
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(rejected.len(), 1);
        assert_eq!(
            &body[..],
            b"{\"data\":\"{\\\"a\\\":\\\"x\\\\\\\"y\\\",\\\"n\\\":1}\"}\n"
        );
    }

    #[test]
    fn column_rows_are_the_messages_themselves() {
        let mut rejected = Vec::new();
        let (kept, body) = writer(Layout::Columns).body(
            vec![message(br#"{"id":1}"#), message(b"[1]")],
            &mut rejected,
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(rejected[0].error_type, ErrorType::InvalidData);
        assert_eq!(&body[..], b"{\"id\":1}\n");
    }

    #[test]
    fn picks_the_layout_from_the_columns() {
        let cols = |c: &[(&str, &str)]| -> Vec<(String, String)> {
            c.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
        };
        assert_eq!(
            layout_for(&cols(&[("data", "String"), ("created_at", "DateTime")])),
            Layout::Data
        );
        assert_eq!(
            layout_for(&cols(&[("id", "UInt64"), ("name", "String")])),
            Layout::Columns
        );
    }
}
