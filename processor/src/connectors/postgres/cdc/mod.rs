//! `postgresql-cdc`: a database's row changes over logical replication with the
//! built-in `pgoutput` plugin, as Debezium-style change events in commit order.
//!
//! **How changes are read.** The source creates (or reuses) a publication of the
//! listed tables and a logical replication slot, then reads the slot through
//! PostgreSQL's SQL interface to logical decoding:
//! `pg_logical_slot_peek_binary_changes` decodes from the slot's confirmed
//! position without consuming anything, and `pg_replication_slot_advance` moves
//! that position once the changes before it are durable. This maps one to one on
//! the pipeline's acknowledgements, needs no replication-protocol client next to
//! `sqlx`, and keeps the server's slot as the only record of the position.
//!
//! **At-least-once.** Each change has a place `(commit LSN of its transaction,
//! ordinal in it)`; transactions arrive in commit order, so places only grow.
//! Changes up to the last place handed out are skipped when a later peek returns
//! them again. A batch's ack carries the end LSN of the newest transaction all of
//! whose changes had been handed out; when it comes back the slot advances there.
//! After a crash the flow reads again from the last confirmed transaction
//! boundary: a transaction is never half lost, at worst delivered twice.
//!
//! **Idle slots.** A slot holds WAL from its confirmed position on. When the
//! listed tables are quiet but the server is not, an idle flow moves the slot to
//! the server's flushed WAL position every `heartbeatIntervalSeconds` (nothing of
//! the listed tables can be before it, since the peek just found nothing).

mod event;
mod pgoutput;
mod slot;
mod snapshot;
mod stream;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dataflow_api::ErrorType;
use dataflow_api::connectors::{
    DEFAULT_CDC_HEARTBEAT_SECS, DEFAULT_CDC_POLL_INTERVAL_SECS, PostgresqlCdcSourceSpec,
    default_slot_name,
};

use super::cursor_store::CursorStore;
use crate::connectors::polling::{MemoryStore, PollTimer, PositionStore};
use crate::connectors::settings::required;
use crate::connectors::{
    Ack, BatchLimit, ConnectorError, Health, PositionLog, Retry, Source, SourceBatch,
};
use pgoutput::Relation;
use slot::{Slot, TableName};
use snapshot::Snapshot;
use stream::Place;

/// Fewest rows a peek asks for.
const MIN_PEEK_ROWS: usize = 10_000;

/// What the position store holds once the snapshot is durable.
const SNAPSHOT_DONE: &str = "snapshot-done";

/// A batch's position.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// End LSN of the newest transaction wholly handed out by then.
    reached: u64,
    /// Whether the snapshot had been read completely before this batch.
    after_snapshot: bool,
}

/// Whether an initial snapshot is still owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SnapshotState {
    /// None wanted, or one finished in an earlier run.
    NotOwed,
    /// Being read.
    Reading,
    /// Read completely, not yet known to be durable.
    Read,
}

/// The change-capture source.
pub struct CdcSource {
    slot: Slot,
    db: String,
    tables: Vec<TableName>,
    relations: HashMap<u32, Relation>,
    timer: PollTimer,
    /// The place of the last change handed out.
    emitted: Place,
    /// The slot's confirmed position.
    confirmed: u64,
    /// End LSN of the newest transaction wholly handed out.
    reached: u64,
    /// Rows asked of each peek; grows while everything a peek returns was handed
    /// out already (a deep in-flight window).
    peek_rows: usize,
    log: PositionLog<Position>,
    /// The peek being read, if any.
    peek: Option<stream::Peek>,
    snapshot: Option<Snapshot>,
    snapshot_state: SnapshotState,
    store: Box<dyn PositionStore>,
    heartbeat: Duration,
    last_heartbeat: Instant,
}

