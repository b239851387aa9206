//! Reading the change stream: a peek at the slot runs in a task of its own and
//! hands its rows over a bounded channel, so one peek serves as many batches as
//! it holds (a transaction of a million rows is decoded once, not once per
//! batch). Changes handed out before are skipped (see the module documentation
//! of `cdc`).

use dataflow_api::ErrorType;
use dataflow_core::Message;
use futures::TryStreamExt;
use sqlx::{PgPool, Row};
use tokio::sync::mpsc;

use super::CdcSource;
use super::event::{Op, Origin, change_message};
use super::pgoutput::{self, Decoded};
use super::slot::classify_slot;
use crate::connectors::limits::oversized;
use crate::connectors::{BatchLimit, ConnectorError, MAX_MESSAGE_BYTES, Rejected};

/// Most rows one peek asks for.
pub const MAX_PEEK_ROWS: usize = 4_000_000;

/// Rows buffered between a peek's task and the source.
const CHANNEL_ROWS: usize = 1024;

/// A change's place in the stream: its transaction's commit LSN and its ordinal
/// in that transaction. Places grow in the order changes are delivered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    commit_lsn: u64,
    ordinal: u64,
}

/// What one read produced.
#[derive(Default)]
pub struct Read {
    /// New events.
    pub messages: Vec<Message>,
    /// Changes that could not become events.
    pub rejected: Vec<Rejected>,
    /// Whether more changes are waiting.
    pub more: bool,
    /// A peek ended having found nothing at all: no change of the listed tables
    /// committed before this (flushed) WAL position is unread.
    pub idle_lsn: Option<u64>,
    /// A peek ended full of changes that were all handed out before: the next
    /// one must ask for more rows.
    pub starved: bool,
}

/// The transaction being decoded.
struct Transaction {
    final_lsn: u64,
    commit_ms: i64,
    xid: u32,
    ordinal: u64,
}

/// One running peek.
pub struct Peek {
    rows: mpsc::Receiver<Result<Vec<u8>, sqlx::Error>>,
    asked: usize,
    seen: usize,
    new: usize,
    /// The flushed WAL position read just before the peek started, when the
    /// source may move an idle slot.
    flushed_before: Option<u64>,
    transaction: Option<Transaction>,
}

impl Peek {
    /// Starts `pg_logical_slot_peek_binary_changes` for up to `asked` rows.
    fn start(
        pool: PgPool,
        slot: String,
        publication: String,
        asked: usize,
        flushed_before: Option<u64>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_ROWS);
        tokio::spawn(async move {
            let mut rows = sqlx::query(
                "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
                 'proto_version', '1', 'publication_names', $3)",
            )
            .bind(&slot)
            .bind(i32::try_from(asked).unwrap_or(i32::MAX))
            .bind(&publication)
            .fetch(&pool);
            loop {
                let row = match rows.try_next().await {
                    Ok(Some(row)) => row.try_get::<Vec<u8>, _>(0),
                    Ok(None) => break,
                    Err(e) => Err(e),
                };
                let failed = row.is_err();
                // The source stopped listening (it closed or started over).
                if tx.send(row).await.is_err() || failed {
                    break;
                }
            }
        });
        Self {
            rows: rx,
            asked,
            seen: 0,
            new: 0,
            flushed_before,
            transaction: None,
        }
    }
}

/// Why reading stopped.
enum ReadError {
    Sql(sqlx::Error),
    Protocol(String),
}

/// Reads the changes after those handed out, up to `limit`, from the running
/// peek or a new one. A failed peek is retried as its failure says; one that
/// fails after producing events returns them.
pub async fn read_changes(
    source: &mut CdcSource,
    limit: BatchLimit,
    heartbeat_due: bool,
) -> Result<Read, ConnectorError> {
    let retry = source.slot.retry.clone();
    let mut attempts = retry.attempts("read the change stream");
    loop {
        if source.peek.is_none() {
            let flushed_before = if heartbeat_due && source.log.is_empty() {
                Some(source.slot.flushed_wal().await?)
            } else {
                None
            };
            source.peek = Some(Peek::start(
                source.slot.pool.clone(),
                source.slot.name.clone(),
                source.slot.publication.clone(),
                source.peek_rows,
                flushed_before,
            ));
        }
        let mut read = Read::default();
        let failure = match pull(source, limit, &mut read).await {
            Ok(()) => {
                attempts.succeeded();
                return Ok(read);
            }
            Err(error) => {
                source.peek = None;
                match error {
                    _ if !read.messages.is_empty() || !read.rejected.is_empty() => {
                        read.more = true;
                        return Ok(read);
                    }
                    ReadError::Protocol(reason) => {
                        return Err(ConnectorError::Failed {
                            connector: retry.connector().to_owned(),
                            error_type: ErrorType::Failed,
                            reason,
                        });
                    }
                    ReadError::Sql(e) => classify_slot(&e),
                }
            }
        };
        if let Some((error_type, reason)) = attempts.failed(failure).await? {
            return Err(ConnectorError::Failed {
                connector: retry.connector().to_owned(),
                error_type,
                reason,
            });
        }
    }
}

