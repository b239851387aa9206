//! Moving a consumer group's position on one topic before the flow reads it
//! (a position reset: `earliest`, `latest`, a time, or explicit offsets).
//!
//! The new offsets are committed for the group before the source subscribes,
//! as `kafka-consumer-groups --reset-offsets` does: the broker accepts that only
//! while no member is in the group, so a processor of the same group still
//! running (or not yet expired after a crash) makes the reset wait, and after
//! [`COMMIT_WINDOW`] fail with a message saying so. Replicas of one flow all
//! start with the same request: the first commits it and joins the group, and
//! the others, waiting for the group to empty, read on from where the flow is
//! once the DataFlow's status shows the request applied.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use dataflow_api::{ErrorType, PositionReset};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::bounds::{REQUEST_TIMEOUT, partitions_of, patiently, patiently_for};
use super::context::KafkaContext;
use crate::connectors::ConnectorError;

/// How long the commit may wait for the group to empty: a member that left
/// without a goodbye stays until its session times out.
const COMMIT_WINDOW: Duration = Duration::from_secs(60);

/// Commits the offsets `reset` names for `consumer`'s group on `topic`; returns
/// what was done, partition by partition, or `None` when `applied_elsewhere`
/// turned `true` (another replica applied it) while the commit waited.
pub async fn apply(
    name: &str,
    topic: &str,
    consumer: Arc<StreamConsumer<KafkaContext>>,
    reset: &PositionReset,
    applied_elsewhere: Option<watch::Receiver<bool>>,
) -> Result<Option<String>, ConnectorError> {
    let failed = |reason: String| ConnectorError::Failed {
        connector: name.to_owned(),
        error_type: ErrorType::Failed,
        reason: format!("cannot reset the position: {reason}"),
    };
    let owned_topic = topic.to_owned();
    let owned_reset = reset.clone();
    let offsets = tokio::task::spawn_blocking(move || {
        let targets = targets(&consumer, &owned_topic, &owned_reset)?;
        let committed = commit(
            &consumer,
            &owned_topic,
            &targets,
            applied_elsewhere.as_ref(),
        )?;
        Ok::<_, String>(committed.then_some(targets))
    })
    .await
    .map_err(|e| failed(format!("the reset did not run: {e}")))?
    .map_err(failed)?;
    let Some(offsets) = offsets else {
        tracing::info!(connector = %name, %reset, "another replica of the flow applied this position reset; reading on from where the flow is");
        return Ok(None);
    };
    let mut detail = format!("topic {topic} ({reset}): ");
    for (i, (partition, offset)) in offsets.iter().enumerate() {
        let _ = write!(
            detail,
            "{}partition {partition} from offset {offset}",
            if i > 0 { ", " } else { "" }
        );
    }
    tracing::info!(connector = %name, %detail, "position reset");
    Ok(Some(detail))
}

/// The offset each partition continues from.
fn targets(
    consumer: &StreamConsumer<KafkaContext>,
    topic: &str,
    reset: &PositionReset,
) -> Result<BTreeMap<i32, i64>, String> {
    let partitions = partitions_of(consumer, topic)?;
    let mut watermarks = BTreeMap::new();
    for &id in &partitions {
        let marks = patiently(|| consumer.fetch_watermarks(topic, id, REQUEST_TIMEOUT))
            .map_err(|e| format!("cannot read the offsets of partition {id}: {e}"))?;
        watermarks.insert(id, marks);
    }
    match reset {
        PositionReset::Earliest => Ok(watermarks.iter().map(|(&p, &(low, _))| (p, low)).collect()),
        PositionReset::Latest => Ok(watermarks
            .iter()
            .map(|(&p, &(_, high))| (p, high))
            .collect()),
        PositionReset::Timestamp(ms) => at_time(consumer, topic, *ms, &watermarks),
        PositionReset::Offsets(wanted) => {
            for (&partition, &offset) in wanted {
                let Some(&(low, high)) = watermarks.get(&partition) else {
                    return Err(format!(
                        "topic {topic} has no partition {partition} (it has {})",
                        partitions.len()
                    ));
                };
                if offset < low || offset > high {
                    return Err(format!(
                        "offset {offset} is outside partition {partition}, which holds offsets {low} to {high}"
                    ));
                }
            }
            Ok(wanted.clone())
        }
        other => Err(format!("a Kafka source cannot move to {other}")),
    }
}

/// The first offset at or after `ms` in each partition; a partition with no
/// record that late continues from its end.
fn at_time(
    consumer: &StreamConsumer<KafkaContext>,
    topic: &str,
    ms: i64,
    watermarks: &BTreeMap<i32, (i64, i64)>,
) -> Result<BTreeMap<i32, i64>, String> {
    let mut asked = TopicPartitionList::new();
    for &id in watermarks.keys() {
        asked
            .add_partition_offset(topic, id, Offset::Offset(ms))
            .map_err(|e| format!("partition {id}: {e}"))?;
    }
    let found = patiently(|| consumer.offsets_for_times(asked.clone(), REQUEST_TIMEOUT))
        .map_err(|e| format!("cannot find the offsets at {ms} ms: {e}"))?;
    let mut offsets = BTreeMap::new();
    for (&id, &(_, high)) in watermarks {
        let offset = match found.find_partition(topic, id).map(|p| p.offset()) {
            Some(Offset::Offset(offset)) => offset,
            _ => high,
        };
        offsets.insert(id, offset);
    }
    Ok(offsets)
}

/// Commits `offsets` for the group, waiting for it to be empty; false when
/// `applied_elsewhere` turned `true` first.
fn commit(
    consumer: &StreamConsumer<KafkaContext>,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
    applied_elsewhere: Option<&watch::Receiver<bool>>,
) -> Result<bool, String> {
    let mut list = TopicPartitionList::new();
    for (&id, &offset) in offsets {
        list.add_partition_offset(topic, id, Offset::Offset(offset))
            .map_err(|e| format!("partition {id}: {e}"))?;
    }
    // A request that turns `Ok(false)` ends the wait as a commit does.
    patiently_for(COMMIT_WINDOW, || {
        if applied_elsewhere.is_some_and(|applied| *applied.borrow()) {
            return Ok(false);
        }
        consumer.commit(&list, CommitMode::Sync).map(|()| true)
    })
    .map_err(|e| {
        format!(
            "the group did not accept the new offsets within {} s ({e}); a consumer of the same group is probably still running: stop it and start again",
            COMMIT_WINDOW.as_secs()
        )
    })
}