/// Connects, checks the server, makes sure of the publication and the slot, and
/// decides whether a snapshot is owed. `flow` (`namespace/name`) names the
/// default slot. Without `persist` the snapshot's completion is not recorded,
/// so every start reads it again. With `snapshot_again` (a position reset) the
/// tables are read as a snapshot now, whatever the spec and the store say.
pub async fn open_source(
    path: &str,
    spec: &PostgresqlCdcSourceSpec,
    flow: &str,
    persist: bool,
    snapshot_again: bool,
    health: Health,
) -> Result<CdcSource, ConnectorError> {
    let url = required(
        spec.connection_string.as_deref(),
        spec.connection_string_secret_ref.as_ref(),
        path,
        "connectionString",
    )?;
    let mut tables = Vec::with_capacity(spec.tables.len());
    for (i, text) in spec.tables.iter().enumerate() {
        let table = TableName::parse(text).ok_or_else(|| ConnectorError::Config {
            path: format!("{path}.tables[{i}]"),
            reason: format!("{text:?} is not a table name"),
        })?;
        tables.push(table);
    }
    if tables.is_empty() {
        return Err(ConnectorError::Config {
            path: format!("{path}.tables"),
            reason: "at least one table is required".into(),
        });
    }
    let name = spec
        .slot_name
        .clone()
        .unwrap_or_else(|| default_slot_name(flow));
    let publication = spec
        .publication_name
        .clone()
        .unwrap_or_else(|| name.clone());
    let pool = super::pool(path, url, 2)?;
    let retry = Retry::new(format!("postgresql-cdc source {name}"), health);
    let slot = Slot {
        pool: pool.clone(),
        retry,
        name,
        publication,
    };
    let db = slot.check_server(path).await?;
    slot.ensure_publication(
        path,
        &tables,
        spec.create_publication_if_not_exists.unwrap_or(true),
    )
    .await?;
    let (confirmed, created) = slot
        .ensure_slot(path, spec.create_slot_if_not_exists.unwrap_or(true))
        .await?;
    let mut store: Box<dyn PositionStore> = if persist {
        Box::new(
            CursorStore::open(
                pool,
                format!("{flow}:cdc:{}", slot.name),
                slot.retry.connector(),
            )
            .await,
        )
    } else {
        Box::new(MemoryStore)
    };
    if snapshot_again && persist {
        store
            .replace(None)
            .await
            .map_err(|reason| ConnectorError::Failed {
                connector: slot.retry.connector().to_owned(),
                error_type: ErrorType::Failed,
                reason: format!("cannot forget the finished snapshot: {reason}"),
            })?;
    }
    let snapshot_owed = snapshot_again
        || (spec.wants_snapshot()
            && (created || store.load().await.as_deref() != Some(SNAPSHOT_DONE)));
    if snapshot_owed {
        tracing::info!(connector = %slot.retry.connector(), tables = tables.len(), "reading the initial snapshot");
    }
    let heartbeat = spec
        .heartbeat_interval_seconds
        .unwrap_or(DEFAULT_CDC_HEARTBEAT_SECS);
    Ok(CdcSource {
        db,
        relations: HashMap::new(),
        timer: PollTimer::new(spec.poll_interval.unwrap_or(DEFAULT_CDC_POLL_INTERVAL_SECS)),
        emitted: Place::default(),
        confirmed,
        reached: confirmed,
        peek_rows: 0,
        log: PositionLog::default(),
        peek: None,
        snapshot: snapshot_owed.then(|| Snapshot::new(tables.clone())),
        snapshot_state: if snapshot_owed {
            SnapshotState::Reading
        } else {
            SnapshotState::NotOwed
        },
        tables,
        store,
        heartbeat: Duration::from_secs(heartbeat.max(1)),
        last_heartbeat: Instant::now(),
        slot,
    })
}

impl CdcSource {
    fn name(&self) -> &str {
        self.slot.retry.connector()
    }

