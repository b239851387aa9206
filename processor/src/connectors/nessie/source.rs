//! The Nessie (Iceberg) source.
//!
//! Every `pollInterval` seconds it loads the table on the branch and reads what
//! was added since the last snapshot it finished reading (see `snapshots`): each
//! newer snapshot, oldest first, from the data files it added (an `append` or
//! `overwrite` yields the rows it brought in; compaction and deletes yield
//! nothing), or, where the metadata no longer holds those snapshots (Nessie
//! serves only the current one), the live files newer than the last one read.
//! So nothing is read twice while the processor runs. The position is kept in memory (a source
//! should not write to the table it reads), so a restarted processor starts again
//! from the first snapshot: duplicates, never loss. A snapshot whose data files
//! cannot be read for a passing reason (storage unreachable, throttled) is read
//! again from its start after a pause, which can repeat rows it already gave.
//!
//! A table whose only column is the `data` string the sink writes gives back the
//! documents stored there; any other table gives each row as a JSON object of its
//! columns. `rawMode` wraps each as `{"value": ..., "_metadata": {namespace,
//! table}}`. Messages carry `namespace`, `table` and `snapshot_id` metadata.

use std::collections::VecDeque;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use async_trait::async_trait;
use dataflow_api::connectors::{DEFAULT_NESSIE_POLL_INTERVAL_SECS, NessieSourceSpec};
use futures::StreamExt;
use iceberg::Catalog;
use iceberg::scan::ArrowRecordBatchStream;
use iceberg::table::Table;
use iceberg_catalog_rest::RestCatalog;

use super::catalog::{Connection, connect};
use super::errors::classify;
use super::snapshots::{self, Pending, ReadUpTo};
use crate::connectors::polling::PollTimer;
use crate::connectors::retry::{Failure, LogThrottle};
use crate::connectors::{
    Ack, Backoff, BatchLimit, ConnectorError, Health, Rejected, Retry, Source, SourceBatch,
};
use dataflow_api::ErrorType;
use dataflow_core::Message;

/// The column the sink writes messages to.
const DATA_COLUMN: &str = "data";

/// The files being read.
struct Reading {
    pending: Pending,
    snapshot_id: i64,
    rows: ArrowRecordBatchStream,
    /// Messages decoded from the last record batch and not yet handed out.
    ready: VecDeque<Message>,
    rejected: Vec<Rejected>,
}

/// Reads the rows each new snapshot added.
pub struct NessieSource {
    retry: Retry,
    catalog: RestCatalog,
    ident: iceberg::TableIdent,
    namespace: String,
    table: String,
    raw_mode: bool,
    timer: PollTimer,
    /// The last snapshot read to the end.
    last: Option<ReadUpTo>,
    /// What the last poll found and is not read yet, oldest first.
    pending: VecDeque<Pending>,
    loaded: Option<Table>,
    reading: Option<Reading>,
    /// Paces restarts of a snapshot whose data files could not be read.
    backoff: Backoff,
    /// Logs those restarts, throttled.
    throttle: LogThrottle,
}

impl NessieSource {
    /// Connects and checks that the table exists (spec path `path`).
    pub async fn open(
        path: &str,
        spec: &NessieSourceSpec,
        health: Health,
    ) -> Result<Self, ConnectorError> {
        let Connection {
            catalog,
            ident,
            label,
        } = connect(path, spec.into()).await?;
        let retry = Retry::new(format!("nessie source {label}"), health);
        let exists = retry
            .run("look up the table", classify, || {
                catalog.table_exists(&ident)
            })
            .await?
            .map_err(|(error_type, reason)| ConnectorError::Failed {
                connector: retry.connector().to_owned(),
                error_type,
                reason: format!("look up the table: {reason}"),
            })?;
        if !exists {
            return Err(ConnectorError::Config {
                path: format!("{path}.table"),
                reason: format!("table {label} does not exist"),
            });
        }
        Ok(Self {
            retry,
            namespace: ident.namespace().join("."),
            table: ident.name().to_owned(),
            catalog,
            ident,
            raw_mode: spec.raw_mode.unwrap_or(false),
            timer: PollTimer::new(
                spec.poll_interval
                    .unwrap_or(DEFAULT_NESSIE_POLL_INTERVAL_SECS),
            ),
            last: None,
            pending: VecDeque::new(),
            loaded: None,
            reading: None,
            backoff: Backoff::default(),
            throttle: LogThrottle::default(),
        })
    }

