//! Which data files of an Iceberg table the source has not read yet.
//!
//! While the table's metadata holds every snapshot since the last one read, the
//! new ones are read one by one, oldest first, each from the files it added.
//! Nessie's catalog serves metadata holding only the current snapshot (its own
//! commit log is the history), and expiring snapshots drops old ones elsewhere;
//! then the new rows are the live data files whose data sequence number is above
//! that of the last snapshot read. Format v1 tables have no sequence numbers:
//! there the whole remaining history is read again (duplicates, never loss).

use std::collections::VecDeque;
use std::sync::Arc;

use iceberg::scan::FileScanTask;
use iceberg::spec::{
    DataContentType, ManifestContentType, ManifestEntryRef, ManifestStatus, Operation, SnapshotRef,
};
use iceberg::table::Table;

/// The last snapshot read to its end: its id and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReadUpTo {
    /// Snapshot id.
    pub snapshot_id: i64,
    /// Its sequence number.
    pub sequence_number: i64,
}

impl ReadUpTo {
    /// The position once `snapshot` is read.
    pub fn of(snapshot: &SnapshotRef) -> Self {
        ReadUpTo {
            snapshot_id: snapshot.snapshot_id(),
            sequence_number: snapshot.sequence_number(),
        }
    }
}

/// Data files to read next.
#[derive(Debug, Clone)]
pub(super) enum Pending {
    /// The files this snapshot added.
    AddedBy(SnapshotRef),
    /// Every live data file of this (current) snapshot with a data sequence
    /// number above `after`.
    NewerThan {
        /// The current snapshot.
        snapshot: SnapshotRef,
        /// The sequence number already read up to.
        after: i64,
    },
}

impl Pending {
    /// The snapshot whose files these are; reading them moves the position there.
    pub fn snapshot(&self) -> &SnapshotRef {
        match self {
            Pending::AddedBy(snapshot) | Pending::NewerThan { snapshot, .. } => snapshot,
        }
    }

    /// Whether the files may hold new rows (compaction and deletes bring none).
    pub fn may_add_rows(&self) -> bool {
        match self {
            Pending::AddedBy(snapshot) => matches!(
                snapshot.summary().operation,
                Operation::Append | Operation::Overwrite
            ),
            Pending::NewerThan { .. } => true,
        }
    }
}

/// What to read after `last` in `table`'s current state, oldest first.
pub(super) fn pending(table: &Table, last: Option<ReadUpTo>) -> VecDeque<Pending> {
    let metadata = table.metadata();
    let Some(current) = metadata.current_snapshot().cloned() else {
        return VecDeque::new();
    };
    let mut ancestry = VecDeque::new();
    let mut at = Some(current.clone());
    let mut reaches_the_first = false;
    while let Some(snapshot) = at {
        if last.is_some_and(|l| l.snapshot_id == snapshot.snapshot_id()) {
            return ancestry.into_iter().map(Pending::AddedBy).collect();
        }
        at = snapshot
            .parent_snapshot_id()
            .and_then(|parent| metadata.snapshot_by_id(parent).cloned());
        if at.is_none() {
            // The table's first snapshot has no parent and sequence number 1 (0
            // in format v1); Nessie's lone current snapshot has no parent either.
            reaches_the_first =
                snapshot.parent_snapshot_id().is_none() && snapshot.sequence_number() <= 1;
        }
        ancestry.push_front(snapshot);
    }
    let whole_history = || ancestry.clone().into_iter().map(Pending::AddedBy).collect();
    if last.is_none() && reaches_the_first {
        return whole_history();
    }
    if current.sequence_number() == 0 {
        if last.is_some() {
            tracing::warn!(table = %table.identifier(), "the last snapshot read is gone from the table's history and the table has no sequence numbers (format v1); reading the whole history again");
        }
        return whole_history();
    }
    let after = last.map_or(0, |l| l.sequence_number);
    if current.sequence_number() <= after {
        // Rolled back to a snapshot already read past: nothing is new.
        return VecDeque::new();
    }
    if last.is_some() {
        tracing::info!(table = %table.identifier(), after, "the table's metadata no longer holds the last snapshot read; reading the data files added after its sequence number");
    }
    VecDeque::from([Pending::NewerThan {
        snapshot: current,
        after,
    }])
}

/// Scan tasks for the data files `pending` names.
pub(super) async fn files(table: &Table, pending: &Pending) -> iceberg::Result<Vec<FileScanTask>> {
    let snapshot = pending.snapshot();
    let metadata = table.metadata();
    let schema = snapshot.schema(metadata)?;
    let field_ids: Vec<i32> = schema.as_struct().fields().iter().map(|f| f.id).collect();
    let manifests = table.manifest_list_reader(snapshot).load().await?;
    let mut tasks = Vec::new();
    for manifest_file in manifests.entries() {
        let wanted = manifest_file.content == ManifestContentType::Data
            && match pending {
                Pending::AddedBy(s) => manifest_file.added_snapshot_id == s.snapshot_id(),
                // A manifest holds no entry newer than itself.
                Pending::NewerThan { after, .. } => manifest_file.sequence_number > *after,
            };
        if !wanted {
            continue;
        }
        let manifest = manifest_file.load_manifest(table.file_io()).await?;
        let spec = metadata
            .partition_spec_by_id(manifest_file.partition_spec_id)
            .cloned();
        for entry in manifest.entries() {
            if !entry_wanted(pending, entry) {
                continue;
            }
            tasks.push(
                FileScanTask::builder()
                    .with_file_size_in_bytes(entry.file_size_in_bytes())
                    .with_start(0)
                    .with_length(entry.file_size_in_bytes())
                    .with_record_count(Some(entry.record_count()))
                    .with_data_file_path(entry.file_path().to_owned())
                    .with_data_file_format(entry.file_format())
                    .with_schema(schema.clone())
                    .with_project_field_ids(field_ids.clone())
                    .with_partition(Some(entry.data_file().partition().clone()))
                    .with_partition_spec(spec.clone().map(Arc::unwrap_or_clone).map(Arc::new))
                    .with_case_sensitive(true)
                    .build(),
            );
        }
    }
    Ok(tasks)
}

fn entry_wanted(pending: &Pending, entry: &ManifestEntryRef) -> bool {
    if entry.content_type() != DataContentType::Data {
        return false;
    }
    match pending {
        Pending::AddedBy(snapshot) => {
            entry.status() == ManifestStatus::Added
                && entry
                    .snapshot_id()
                    .is_none_or(|id| id == snapshot.snapshot_id())
        }
        Pending::NewerThan { after, .. } => {
            entry.status() != ManifestStatus::Deleted
                && entry.sequence_number().is_some_and(|s| s > *after)
        }
    }
}