/// Takes rows from the running peek until the batch is full or the peek ends.
async fn pull(source: &mut CdcSource, limit: BatchLimit, read: &mut Read) -> Result<(), ReadError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut bytes = 0usize;
    loop {
        if limit.reached(read.messages.len() + read.rejected.len(), bytes) {
            read.more = true;
            return Ok(());
        }
        let Some(peek) = source.peek.as_mut() else {
            return Ok(());
        };
        let data = match peek.rows.recv().await {
            Some(row) => row.map_err(ReadError::Sql)?,
            None => {
                read.more = peek.seen >= peek.asked;
                read.starved = read.more && peek.new == 0;
                if peek.seen == 0 {
                    read.idle_lsn = peek.flushed_before;
                }
                source.peek = None;
                return Ok(());
            }
        };
        peek.seen += 1;
        let decoded = pgoutput::decode(&data).map_err(|e| ReadError::Protocol(e.to_string()))?;
        let (op, relation, before, after) = match decoded {
            Decoded::Begin {
                final_lsn,
                commit_ms,
                xid,
            } => {
                peek.transaction = Some(Transaction {
                    final_lsn,
                    commit_ms,
                    xid,
                    ordinal: 0,
                });
                continue;
            }
            Decoded::Commit { end_lsn, .. } => {
                peek.transaction = None;
                source.reached = source.reached.max(end_lsn);
                continue;
            }
            Decoded::Relation(relation) => {
                source.relations.insert(relation.id, relation);
                continue;
            }
            Decoded::Other => continue,
            Decoded::Insert { relation, new } => (Op::Create, vec![relation], None, Some(new)),
            Decoded::Update { relation, old, new } => (Op::Update, vec![relation], old, Some(new)),
            Decoded::Delete { relation, old } => (Op::Delete, vec![relation], Some(old), None),
            Decoded::Truncate { relations } => (Op::Truncate, relations, None, None),
        };
        let Some(tx) = peek.transaction.as_mut() else {
            return Err(ReadError::Protocol(
                "a change outside a transaction".to_owned(),
            ));
        };
        tx.ordinal += 1;
        let place = Place {
            commit_lsn: tx.final_lsn,
            ordinal: tx.ordinal,
        };
        if place <= source.emitted {
            continue;
        }
        source.emitted = place;
        peek.new += 1;
        let origin = Origin {
            db: &source.db,
            ts_ms: tx.commit_ms,
            xid: Some(tx.xid),
            lsn: Some(tx.final_lsn),
        };
        for id in relation {
            let Some(described) = source.relations.get(&id) else {
                return Err(ReadError::Protocol(format!(
                    "a change of relation {id}, which was not described"
                )));
            };
            let listed = source
                .tables
                .iter()
                .any(|t| t.schema == described.schema && t.table == described.table);
            if !listed {
                continue;
            }
            let built = change_message(
                op,
                described,
                before.as_deref(),
                after.as_deref(),
                &origin,
                now_ms,
            );
            match built {
                Ok(message) if message.payload.len() > MAX_MESSAGE_BYTES => {
                    let size = message.payload.len();
                    read.rejected.push(oversized(
                        &message.payload,
                        size,
                        message.metadata,
                        &format!("the change at LSN {}", tx.final_lsn),
                    ));
                }
                Ok(message) => {
                    bytes += message.payload.len();
                    read.messages.push(message);
                }
                Err(e) => read.rejected.push(Rejected {
                    message: Message {
                        payload: Vec::new(),
                        metadata: vec![(
                            "table".to_owned(),
                            format!("{}.{}", described.schema, described.table),
                        )],
                    },
                    error_type: ErrorType::InvalidData,
                    reason: e.to_string(),
                }),
            }
        }
    }
}