    /// Moves the slot to `lsn` when that is ahead of it.
    async fn confirm(&mut self, lsn: u64) -> Result<(), ConnectorError> {
        if lsn > self.confirmed {
            self.slot.advance(lsn).await?;
            self.confirmed = lsn;
        }
        Ok(())
    }

    /// The snapshot is durable: remember that, so a restart does not read it again.
    async fn snapshot_durable(&mut self) {
        if self.snapshot_state == SnapshotState::Read {
            self.store.save(SNAPSHOT_DONE).await;
            self.snapshot_state = SnapshotState::NotOwed;
            tracing::info!(connector = %self.name(), "initial snapshot complete");
        }
    }

    fn batch(
        &mut self,
        messages: Vec<dataflow_core::Message>,
        rejected: Vec<crate::connectors::Rejected>,
    ) -> SourceBatch {
        let ack = self.log.record(Position {
            reached: self.reached,
            after_snapshot: self.snapshot_state != SnapshotState::Reading,
        });
        SourceBatch {
            messages,
            rejected,
            ack: Some(ack),
        }
    }

    async fn next_snapshot_batch(
        &mut self,
        limit: BatchLimit,
    ) -> Result<Option<SourceBatch>, ConnectorError> {
        let now = chrono::Utc::now().timestamp_millis();
        let Some(snapshot) = self.snapshot.as_mut() else {
            return Ok(None);
        };
        let page = snapshot
            .next_page(
                &self.slot.pool,
                &self.slot.retry,
                &self.db,
                limit.messages,
                now,
            )
            .await?;
        match page {
            Some(messages) => Ok(Some(self.batch(messages, Vec::new()))),
            None => {
                self.snapshot = None;
                self.snapshot_state = SnapshotState::Read;
                if self.log.is_empty() {
                    self.snapshot_durable().await;
                }
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl Source for CdcSource {
    async fn wait_for_input(&mut self) -> Result<(), ConnectorError> {
        if self.snapshot.is_none() {
            self.timer.wait().await;
        }
        Ok(())
    }

    async fn next_batch(
        &mut self,
        limit: BatchLimit,
    ) -> Result<Option<SourceBatch>, ConnectorError> {
        if self.snapshot.is_some()
            && let Some(batch) = self.next_snapshot_batch(limit).await?
        {
            return Ok(Some(batch));
        }
        let heartbeat_due = self.last_heartbeat.elapsed() >= self.heartbeat;
        let base_rows = limit.messages.max(1).saturating_mul(8).max(MIN_PEEK_ROWS);
        self.peek_rows = self.peek_rows.max(base_rows);
        let read = stream::read_changes(self, limit, heartbeat_due).await?;
        self.timer.polled(read.more);
        if read.idle_lsn.is_some() {
            self.last_heartbeat = Instant::now();
        }
        if read.messages.is_empty() && read.rejected.is_empty() {
            if read.starved {
                // Every change the peek returned was in flight already.
                self.peek_rows = self.peek_rows.saturating_mul(2).min(stream::MAX_PEEK_ROWS);
            }
            if self.log.is_empty() {
                let target = read.idle_lsn.unwrap_or(0).max(self.reached);
                self.confirm(target).await?;
            }
            return Ok(Some(SourceBatch::unacked(Vec::new())));
        }
        self.peek_rows = base_rows;
        Ok(Some(self.batch(read.messages, read.rejected)))
    }

    async fn commit(&mut self, ack: Ack) -> Result<(), ConnectorError> {
        let released = self.log.release(ack).map_err(|cause| ConnectorError::Ack {
            connector: self.name().to_owned(),
            cause,
        })?;
        let Some(newest) = released.last().copied() else {
            return Ok(());
        };
        if newest.after_snapshot || self.log.is_empty() {
            self.snapshot_durable().await;
        }
        let target = if self.log.is_empty() {
            self.reached
        } else {
            newest.reached
        };
        self.confirm(target).await
    }
}
