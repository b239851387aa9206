//! The read side: batches from the source into the transform queue, and the
//! commits of the positions the writers release.

use std::time::Instant;

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
