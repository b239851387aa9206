//! The Trino sink.
//!
//! Writes each message, as JSON text, into the `data` VARCHAR column of the table
//! (what `autoCreateTable` makes: `CREATE TABLE ... (data VARCHAR)`). A batch is
//! one `INSERT ... VALUES` statement, split only where it would pass Trino's
//! statement length limit. A statement refused for its data is retried row by row;
//! transient failures (server starting or shutting down, a worker lost, the cluster
//! out of memory, Trino or Keycloak unreachable) are retried with backoff.

use async_trait::async_trait;
use dataflow_api::connectors::{DEFAULT_FLUSH_INTERVAL_SECS, TrinoSinkSpec};

use super::client::{QueryResult, TrinoClient, literal, quote, settings_of};
use super::errors::classify;
use crate::connectors::batching::{BatchWriter, BatchingSink, isolate_refused};
use crate::connectors::settings::required;
use crate::connectors::{ConnectorError, Health, Rejected, Retry, Sink};
use dataflow_api::ErrorType;
use dataflow_core::Message;

/// Longest statement sent; Trino refuses queries over 1,000,000 characters by
/// default (`query.max-length`).
const MAX_STATEMENT: usize = 900_000;

/// Writes batches into one table.
struct TableWriter {
    retry: Retry,
    client: TrinoClient,
    table: String,
    catalog: String,
    schema: String,
    table_name: String,
}

/// Builds the client, creates the table when `autoCreateTable` asks, and checks it
/// has a `data` column (spec path `path`).
pub async fn open(
    path: &str,
    spec: &TrinoSinkSpec,
    health: Health,
) -> Result<Box<dyn Sink>, ConnectorError> {
    let client = TrinoClient::from_settings(path, settings_of!(spec))?;
    let (catalog, schema) = (client.catalog.clone(), client.schema.clone());
    let table = required(
        spec.table.as_deref(),
        spec.table_secret_ref.as_ref(),
        path,
        "table",
    )?;
    let writer = TableWriter {
        retry: Retry::new(format!("trino sink {catalog}.{schema}.{table}"), health),
        client,
        table: format!("{}.{}.{}", quote(&catalog), quote(&schema), quote(table)),
        catalog: catalog.clone(),
        schema: schema.clone(),
        table_name: table.to_owned(),
    };
    if spec.auto_create_table == Some(true) {
        writer
            .run(
                "create table",
                &format!("CREATE TABLE IF NOT EXISTS {} (data VARCHAR)", writer.table),
            )
            .await?;
    }
    let columns = writer
        .run(
            "read table columns",
            &format!(
                "SELECT column_name, data_type FROM {}.information_schema.columns WHERE table_schema = {} AND table_name = {}",
                quote(&writer.catalog),
                literal(&writer.schema),
                literal(&writer.table_name)
            ),
        )
        .await?;
    let data_column = columns.rows.iter().any(|row| {
        row.first().and_then(|v| v.as_str()) == Some("data")
            && row
                .get(1)
                .and_then(|v| v.as_str())
                .is_some_and(|t| t.starts_with("varchar"))
    });
    if !data_column {
        return Err(ConnectorError::Config {
            path: format!("{path}.table"),
            reason: if columns.rows.is_empty() {
                format!(
                    "table {catalog}.{schema}.{table} does not exist (create it, or set autoCreateTable: true)"
                )
            } else {
                format!(
                    "table {catalog}.{schema}.{table} has no `data` varchar column for the messages"
                )
            },
        });
    }
    Ok(Box::new(BatchingSink::new(
        writer,
        spec.batch_size.unwrap_or(1) as usize,
        spec.batch_flush_interval_seconds
            .unwrap_or(DEFAULT_FLUSH_INTERVAL_SECS),
    )))
}

