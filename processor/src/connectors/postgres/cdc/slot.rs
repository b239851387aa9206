//! The server side of change capture: `wal_level`, the publication, the logical
//! replication slot and its confirmed position, all through plain SQL.

use dataflow_api::ErrorType;
use sqlx::{AssertSqlSafe, PgPool, Row};

use super::super::errors::classify;
use super::super::ident::QualifiedName;
use crate::connectors::retry::Failure;
use crate::connectors::{ConnectorError, Retry};

/// A table as the catalog names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    /// Schema (`public` when the spec gives none).
    pub schema: String,
    /// Table.
    pub table: String,
    /// Quoted SQL form.
    pub sql: String,
}

impl TableName {
    /// `table` or `schema.table` from the spec.
    pub fn parse(text: &str) -> Option<Self> {
        let name = QualifiedName::parse(text)?;
        let schema = name.schema().unwrap_or("public").to_owned();
        let table = name.name().to_owned();
        let sql = QualifiedName::parse(&format!("{schema}.{table}"))?.to_string();
        Some(Self { schema, table, sql })
    }
}

/// `16/B374D848` as a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    let high = u64::from_str_radix(high, 16).ok()?;
    let low = u64::from_str_radix(low, 16).ok()?;
    (high <= u64::from(u32::MAX) && low <= u64::from(u32::MAX)).then_some((high << 32) | low)
}

/// A number as PostgreSQL's LSN text.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Like [`classify`], except that a slot in use by another session (a second
/// replica, a peek still running) is waited out.
pub fn classify_slot(error: &sqlx::Error) -> Failure {
    if let sqlx::Error::Database(db) = error
        && db.code().as_deref() == Some("55006")
    {
        return Failure::Transient(db.message().to_owned());
    }
    classify(error)
}

/// One slot and its publication.
pub struct Slot {
    /// Connections.
    pub pool: PgPool,
    /// Retry policy and connector name.
    pub retry: Retry,
    /// Slot name (checked: lower-case letters, digits, `_`).
    pub name: String,
    /// Publication name (same rules).
    pub publication: String,
}

impl Slot {
    fn failed(&self, (error_type, reason): (ErrorType, String)) -> ConnectorError {
        ConnectorError::Failed {
            connector: self.retry.connector().to_owned(),
            error_type,
            reason,
        }
    }

    fn config(path: &str, reason: String) -> ConnectorError {
        ConnectorError::Config {
            path: path.to_owned(),
            reason,
        }
    }

    /// Runs `sql` returning at most one row of text columns.
    async fn text_row(
        &self,
        what: &str,
        sql: &str,
        binds: &[&str],
    ) -> Result<Option<Vec<Option<String>>>, ConnectorError> {
        let row = self
            .retry
            .run(what, classify_slot, || {
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for bind in binds {
                    query = query.bind(*bind);
                }
                query.fetch_optional(&self.pool)
            })
            .await?
            .map_err(|e| self.failed(e))?;
        Ok(row.map(|row| {
            (0..row.len())
                .map(|i| row.try_get::<Option<String>, _>(i).ok().flatten())
                .collect()
        }))
    }

    /// Fails unless the server decodes WAL logically; returns the database name.
    pub async fn check_server(&self, path: &str) -> Result<String, ConnectorError> {
        let row = self
            .text_row(
                "read wal_level",
                "SELECT current_setting('wal_level'), current_database()::text",
                &[],
            )
            .await?
            .unwrap_or_default();
        let level = row.first().cloned().flatten().unwrap_or_default();
        if level != "logical" {
            return Err(Self::config(
                path,
                format!(
                    "the server runs with wal_level={level}; change capture needs wal_level=logical (set it in postgresql.conf and restart the server)"
                ),
            ));
        }
        Ok(row.get(1).cloned().flatten().unwrap_or_default())
    }

