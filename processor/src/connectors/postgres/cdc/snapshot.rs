//! The initial snapshot: every existing row of the listed tables as an `op: r`
//! event, read through one cursor per table inside a single REPEATABLE READ
//! transaction, so all tables are read as of one moment. The slot is created
//! before the snapshot starts, so a row committed meanwhile is in the snapshot,
//! the change stream, or both: never in neither.

use sqlx::{Postgres, Row, Transaction};

use super::super::ident::quote;
use super::event::{Op, Origin, change_message};
use super::pgoutput::{Column, Datum, Relation};
use super::slot::TableName;
use dataflow_core::Message;

use crate::connectors::{ConnectorError, Retry};

/// Where the snapshot stands.
pub struct Snapshot {
    tables: Vec<TableName>,
    next_table: usize,
    transaction: Option<Transaction<'static, Postgres>>,
    /// The table whose cursor is open.
    reading: Option<Relation>,
}

const CURSOR: &str = "dataflow_snapshot";

impl Snapshot {
    /// A snapshot of `tables`, not started yet.
    pub fn new(tables: Vec<TableName>) -> Self {
        Self {
            tables,
            next_table: 0,
            transaction: None,
            reading: None,
        }
    }

    /// Reads up to `max` rows as events; `None` once every table has been read.
    pub async fn next_page(
        &mut self,
        pool: &sqlx::PgPool,
        retry: &Retry,
        db: &str,
        max: usize,
        now_ms: i64,
    ) -> Result<Option<Vec<Message>>, ConnectorError> {
        let failed = |e: sqlx::Error| ConnectorError::Failed {
            connector: retry.connector().to_owned(),
            error_type: super::super::errors::classify(&e).error_type(),
            reason: format!("snapshot: {e}"),
        };
        loop {
            if self.transaction.is_none() {
                if self.next_table >= self.tables.len() {
                    return Ok(None);
                }
                let mut tx = pool.begin().await.map_err(failed)?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                self.transaction = Some(tx);
            }
            let Some(tx) = self.transaction.as_mut() else {
                continue;
            };
            let relation = match &self.reading {
                Some(relation) => relation.clone(),
                None => {
                    let Some(table) = self.tables.get(self.next_table) else {
                        if let Some(tx) = self.transaction.take() {
                            tx.commit().await.map_err(failed)?;
                        }
                        return Ok(None);
                    };
                    let relation = describe(tx, table).await.map_err(failed)?;
                    let columns: Vec<String> = relation
                        .columns
                        .iter()
                        .map(|c| format!("{}::text", quote(&c.name)))
                        .collect();
                    let select = if columns.is_empty() {
                        "NULL::text".to_owned()
                    } else {
                        columns.join(", ")
                    };
                    let declare = format!(
                        "DECLARE {CURSOR} NO SCROLL CURSOR FOR SELECT {select} FROM {}",
                        table.sql
                    );
                    sqlx::query(sqlx::AssertSqlSafe(declare))
                        .execute(&mut **tx)
                        .await
                        .map_err(failed)?;
                    self.reading = Some(relation.clone());
                    relation
                }
            };
            let fetch = format!("FETCH FORWARD {} FROM {CURSOR}", max.max(1));
            let rows = sqlx::query(sqlx::AssertSqlSafe(fetch))
                .fetch_all(&mut **tx)
                .await
                .map_err(failed)?;
            if rows.is_empty() {
                sqlx::query(sqlx::AssertSqlSafe(format!("CLOSE {CURSOR}")))
                    .execute(&mut **tx)
                    .await
                    .map_err(failed)?;
                self.reading = None;
                self.next_table += 1;
                continue;
            }
            let origin = Origin {
                db,
                ts_ms: now_ms,
                xid: None,
                lsn: None,
            };
            let mut page = Vec::with_capacity(rows.len());
            let mut values: Vec<Option<String>> = Vec::with_capacity(relation.columns.len());
            for row in &rows {
                values.clear();
                for i in 0..relation.columns.len() {
                    values.push(row.try_get::<Option<String>, _>(i).map_err(failed)?);
                }
                let datums: Vec<Datum<'_>> = values
                    .iter()
                    .map(|v| {
                        v.as_deref()
                            .map_or(Datum::Null, |t| Datum::Text(t.as_bytes()))
                    })
                    .collect();
                match change_message(Op::Read, &relation, None, Some(&datums), &origin, now_ms) {
                    Ok(message) => page.push(message),
                    Err(e) => {
                        return Err(ConnectorError::Failed {
                            connector: retry.connector().to_owned(),
                            error_type: dataflow_api::ErrorType::Failed,
                            reason: e.to_string(),
                        });
                    }
                }
            }
            return Ok(Some(page));
        }
    }
}

/// The table's columns and their types, from the catalog.
async fn describe(
    tx: &mut Transaction<'static, Postgres>,
    table: &TableName,
) -> Result<Relation, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT attname::text, atttypid::int8 FROM pg_attribute \
         WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
    )
    .bind(&table.sql)
    .fetch_all(&mut **tx)
    .await?;
    let mut columns = Vec::with_capacity(rows.len());
    for row in &rows {
        let type_oid: i64 = row.try_get(1)?;
        columns.push(Column {
            key: false,
            name: row.try_get(0)?,
            type_oid: u32::try_from(type_oid).unwrap_or(0),
        });
    }
    Ok(Relation {
        id: 0,
        schema: table.schema.clone(),
        table: table.table.clone(),
        columns,
    })
}
