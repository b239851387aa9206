//! The read side: batches from the source into the transform queue, and the
//! commits of the positions the writers release.

use std::collections::VecDeque;
use std::time::Instant;

use dataflow_core::Message;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::observer::Observer;
use super::transform::Queued;
use crate::connectors::{Ack, BatchLimit, ConnectorError, Source};
use crate::progress::Progress;

/// What the read loop waited for.
enum Event {
    /// Reading must stop.
    Stop,
    /// The writers released an ack (`None`: they are gone).
    Ack(Option<Ack>),
    /// The source may have input.
    Input(Result<(), ConnectorError>),
}

/// Reads batches until the source ends or `stop` is cancelled, committing
/// positions as the writers release them, also while the source is idle.
pub(super) async fn read_loop(
    source: &mut dyn Source,
    limit: BatchLimit,
    batch_tx: &mpsc::Sender<Queued>,
    ack_rx: &mut mpsc::UnboundedReceiver<Ack>,
    stop: &CancellationToken,
    observer: &dyn Observer,
    progress: &Progress,
) -> Result<(), ConnectorError> {
    let mut positions = PendingPositions::new(observer.wants_positions());
    loop {
        let reading = Instant::now();
        let event = tokio::select! {
            biased;
            () = stop.cancelled() => Event::Stop,
            ack = ack_rx.recv() => Event::Ack(ack),
            ready = source.wait_for_input() => Event::Input(ready),
        };
        match event {
            // Without writers nothing read could be written: stop reading.
            Event::Stop | Event::Ack(None) => return Ok(()),
            Event::Ack(Some(ack)) => {
                source.commit(ack).await?;
                positions.committed(ack, observer);
                continue;
            }
            Event::Input(ready) => ready.inspect_err(|e| observer.read_failed(e.error_type()))?,
        }
        let batch = tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            batch = source.next_batch(limit) => batch,
        };
        let batch = batch.inspect_err(|e| observer.read_failed(e.error_type()))?;
        let Some(batch) = batch else { return Ok(()) };
        if batch.messages.is_empty() && batch.rejected.is_empty() && batch.ack.is_none() {
            continue;
        }
        let read_at = Instant::now();
        observer.batch_read(
            batch.messages.len(),
            batch.messages.iter().map(|m| m.payload.len()).sum(),
            &batch.rejected,
            read_at - reading,
        );
        progress.taken((batch.messages.len() + batch.rejected.len()) as u64);
        if let Some(ack) = batch.ack {
            positions.handed_out(ack, &batch.messages);
        }
        let batch = Queued { batch, read_at };
        tokio::select! {
            biased;
            () = stop.cancelled() => {
                // Not yet handed on: the batch is dropped uncommitted and read again
                // on the next start.
                return Ok(());
            }
            sent = batch_tx.send(batch) => if sent.is_err() { return Ok(()) },
        }
    }
}

/// The positions of the batches handed out and not yet committed, for an
/// observer that shows where the source stands (none kept otherwise). As many
/// as the pipeline's queues let be in flight.
struct PendingPositions {
    wanted: bool,
    pending: VecDeque<(Ack, Vec<String>)>,
}

/// The most Kafka partitions one batch's positions name.
const MAX_BATCH_PLACES: usize = 64;

impl PendingPositions {
    fn new(wanted: bool) -> Self {
        Self {
            wanted,
            pending: VecDeque::new(),
        }
    }

    fn handed_out(&mut self, ack: Ack, messages: &[Message]) {
        if self.wanted {
            self.pending.push_back((ack, batch_positions(messages)));
        }
    }

    /// Tells `observer` the positions of the batches up to `ack`.
    fn committed(&mut self, ack: Ack, observer: &dyn Observer) {
        while self.pending.front().is_some_and(|(a, _)| *a <= ack) {
            if let Some((_, positions)) = self.pending.pop_front() {
                observer.committed(&positions);
            }
        }
    }
}

/// The last offset of each Kafka partition in `messages`, or the last
/// message's position for other sources.
fn batch_positions(messages: &[Message]) -> Vec<String> {
    let mut places: Vec<(&str, &str)> = Vec::new();
    let mut positions = Vec::new();
    for message in messages.iter().rev() {
        match (
            message.meta("topic"),
            message.meta("partition"),
            message.meta("offset"),
        ) {
            (Some(topic), Some(partition), Some(offset)) => {
                if places.contains(&(topic, partition)) {
                    continue;
                }
                if places.len() == MAX_BATCH_PLACES {
                    break;
                }
                places.push((topic, partition));
                positions.push(format!("{topic}/{partition}@{offset}"));
            }
            _ => {
                positions.extend(dataflow_inspect::failures::position(&message.metadata));
                break;
            }
        }
    }
    positions
}

/// After reading stopped: commits whatever the writers still release, then makes
/// the last commit durable.
pub(super) async fn drain_commits(
    source: &mut dyn Source,
    ack_rx: &mut mpsc::UnboundedReceiver<Ack>,
) -> Result<(), ConnectorError> {
    while let Some(ack) = ack_rx.recv().await {
        source.commit(ack).await?;
    }
    source.close().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(metadata: &[(&str, String)]) -> Message {
        Message {
            payload: b"{}".to_vec(),
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    fn kafka(partition: u32, offset: u64) -> Message {
        with(&[
            ("topic", "orders".to_owned()),
            ("partition", partition.to_string()),
            ("offset", offset.to_string()),
        ])
    }

    #[test]
    fn a_batch_names_the_last_offset_of_each_partition() {
        let batch = [
            kafka(0, 5),
            kafka(1, 9),
            kafka(0, 6),
            kafka(1, 10),
            kafka(0, 7),
        ];
        assert_eq!(batch_positions(&batch), ["orders/0@7", "orders/1@10"]);
    }

    #[test]
    fn other_sources_name_their_last_message() {
        let first = with(&[("lsn", "0/10".to_owned())]);
        let last = with(&[("lsn", "0/20".to_owned())]);
        assert_eq!(batch_positions(&[first, last]), ["lsn 0/20"]);
        assert!(batch_positions(&[with(&[])]).is_empty());
    }
}