    fn failed(&self, what: &str, (error_type, reason): (ErrorType, String)) -> ConnectorError {
        ConnectorError::Failed {
            connector: self.retry.connector().to_owned(),
            error_type,
            reason: format!("{what}: {reason}"),
        }
    }

    /// Loads the table and queues the snapshots newer than the last one read.
    async fn poll(&mut self) -> Result<(), ConnectorError> {
        let table = self
            .retry
            .run("load the table", classify, || {
                self.catalog.load_table(&self.ident)
            })
            .await?
            .map_err(|e| self.failed("load the table", e))?;
        self.pending = snapshots::pending(&table, self.last);
        if !self.pending.is_empty() {
            tracing::debug!(connector = %self.retry.connector(), snapshots = self.pending.len(), "new snapshots");
        }
        self.loaded = Some(table);
        Ok(())
    }

    /// Starts reading the next pending snapshot; `false` when none is left.
    async fn start_next(&mut self) -> Result<bool, ConnectorError> {
        let Some(table) = self.loaded.clone() else {
            return Ok(false);
        };
        while let Some(pending) = self.pending.pop_front() {
            if !pending.may_add_rows() {
                self.last = Some(ReadUpTo::of(pending.snapshot()));
                continue;
            }
            let tasks = self
                .retry
                .run("list the added files", classify, || {
                    snapshots::files(&table, &pending)
                })
                .await?
                .map_err(|e| self.failed("list the added files", e))?;
            if tasks.is_empty() {
                self.last = Some(ReadUpTo::of(pending.snapshot()));
                continue;
            }
            let stream = futures::stream::iter(tasks.into_iter().map(Ok)).boxed();
            let rows = table
                .reader_builder()
                .build()
                .read(stream)
                .map_err(|e| {
                    self.failed("read the data files", (ErrorType::Failed, e.to_string()))
                })?
                .stream();
            self.reading = Some(Reading {
                snapshot_id: pending.snapshot().snapshot_id(),
                pending,
                rows,
                ready: VecDeque::new(),
                rejected: Vec::new(),
            });
            return Ok(true);
        }
        Ok(false)
    }

    /// Decodes one record batch into messages.
    fn decode(
        &self,
        snapshot_id: i64,
        batch: &RecordBatch,
        reading: &mut Reading,
    ) -> Result<(), ConnectorError> {
        let metadata = vec![
            ("namespace".to_owned(), self.namespace.clone()),
            ("table".to_owned(), self.table.clone()),
            ("snapshot_id".to_owned(), snapshot_id.to_string()),
        ];
        let data_only = batch.num_columns() == 1 && batch.schema().field(0).name() == DATA_COLUMN;
        let documents: Vec<Result<Vec<u8>, String>> = match batch.column(0).as_string_opt::<i32>() {
            Some(texts) if data_only => texts
                .iter()
                .map(|text| match text {
                    Some(text) => Ok(text.as_bytes().to_vec()),
                    None => Err("the row's `data` is null".to_owned()),
                })
                .collect(),
            _ => rows_as_json(batch)
                .map_err(|e| self.failed("decode rows", (ErrorType::InvalidData, e)))?
                .into_iter()
                .map(Ok)
                .collect(),
        };
        for document in documents {
            match document {
                Ok(document) => {
                    let payload = if self.raw_mode {
                        self.wrap(&document)
                    } else {
                        document
                    };
                    reading.ready.push_back(Message {
                        payload,
                        metadata: metadata.clone(),
                    });
                }
                Err(reason) => reading.rejected.push(Rejected {
                    message: Message {
                        payload: Vec::new(),
                        metadata: metadata.clone(),
                    },
                    error_type: ErrorType::InvalidData,
                    reason,
                }),
            }
        }
        Ok(())
    }

