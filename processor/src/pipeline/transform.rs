//! The transform stage: runs the chain over each batch on its own thread (Wasm
//! calls are synchronous and CPU-bound) and sorts the results by destination.

use std::sync::Arc;
use std::time::Instant;

use dataflow_api::{ErrorRecord, SinkType, Stage};
use dataflow_core::{Message, find_meta};
use dataflow_wasm_host::{ChainFailure, ChainOutput, GroupRun, TransformChain};
use tokio::sync::mpsc;

use super::observer::Observer;
use super::watchers::Watchers;
use crate::connectors::{Ack, SourceBatch};

/// A batch's transformation: the Wasm chain, or a stand-in in tests.
pub trait BatchTransform: Send {
    /// Runs a batch through every transformation, handing the results to `emit` in
    /// parts; the last part says so. An input that fails keeps its payload and
    /// metadata (its error record is made from them); the others may have given
    /// their metadata to their outputs.
    fn run_parts(&mut self, inputs: &mut [Message], emit: &mut dyn FnMut(ChainOutput));

    /// What each component call did with the last batch, for metrics.
    fn last_runs(&self) -> &[GroupRun];
}

impl BatchTransform for TransformChain {
    fn run_parts(&mut self, inputs: &mut [Message], emit: &mut dyn FnMut(ChainOutput)) {
        TransformChain::run_parts(self, inputs, emit);
    }

    fn last_runs(&self) -> &[GroupRun] {
        TransformChain::last_runs(self)
    }
}

/// A batch on its way from the source to the transform stage.
pub(super) struct Queued {
    pub(super) batch: SourceBatch,
    /// When the source returned it (also when it entered the queue).
    pub(super) read_at: Instant,
}

/// A transformed batch, sorted by destination.
pub(super) struct Processed {
    pub(super) main: Vec<Message>,
    pub(super) routes: Vec<Vec<Message>>,
    pub(super) errors: Vec<Message>,
    pub(super) read: u64,
    pub(super) filtered: u64,
    pub(super) ack: Option<Ack>,
    /// When the source returned the batch.
    pub(super) read_at: Instant,
    /// When the transform stage took it.
    pub(super) taken_at: Instant,
    /// When it entered the writers' queue.
    pub(super) queued_at: Instant,
}

impl Processed {
    pub(super) fn message_count(&self) -> usize {
        self.main.len() + self.routes.iter().map(Vec::len).sum::<usize>() + self.errors.len()
    }

    fn byte_count(&self) -> usize {
        let bytes = |messages: &[Message]| messages.iter().map(|m| m.payload.len()).sum::<usize>();
        bytes(&self.main)
            + self.routes.iter().map(|r| bytes(r)).sum::<usize>()
            + bytes(&self.errors)
    }
}

/// What the stage needs to know to sort its results, and whom it tells.
pub(super) struct StageOutput {
    pub(super) route_count: usize,
    pub(super) original_sink: SinkType,
    pub(super) observer: Arc<dyn Observer>,
    pub(super) watchers: Option<Watchers>,
}

/// Transforms batches until the input queue closes or the writers stop listening.
pub(super) fn run_stage(
    chain: &mut dyn BatchTransform,
    input: &mut mpsc::Receiver<Queued>,
    output: &mpsc::Sender<Processed>,
    stage: &StageOutput,
) {
    while let Some(queued) = input.blocking_recv() {
        if !transform_batch(chain, queued, stage, output) {
            break;
        }
    }
}

/// Runs the chain over a batch and sends its results, sorted by destination, in
/// parts; the batch's ack goes with its last part. False once the writers are gone.
fn transform_batch(
    chain: &mut dyn BatchTransform,
    queued: Queued,
    stage: &StageOutput,
    output: &mpsc::Sender<Processed>,
) -> bool {
    let taken_at = Instant::now();
    let Queued { batch, read_at } = queued;
    let mut inputs = batch.messages;
    let unreadable = batch.rejected.len();
    if let Some(watchers) = &stage.watchers {
        watchers.source(&inputs);
        watchers.unreadable(&batch.rejected);
    }
    stage
        .observer
        .dequeued(inputs.len() + unreadable, taken_at - read_at);
    let mut read_errors: Vec<Message> = batch
        .rejected
        .into_iter()
        .map(|rejected| Message {
            payload: ErrorRecord {
                message: &rejected.reason,
                error_type: rejected.error_type,
                stage: Stage::Read,
                original_sink: stage.original_sink,
                transformer_index: None,
                metadata: &rejected.message.metadata,
                original: &rejected.message.payload,
            }
            .to_json(),
            metadata: rejected.message.metadata,
        })
        .collect();
    let ack = batch.ack;
    let mut open = true;
    // Error records are made from the inputs, which the chain holds until it is
    // done: failures wait for the last part, which carries them and the ack.
    let mut failures: Vec<ChainFailure> = Vec::new();
    let mut last: Option<Processed> = None;
    chain.run_parts(&mut inputs, &mut |part| {
        if !open {
            return;
        }
        let mut main = Vec::with_capacity(part.outputs.len());
        let mut routes: Vec<Vec<Message>> = (0..stage.route_count).map(|_| Vec::new()).collect();
        for message in part.outputs {
            match route_of(&message).filter(|&r| r < stage.route_count) {
                Some(route) => routes[route].push(message),
                None => main.push(message),
            }
        }
        if let Some(watchers) = &stage.watchers {
            watchers.sorted(&main, &routes);
        }
        failures.extend(part.failures);
        let processed = Processed {
            main,
            routes,
            errors: Vec::new(),
            read: 0,
            filtered: part.filtered as u64,
            ack: None,
            read_at,
            taken_at,
            queued_at: taken_at,
        };
        if part.last {
            last = Some(processed);
        } else {
            open = send(stage, output, processed, &[]);
        }
    });
    if let Some(mut processed) = last.take().filter(|_| open) {
        read_errors.extend(failures.iter().map(|failure| Message {
            payload: failure.record(&inputs, stage.original_sink).to_json(),
            metadata: inputs[failure.origin].metadata.clone(),
        }));
        if let Some(watchers) = &stage.watchers {
            watchers.chain_failed(&failures, &inputs);
            watchers.error_records(&read_errors);
        }
        processed.errors = read_errors;
        processed.read = (inputs.len() + unreadable) as u64;
        processed.ack = ack;
        open = send(stage, output, processed, &failures);
    }
    stage
        .observer
        .transformed(chain.last_runs(), taken_at.elapsed());
    open
}

/// Hands a part of a batch's results to the writers, telling the observer;
/// `failures` are those whose error records it carries. False once the writers
/// are gone.
fn send(
    stage: &StageOutput,
    output: &mpsc::Sender<Processed>,
    mut processed: Processed,
    failures: &[ChainFailure],
) -> bool {
    stage
        .observer
        .transformed_part(failures, processed.message_count(), processed.byte_count());
    processed.queued_at = Instant::now();
    output.blocking_send(processed).is_ok()
}

/// The route index the router put in a message's metadata.
pub(crate) fn route_of(message: &Message) -> Option<usize> {
    find_meta(&message.metadata, "route").and_then(|v| v.parse().ok())
}