impl TableWriter {
    /// Runs a statement that must succeed for the sink to work.
    async fn run(&self, what: &str, sql: &str) -> Result<QueryResult, ConnectorError> {
        self.retry
            .run(what, classify, || self.client.execute(sql))
            .await?
            .map_err(|(error_type, reason)| ConnectorError::Failed {
                connector: self.retry.connector().to_owned(),
                error_type,
                reason,
            })
    }

    /// `INSERT` statements for `messages` (all UTF-8), each under
    /// [`MAX_STATEMENT`] unless one message alone is longer, with the number of
    /// messages each covers.
    fn statements(&self, messages: &[Message]) -> Vec<(String, usize)> {
        let head = format!("INSERT INTO {} (data) VALUES ", self.table);
        let mut statements = Vec::new();
        let mut sql = head.clone();
        let mut rows = 0;
        for message in messages {
            let value = literal(&String::from_utf8_lossy(&message.payload));
            if rows > 0 && sql.len() + value.len() + 4 > MAX_STATEMENT {
                statements.push((std::mem::replace(&mut sql, head.clone()), rows));
                rows = 0;
            }
            if rows > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            sql.push_str(&value);
            sql.push(')');
            rows += 1;
        }
        if rows > 0 {
            statements.push((sql, rows));
        }
        statements
    }

    async fn insert(&self, sql: &str) -> Result<Result<(), (ErrorType, String)>, ConnectorError> {
        Ok(self
            .retry
            .run("insert", classify, || self.client.execute(sql))
            .await?
            .map(|_| ()))
    }
}

#[async_trait]
impl BatchWriter for TableWriter {
    fn name(&self) -> &str {
        self.retry.connector()
    }

    async fn write_batch(&self, batch: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError> {
        let (texts, mut rejected): (Vec<Message>, Vec<Message>) = batch
            .into_iter()
            .partition(|m| std::str::from_utf8(&m.payload).is_ok());
        let mut rejected: Vec<Rejected> = rejected
            .drain(..)
            .map(|message| Rejected {
                message,
                error_type: ErrorType::InvalidData,
                reason: "not UTF-8 text".into(),
            })
            .collect();
        let statements = self.statements(&texts);
        let mut texts = texts.into_iter();
        for (sql, rows) in statements {
            let covered: Vec<Message> = texts.by_ref().take(rows).collect();
            let whole = self.insert(&sql).await?;
            let refused = isolate_refused(
                self.retry.connector(),
                whole,
                covered,
                |message| async move {
                    let outcome = match self.statements(std::slice::from_ref(&message)).pop() {
                        Some((sql, _)) => self.insert(&sql).await?,
                        None => Ok(()),
                    };
                    Ok((message, outcome))
                },
            )
            .await?;
            rejected.extend(refused);
        }
        Ok(rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_values_and_respect_the_length_limit() {
        let writer = TableWriter {
            retry: Retry::new("trino sink c.s.t", Health::new()),
            client: TrinoClient::new(reqwest::Client::new(), "http://t", "c", "s", None),
            table: "\"c\".\"s\".\"t\"".into(),
            catalog: "c".into(),
            schema: "s".into(),
            table_name: "t".into(),
        };
        let m = |p: &str| Message {
            payload: p.as_bytes().to_vec(),
            metadata: Vec::new(),
        };
        let statements = writer.statements(&[m(r#"{"n":"it's"}"#), m("{}")]);
        assert_eq!(
            statements,
            vec![(
                r#"INSERT INTO "c"."s"."t" (data) VALUES ('{"n":"it''s"}'), ('{}')"#.to_owned(),
                2
            )]
        );
        let big = "x".repeat(MAX_STATEMENT / 2);
        let statements = writer.statements(&[m(&big), m(&big), m(&big)]);
        assert_eq!(
            statements.iter().map(|s| s.1).collect::<Vec<_>>(),
            [1, 1, 1]
        );
        assert!(statements.iter().all(|s| s.0.len() <= MAX_STATEMENT));
    }
}