    /// `{"value": document, "_metadata": {"namespace": .., "table": ..}}`; a
    /// document that is not JSON becomes a JSON string.
    fn wrap(&self, document: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(document.len() + self.table.len() + 64);
        out.extend_from_slice(b"{\"value\":");
        if serde_json::from_slice::<serde::de::IgnoredAny>(document).is_ok() {
            out.extend_from_slice(document);
        } else {
            // Serializing a string cannot fail.
            let _ = serde_json::to_writer(&mut out, &String::from_utf8_lossy(document));
        }
        out.extend_from_slice(b",\"_metadata\":{\"namespace\":");
        let _ = serde_json::to_writer(&mut out, &self.namespace);
        out.extend_from_slice(b",\"table\":");
        let _ = serde_json::to_writer(&mut out, &self.table);
        out.extend_from_slice(b"}}");
        out
    }
}

/// Every row of `batch` as a JSON object (nulls included).
fn rows_as_json(batch: &RecordBatch) -> Result<Vec<Vec<u8>>, String> {
    let mut text = Vec::new();
    let mut writer = arrow_json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::LineDelimited>(&mut text);
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(text
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

#[async_trait]
impl Source for NessieSource {
    async fn next_batch(
        &mut self,
        limit: BatchLimit,
    ) -> Result<Option<SourceBatch>, ConnectorError> {
        let max = limit.messages.max(1);
        let max = max.max(1);
        'poll: loop {
            if let Some(mut reading) = self.reading.take() {
                while reading.ready.len() < max {
                    match reading.rows.next().await {
                        Some(Ok(batch)) => {
                            self.backoff.reset();
                            self.throttle.reset();
                            self.retry.health().up();
                            let id = reading.snapshot_id;
                            self.decode(id, &batch, &mut reading)?;
                        }
                        Some(Err(e)) => match classify(&e) {
                            // Storage hiccup: read the snapshot again from its start
                            // (rows already handed out come again: at-least-once).
                            Failure::Transient(reason) => {
                                self.retry.health().down();
                                if self.throttle.should_log() {
                                    tracing::warn!(connector = %self.retry.connector(), failures = self.throttle.take_count(), %reason, "reading a snapshot failed; reading it again");
                                }
                                self.pending.push_front(reading.pending);
                                self.backoff.wait().await;
                                continue 'poll;
                            }
                            Failure::Rows(error_type, reason)
                            | Failure::Fatal(error_type, reason) => {
                                return Err(
                                    self.failed("read the data files", (error_type, reason))
                                );
                            }
                        },
                        None => break,
                    }
                }
                let take = reading.ready.len().min(max);
                let messages: Vec<Message> = reading.ready.drain(..take).collect();
                let rejected = std::mem::take(&mut reading.rejected);
                let finished = reading.ready.is_empty() && messages.len() < max;
                if finished {
                    // Every record batch was pulled (the loop ended below `max`).
                    self.last = Some(ReadUpTo::of(reading.pending.snapshot()));
                } else {
                    self.reading = Some(reading);
                }
                if !messages.is_empty() || !rejected.is_empty() {
                    return Ok(Some(SourceBatch {
                        messages,
                        rejected,
                        ack: None,
                    }));
                }
                continue;
            }
            if self.start_next().await? {
                continue;
            }
            self.timer.wait().await;
            self.poll().await?;
            self.timer.polled(false);
        }
    }

    async fn commit(&mut self, _ack: Ack) -> Result<(), ConnectorError> {
        // Batches carry no position: it lives in memory and moves on read.
        Ok(())
    }
}
