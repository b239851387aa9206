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

/// The rows one read asks for, in cursor order: past `after` (from the first
/// row when `None`), up to and including `until` (no end when `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Window<'a> {
    /// The position reads continue after.
    pub after: Option<&'a str>,
    /// The last position a read may return.
    pub until: Option<&'a str>,
}

impl Window<'_> {
    /// ` WHERE column > after AND column <= until` (the bounds there are),
    /// each position made a SQL value by `value`; empty with neither.
    pub fn where_clause(&self, column: &str, value: impl Fn(&str) -> String) -> String {
        let after = self.after.map(|at| format!("{column} > {}", value(at)));
        let until = self.until.map(|at| format!("{column} <= {}", value(at)));
        match (after, until) {
            (Some(a), Some(u)) => format!(" WHERE {a} AND {u}"),
            (Some(one), None) | (None, Some(one)) => format!(" WHERE {one}"),
            (None, None) => String::new(),
        }
    }
}

/// One database's way of reading rows.
#[async_trait]
pub trait Poller: Send {
    /// The connector's name, for logs and errors.
    fn name(&self) -> &str;

    /// Whether reads follow a cursor column (else every poll reads everything).
    fn incremental(&self) -> bool;

    /// Reads up to `max` rows of `window` in cursor order; without a cursor, all
    /// rows.
    async fn poll(&mut self, window: Window<'_>, max: usize) -> Result<Page, ConnectorError>;

    /// The position of the last row in cursor order now (`None`: no row has
    /// one). Asked only when reads are incremental.
    async fn last_position(&mut self) -> Result<Option<String>, ConnectorError>;

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
    /// Read the rows present at start, then end (a job's one pass).
    to_completion: bool,
    /// In a job: the last row's position when the pass began, the end of the
    /// pass (outer `None`: not asked yet; inner `None`: the table had no row).
    pass_end: Option<Option<String>>,
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
            pass_end: None,
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

    /// With `yes`, the source reads the rows the table holds when the pass
    /// begins and then ends: the first read asks for the last row's position,
    /// every read stops there, and the first that finds less than a full page
    /// is the last; polls follow each other without waiting. Rows written
    /// during the pass past that position are left to the next run (a row
    /// written before it, in a cursor order that is not the order of writing,
    /// may be read or not). Without a cursor column, one poll is the pass.
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
        if self.to_completion && self.poller.incremental() && self.pass_end.is_none() {
            let end = self.poller.last_position().await?;
            tracing::info!(connector = %self.poller.name(), end = ?end, "a job reads up to the last row present at start");
            if end.is_none() {
                self.exhausted = true;
                return Ok(None);
            }
            self.pass_end = Some(end);
        }
        let window = Window {
            after: self.read_after.as_deref(),
            until: self.pass_end.as_ref().and_then(Option::as_deref),
        };
        let page = self.poller.poll(window, max).await?;
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
