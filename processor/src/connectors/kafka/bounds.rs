//! The end of a Kafka job: the offsets each partition is read up to.
//!
//! A job (`execution.mode: job`) reads every partition of its topic up to the
//! high watermark it had when the job started, from the group's committed
//! offset (or the oldest one). Records at or after that end are not handed out,
//! so they are neither written nor committed and the next run starts with them.
//! A partition also ends when librdkafka reports its end (`PartitionEOF`), which
//! covers a last offset that holds no record (a transaction marker, a compacted
//! record).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dataflow_api::ErrorType;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use super::context::KafkaContext;
use crate::connectors::ConnectorError;

/// How long each metadata, watermark or committed-offset request may take.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Partitions still to read, each with the offset it ends before.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Bounds {
    remaining: BTreeMap<i32, i64>,
}

impl Bounds {
    /// Asks the brokers where each partition of `topic` starts for the group and
    /// where it ends now.
    pub async fn fetch(
        name: &str,
        topic: &str,
        consumer: Arc<StreamConsumer<KafkaContext>>,
    ) -> Result<Self, ConnectorError> {
        let topic = topic.to_owned();
        let failed = |reason: String| ConnectorError::Failed {
            connector: name.to_owned(),
            error_type: ErrorType::ConnectionError,
            reason,
        };
        let found = tokio::task::spawn_blocking(move || find(&consumer, &topic))
            .await
            .map_err(|e| failed(format!("reading the topic's end did not run: {e}")))?;
        let partitions = found.map_err(failed)?;
        let bounds = Self::from_partitions(partitions);
        tracing::info!(connector = %name, partitions = ?bounds.remaining, "job reads up to these offsets");
        Ok(bounds)
    }

    /// From `(partition, start, end)`: partitions with nothing between start
    /// and end are done already.
    fn from_partitions(partitions: Vec<(i32, i64, i64)>) -> Self {
        Self {
            remaining: partitions
                .into_iter()
                .filter(|&(_, start, end)| start < end)
                .map(|(partition, _, end)| (partition, end))
                .collect(),
        }
    }

    /// Whether every partition has been read to its end.
    pub fn done(&self) -> bool {
        self.remaining.is_empty()
    }

    /// Whether the record at `offset` of `partition` belongs to the job; a
    /// partition ends with its last record.
    pub fn admit(&mut self, partition: i32, offset: i64) -> bool {
        let Some(&end) = self.remaining.get(&partition) else {
            return false;
        };
        if offset + 1 >= end {
            self.remaining.remove(&partition);
        }
        offset < end
    }

    /// librdkafka reached the end of `partition`.
    pub fn reached_end(&mut self, partition: i32) {
        self.remaining.remove(&partition);
    }
}

/// The partition numbers of `topic`; a topic that does not exist is an error.
pub(super) fn partitions_of(
    consumer: &StreamConsumer<KafkaContext>,
    topic: &str,
) -> Result<Vec<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|e| format!("cannot read the topic's partitions: {e}"))?;
    let Some(described) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(format!("topic {topic:?} does not exist"));
    };
    if let Some(error) = described.error() {
        return Err(format!("topic {topic:?}: {:?}", error));
    }
    if described.partitions().is_empty() {
        return Err(format!("topic {topic:?} does not exist"));
    }
    Ok(described.partitions().iter().map(|p| p.id()).collect())
}

/// `(partition, start, end)` for every partition of `topic`.
fn find(
    consumer: &StreamConsumer<KafkaContext>,
    topic: &str,
) -> Result<Vec<(i32, i64, i64)>, String> {
    let ids = partitions_of(consumer, topic)?;
    let mut list = TopicPartitionList::new();
    for &id in &ids {
        list.add_partition(topic, id);
    }
    // Right after a group first forms, its coordinator may still be loading.
    let committed = patiently(|| consumer.committed_offsets(list.clone(), REQUEST_TIMEOUT))
        .map_err(|e| format!("cannot read the group's committed offsets: {e}"))?;
    let mut partitions = Vec::with_capacity(ids.len());
    for id in ids {
        let (low, high) = patiently(|| consumer.fetch_watermarks(topic, id, REQUEST_TIMEOUT))
            .map_err(|e| format!("cannot read the offsets of partition {id}: {e}"))?;
        let start = match committed.find_partition(topic, id).map(|p| p.offset()) {
            Some(Offset::Offset(offset)) => offset.max(low),
            _ => low,
        };
        partitions.push((id, start, high));
    }
    Ok(partitions)
}

/// Runs a broker request again while it fails, for up to [`REQUEST_TIMEOUT`]:
/// coordinators and partition leaders move, and say so with an error first.
pub(super) fn patiently<T>(
    request: impl FnMut() -> rdkafka::error::KafkaResult<T>,
) -> rdkafka::error::KafkaResult<T> {
    patiently_for(REQUEST_TIMEOUT, request)
}

/// [`patiently`], for up to `window`.
pub(super) fn patiently_for<T>(
    window: Duration,
    mut request: impl FnMut() -> rdkafka::error::KafkaResult<T>,
) -> rdkafka::error::KafkaResult<T> {
    let deadline = std::time::Instant::now() + window;
    loop {
        match request() {
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "kafka request failed; asking again");
                std::thread::sleep(Duration::from_millis(200));
            }
            outcome => return outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Bounds;

    #[test]
    fn a_partition_ends_with_its_last_record_and_later_ones_are_left() {
        // Partition 0: offsets 3..10 to read; 1: committed at its end; 2: empty.
        let mut bounds = Bounds::from_partitions(vec![(0, 3, 10), (1, 7, 7), (2, 0, 0)]);
        assert!(!bounds.done());
        assert!(!bounds.admit(1, 7), "partition 1 had nothing to read");
        assert!(bounds.admit(0, 3));
        assert!(bounds.admit(0, 9), "the last record at start");
        assert!(bounds.done());
        assert!(!bounds.admit(0, 10), "written after the start");
    }

    #[test]
    fn the_end_of_a_partition_ends_it_even_without_its_last_offset() {
        let mut bounds = Bounds::from_partitions(vec![(0, 0, 5), (1, 0, 2)]);
        assert!(bounds.admit(0, 2));
        bounds.reached_end(0);
        assert!(!bounds.done());
        assert!(!bounds.admit(0, 3));
        bounds.reached_end(1);
        assert!(bounds.done());
    }
}