    /// Makes sure the publication exists and lists every table; creates it when
    /// missing and `create` allows.
    pub async fn ensure_publication(
        &self,
        path: &str,
        tables: &[TableName],
        create: bool,
    ) -> Result<(), ConnectorError> {
        let exists = self
            .text_row(
                "look up the publication",
                "SELECT pubname::text FROM pg_publication WHERE pubname = $1",
                &[&self.publication],
            )
            .await?
            .is_some();
        if !exists {
            if !create {
                return Err(Self::config(
                    &format!("{path}.publicationName"),
                    format!(
                        "publication {} does not exist and createPublicationIfNotExists is false",
                        self.publication
                    ),
                ));
            }
            let list: Vec<&str> = tables.iter().map(|t| t.sql.as_str()).collect();
            let sql = format!(
                "CREATE PUBLICATION {} FOR TABLE {}",
                self.publication,
                list.join(", ")
            );
            self.text_row("create the publication", &sql, &[]).await?;
            tracing::info!(connector = %self.retry.connector(), publication = %self.publication, "created the publication");
            return Ok(());
        }
        let rows = self
            .retry
            .run("read the publication's tables", classify_slot, || {
                sqlx::query(
                    "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
                )
                .bind(&self.publication)
                .fetch_all(&self.pool)
            })
            .await?
            .map_err(|e| self.failed(e))?;
        let listed: Vec<(String, String)> = rows
            .iter()
            .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
            .collect();
        let missing: Vec<String> = tables
            .iter()
            .filter(|t| !listed.iter().any(|(s, n)| *s == t.schema && *n == t.table))
            .map(|t| format!("{}.{}", t.schema, t.table))
            .collect();
        if !missing.is_empty() {
            return Err(Self::config(
                &format!("{path}.publicationName"),
                format!(
                    "publication {} does not include {}; add them (ALTER PUBLICATION {} ADD TABLE ...) or name another publication",
                    self.publication,
                    missing.join(", "),
                    self.publication
                ),
            ));
        }
        Ok(())
    }

    /// The slot's confirmed position, creating the slot when missing and `create`
    /// allows; `true` with it when the slot was created now.
    pub async fn ensure_slot(
        &self,
        path: &str,
        create: bool,
    ) -> Result<(u64, bool), ConnectorError> {
        let found = self
            .text_row(
                "look up the replication slot",
                "SELECT plugin::text, confirmed_flush_lsn::text, (database = current_database())::text \
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.name],
            )
            .await?;
        if let Some(row) = found {
            let plugin = row.first().cloned().flatten().unwrap_or_default();
            let same_db = row.get(2).cloned().flatten().as_deref() == Some("true");
            if plugin != "pgoutput" || !same_db {
                return Err(Self::config(
                    &format!("{path}.slotName"),
                    format!(
                        "replication slot {} exists but {}; name another slot",
                        self.name,
                        if plugin != "pgoutput" {
                            format!("uses the plugin {plugin:?}, not pgoutput")
                        } else {
                            "belongs to another database".to_owned()
                        }
                    ),
                ));
            }
            let lsn = row.get(1).cloned().flatten();
            let lsn = lsn.as_deref().and_then(parse_lsn).unwrap_or(0);
            return Ok((lsn, false));
        }
        if !create {
            return Err(Self::config(
                &format!("{path}.slotName"),
                format!(
                    "replication slot {} does not exist and createSlotIfNotExists is false",
                    self.name
                ),
            ));
        }
        let row = self
            .text_row(
                "create the replication slot",
                "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&self.name],
            )
            .await?
            .unwrap_or_default();
        let lsn = row.first().cloned().flatten();
        tracing::info!(connector = %self.retry.connector(), slot = %self.name, "created the replication slot");
        Ok((lsn.as_deref().and_then(parse_lsn).unwrap_or(0), true))
    }

    /// The server's flushed WAL position: every commit before it is decodable.
    pub async fn flushed_wal(&self) -> Result<u64, ConnectorError> {
        let row = self
            .text_row(
                "read the WAL position",
                "SELECT pg_current_wal_flush_lsn()::text",
                &[],
            )
            .await?
            .unwrap_or_default();
        Ok(row
            .first()
            .cloned()
            .flatten()
            .as_deref()
            .and_then(parse_lsn)
            .unwrap_or(0))
    }

    /// Confirms everything before `lsn`: the server may recycle that WAL, and a
    /// restarted flow reads on from there.
    pub async fn advance(&self, lsn: u64) -> Result<(), ConnectorError> {
        let target = format_lsn(lsn);
        self.text_row(
            "confirm the slot's position",
            "SELECT end_lsn::text FROM pg_replication_slot_advance($1, $2::pg_lsn)",
            &[&self.name, &target],
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text_round_trips() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("x/1"), None);
        assert_eq!(parse_lsn("100000000/0"), None);
    }

    #[test]
    fn table_names_default_to_public() {
        let t = TableName::parse("orders").unwrap();
        assert_eq!(
            (t.schema.as_str(), t.sql.as_str()),
            ("public", "\"public\".\"orders\"")
        );
        assert_eq!(TableName::parse("s.t").unwrap().schema, "s");
        assert!(TableName::parse("").is_none());
    }
}
