//! The polling-source skeleton shared by PostgreSQL, ClickHouse and Trino.
//!
//! A [`Poller`] knows one database: which column reads follow (an `id` or a
//! `created_at`), and how to read the rows after a position. [`PollingSource`]
//! does the rest the same way for all three: when to poll, the position reads
//! continue from, the acks, and when a position is saved in its [`PositionStore`].
//!
//! **When a position is saved.** Only a committed position is saved, that is one
//! whose rows (and every row before them) are durable in every sink or the error
//! sink; at most once every [`SAVE_EVERY`], and once more when the flow stops.
//! After a crash a restarted flow reads again at most the rows of that last
//! interval: duplicates, never loss. A store that cannot be written keeps the
//! position in memory only, and a restart reads from the start.

mod rows;
mod store;

use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use dataflow_api::ErrorType;
use dataflow_core::Message;

pub use rows::{PollTimer, Selection, position_key, row_message};
pub use store::{MemoryStore, PositionStore};

use crate::connectors::{
    Ack, BatchLimit, ConnectorError, PositionLog, Rejected, Source, SourceBatch,
};

/// Shortest time between two saved positions.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// The rows one poll found.
#[derive(Debug, Default)]
pub struct Page {
    /// Rows as messages.
    pub messages: Vec<Message>,
    /// Rows that could not become messages.
    pub rejected: Vec<Rejected>,
    /// The cursor value of the page's last row, when reads are incremental.
    pub last: Option<String>,
}

impl Page {
    /// Rows in the page, usable or not.
    pub fn rows(&self) -> usize {
        self.messages.len() + self.rejected.len()
    }
}

/// One database's way of reading rows.
#[async_trait]
pub trait Poller: Send {
    /// The connector's name, for logs and errors.
    fn name(&self) -> &str;

    /// Whether reads follow a cursor column (else every poll reads everything).
    fn incremental(&self) -> bool;

    /// Reads up to `max` rows after `after` in cursor order; without a cursor, all
    /// rows.
    async fn poll(&mut self, after: Option<&str>, max: usize) -> Result<Page, ConnectorError>;

    /// Reads `position` (given by a user, not read from a row) as a value of the
    /// cursor column and returns it as this poller's reads expect it; says why
    /// it cannot be one.
    async fn check_position(&mut self, position: &str) -> Result<String, String>;
}

/// A polling source: any [`Poller`] with a [`PositionStore`].
pub struct PollingSource {
    poller: Box<dyn Poller>,
    store: Box<dyn PositionStore>,
    timer: PollTimer,
    /// Where the next read continues.
    read_after: Option<String>,
    log: PositionLog<Option<String>>,
    /// A committed position not saved yet.
    unsaved: Option<String>,
    last_save: Option<Instant>,
    /// End at the first poll that finds less than a full page (a job's one pass).
    to_completion: bool,
    /// The pass is over: the next read ends the source.
    exhausted: bool,
    /// Most rows one read asks for.
    page_rows: usize,
}

impl PollingSource {
    /// A source that polls every `interval_secs` and continues after the position
    /// `store` holds, if any.
    pub async fn new(
        poller: Box<dyn Poller>,
        mut store: Box<dyn PositionStore>,
        interval_secs: u64,
    ) -> Self {
        let saved = if poller.incremental() {
            store.load().await
        } else {
            tracing::warn!(connector = %poller.name(), "no cursor column (id, created_at or changeTrackingColumn): every poll reads all rows again");
            None
        };
        if let Some(position) = &saved {
            tracing::info!(connector = %poller.name(), %position, "resuming after the saved position");
        }
        Self {
            poller,
            store,
            timer: PollTimer::new(interval_secs),
            read_after: saved,
            log: PositionLog::default(),
            unsaved: None,
            last_save: None,
            to_completion: false,
            exhausted: false,
            page_rows: usize::MAX,
        }
    }

