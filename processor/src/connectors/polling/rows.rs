//! Pieces every poller shares: which rows it reads (a table or a query), when it
//! polls, how a row becomes a message, and the key its saved position is kept under.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use dataflow_core::Message;

use crate::connectors::ConnectorError;

/// What a source reads, as the spec says it.
pub enum Selection<'a> {
    /// `query`, with the label messages carry (`table` when also given, else `query`).
    Query {
        /// The `table` metadata value.
        label: &'a str,
        /// The query text, without a trailing `;`.
        sql: &'a str,
    },
    /// `table`.
    Table(&'a str),
}

impl<'a> Selection<'a> {
    /// `query` wins over `table`; one of them is required (spec path `path`).
    pub fn from_spec(
        path: &str,
        table: Option<&'a str>,
        query: Option<&'a str>,
    ) -> Result<Self, ConnectorError> {
        match (query.map(str::trim).filter(|q| !q.is_empty()), table) {
            (Some(sql), _) => Ok(Selection::Query {
                label: table.unwrap_or("query"),
                sql: sql.trim_end_matches(';'),
            }),
            (None, Some(table)) => Ok(Selection::Table(table)),
            (None, None) => Err(ConnectorError::Config {
                path: format!("{path}.table"),
                reason: "either table or query is required".into(),
            }),
        }
    }
}

/// Polls every `pollInterval`, except that a full page is followed at once by the
/// next one.
pub struct PollTimer {
    interval: Duration,
    next: Option<Instant>,
}

impl PollTimer {
    /// A timer for `interval_secs` (at least one second); the first poll is at once.
    pub fn new(interval_secs: u64) -> Self {
        Self {
            interval: Duration::from_secs(interval_secs.max(1)),
            next: None,
        }
    }

    /// Waits until the next poll is due.
    pub async fn wait(&self) {
        if let Some(at) = self.next {
            tokio::time::sleep_until(at.into()).await;
        }
    }

    /// After a poll: read on at once when `more_waiting`, else after the interval.
    pub fn polled(&mut self, more_waiting: bool) {
        self.next = (!more_waiting).then(|| Instant::now() + self.interval);
    }
}

/// A row (JSON object text) as a message with `table` and, when known, `id`
/// metadata. `raw_mode` wraps it as `{"value": row, "_metadata": {table, id}}`;
/// `id` must then be JSON (an integer column's text is).
pub fn row_message(row: &[u8], table: &str, id: Option<&str>, raw_mode: bool) -> Message {
    let mut metadata = vec![("table".to_owned(), table.to_owned())];
    if let Some(id) = id {
        metadata.push(("id".to_owned(), id.to_owned()));
    }
    let payload = if raw_mode {
        let mut out = Vec::with_capacity(row.len() + table.len() + 48);
        out.extend_from_slice(b"{\"value\":");
        out.extend_from_slice(row);
        out.extend_from_slice(b",\"_metadata\":{\"table\":");
        // Serializing a string cannot fail.
        let _ = serde_json::to_writer(&mut out, table);
        if let Some(id) = id {
            out.extend_from_slice(b",\"id\":");
            out.extend_from_slice(id.as_bytes());
        }
        out.extend_from_slice(b"}}");
        out
    } else {
        row.to_vec()
    };
    Message { payload, metadata }
}

/// The key a source's saved position is kept under: the DataFlow (`namespace/name`),
/// the cursor column and a digest of what is read.
pub fn position_key(flow: &str, relation: &str, column: &str) -> String {
    format!(
        "{flow}:{column}:{}",
        hex::encode(Sha256::digest(relation.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_mode_wraps_the_row() {
        let m = row_message(br#"{"id":7}"#, "t\"x", Some("7"), true);
        assert_eq!(
            String::from_utf8(m.payload).unwrap(),
            r#"{"value":{"id":7},"_metadata":{"table":"t\"x","id":7}}"#
        );
        assert_eq!(m.metadata.len(), 2);
        let m = row_message(b"{}", "t", None, false);
        assert_eq!(m.payload, b"{}");
        assert_eq!(m.metadata, vec![("table".to_owned(), "t".to_owned())]);
    }

    #[test]
    fn query_wins_over_table() {
        assert!(matches!(
            Selection::from_spec("p", Some("t"), Some(" SELECT 1; ")),
            Ok(Selection::Query {
                label: "t",
                sql: "SELECT 1"
            })
        ));
        assert!(matches!(
            Selection::from_spec("p", Some("t"), Some("  ")),
            Ok(Selection::Table("t"))
        ));
        assert!(Selection::from_spec("p", None, None).is_err());
    }
}