    /// Reads at most `rows` rows at a time (`readBatchSize`); unset, a read is
    /// as large as the pipeline's batch.
    pub fn with_page_rows(mut self, rows: Option<u32>) -> Self {
        if let Some(rows) = rows {
            self.page_rows = (rows as usize).max(1);
        }
        self
    }

    /// With `yes`, the source reads once to the end of what the table holds and
    /// then ends: polls follow each other without waiting, and the first poll
    /// that finds less than a full page (any poll, without a cursor column) is
    /// the last. Rows written during the pass may be read too.
    pub fn ending_after_one_pass(mut self, yes: bool) -> Self {
        self.to_completion = yes;
        self
    }

    /// Moves the position to the rows after `cursor` (`None`: the first row) and
    /// writes it to the store before anything is read; returns what was done.
    pub async fn reset_to(&mut self, cursor: Option<&str>) -> Result<String, ConnectorError> {
        let name = self.poller.name().to_owned();
        let refused = |reason: String| ConnectorError::Failed {
            connector: name.clone(),
            error_type: ErrorType::Failed,
            reason: format!("cannot reset the position: {reason}"),
        };
        if !self.poller.incremental() {
            return Err(refused(
                "the source has no cursor column (id, created_at or changeTrackingColumn) and reads every row on every poll"
                    .into(),
            ));
        }
        let position = match cursor {
            Some(cursor) => Some(self.poller.check_position(cursor).await.map_err(&refused)?),
            None => None,
        };
        self.store
            .replace(position.as_deref())
            .await
            .map_err(&refused)?;
        let before = self
            .read_after
            .take()
            .map_or_else(|| "the start".to_owned(), |p| format!("{p:?}"));
        self.read_after = position;
        let detail = match cursor {
            Some(cursor) => {
                format!("{name}: reading the rows after {cursor:?} (was after {before})")
            }
            None => format!("{name}: reading from the first row (was after {before})"),
        };
        tracing::info!(connector = %name, %detail, "position reset");
        Ok(detail)
    }

    async fn save_unsaved(&mut self) {
        if let Some(position) = self.unsaved.take() {
            self.last_save = Some(Instant::now());
            self.store.save(&position).await;
        }
    }
}

#[async_trait]
impl Source for PollingSource {
    async fn wait_for_input(&mut self) -> Result<(), ConnectorError> {
        if !self.to_completion {
            self.timer.wait().await;
        }
        Ok(())
    }

    async fn next_batch(
        &mut self,
        limit: BatchLimit,
    ) -> Result<Option<SourceBatch>, ConnectorError> {
        if self.exhausted {
            return Ok(None);
        }
        let max = limit.messages.clamp(1, self.page_rows);
        let page = self.poller.poll(self.read_after.as_deref(), max).await?;
        let rows = page.rows();
        if self.to_completion && (rows < max || !self.poller.incremental()) {
            self.exhausted = true;
            if rows == 0 {
                return Ok(None);
            }
        }
        // A full page means more rows are waiting.
        self.timer.polled(self.poller.incremental() && rows >= max);
        if rows == 0 {
            return Ok(Some(SourceBatch::unacked(Vec::new())));
        }
        if let Some(last) = &page.last {
            self.read_after = Some(last.clone());
        }
        let ack = self.log.record(page.last);
        Ok(Some(SourceBatch {
            messages: page.messages,
            rejected: page.rejected,
            ack: Some(ack),
        }))
    }

    async fn commit(&mut self, ack: Ack) -> Result<(), ConnectorError> {
        let released = self.log.release(ack).map_err(|cause| ConnectorError::Ack {
            connector: self.poller.name().to_owned(),
            cause,
        })?;
        if let Some(position) = released.into_iter().flatten().next_back() {
            self.unsaved = Some(position);
        }
        if self.last_save.is_none_or(|at| at.elapsed() >= SAVE_EVERY) {
            self.save_unsaved().await;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        self.save_unsaved().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
