//! Running a batch through the chain, depth first, handing results on in parts.

use std::time::Instant;

use dataflow_api::{ErrorType, Stage};
use dataflow_core::json::Value;
use dataflow_core::{ErrorKind, Message, Outcome};
use serde::de::IgnoredAny;

use super::{ChainFailure, ChainOutput, Group, GroupRun, TransformChain, probe};
use crate::{CallFailure, Inputs};

/// Payload bytes handed to a component in one call, about. What a call needs in
/// the component's memory (the batch going in and the outcomes coming out) stays
/// far below any memory limit, and the buffers of a call and their copies on the
/// host side stay in the core's cache.
pub const CALL_PAYLOAD_BYTES: usize = 128 * 1024;

/// Output bytes gathered before a part of a batch's results is handed on.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// Cuts `messages` into the calls the chain makes: runs of about
/// [`CALL_PAYLOAD_BYTES`] of payload, at least one message each.
pub fn call_chunks(messages: &mut [Message]) -> impl Iterator<Item = &mut [Message]> {
    let mut rest = messages;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let take = rest
            .iter()
            .position(|message| {
                bytes += message.payload.len();
                bytes > CALL_PAYLOAD_BYTES
            })
            .unwrap_or(rest.len())
            .max(1);
        let (chunk, later) = std::mem::take(&mut rest).split_at_mut(take);
        rest = later;
        Some(chunk)
    })
}

/// Gathers results into parts and hands each on when it is large enough.
struct Parts<'a> {
    part: ChainOutput,
    bytes: usize,
    /// Inputs that produced an output or a failure.
    touched: Vec<bool>,
    emit: &'a mut dyn FnMut(ChainOutput),
}

impl Parts<'_> {
    fn output(&mut self, message: Message, origin: usize) {
        self.touched[origin] = true;
        self.bytes += message.payload.len();
        self.part.outputs.push(message);
        self.part.origins.push(origin);
        if self.bytes >= PART_BYTES {
            self.bytes = 0;
            (self.emit)(std::mem::take(&mut self.part));
        }
    }

    fn failure(&mut self, failure: ChainFailure) {
        self.touched[failure.origin] = true;
        self.part.failures.push(failure);
    }

    fn finish(mut self) {
        self.part.filtered = self.touched.iter().filter(|t| !**t).count();
        self.part.last = true;
        (self.emit)(self.part);
    }
}

impl TransformChain {
    /// Runs a batch through every transformation and returns all its results.
    /// Inputs that fail keep their metadata; the others may have given it to
    /// their outputs.
    pub fn run(&mut self, inputs: &mut [Message]) -> ChainOutput {
        let mut all = ChainOutput::default();
        self.run_parts(inputs, &mut |part| {
            all.outputs.extend(part.outputs);
            all.origins.extend(part.origins);
            all.failures.extend(part.failures);
            all.filtered += part.filtered;
            all.last = part.last;
        });
        all
    }

    /// Runs a batch through every transformation, handing its results to `emit`
    /// in parts of about [`PART_BYTES`] of output; the last part says so and
    /// counts the filtered inputs. An input that fails keeps its payload and
    /// metadata for its error record; the others may have given their metadata
    /// to their outputs.
    pub fn run_parts(&mut self, inputs: &mut [Message], emit: &mut dyn FnMut(ChainOutput)) {
        for run in &mut self.runs {
            *run = GroupRun {
                first_index: run.first_index,
                steps: run.steps,
                custom: run.custom,
                ..GroupRun::default()
            };
        }
        let mut parts = Parts {
            part: ChainOutput::default(),
            bytes: 0,
            touched: vec![false; inputs.len()],
            emit,
        };
        let origins: Vec<usize> = (0..inputs.len()).collect();
        if self.groups.is_empty() {
            // Nothing will parse the payloads: check them here.
            for (message, origin) in inputs.iter().zip(origins) {
                match check_json(message, origin, None, Stage::Read) {
                    Ok(()) => parts.output(message.clone(), origin),
                    Err(failure) => parts.failure(failure),
                }
            }
        } else {
            self.run_from(0, inputs, &origins, false, &mut parts);
            for (group, run) in self.groups.iter_mut().zip(&mut self.runs) {
                if !group.custom {
                    run.step_counts = group.instance.take_step_counts();
                }
            }
        }
        parts.finish();
    }

    /// Runs `messages` (from the inputs `origins`) through group `g` and the groups
    /// after it, one call at a time. Under a `when`, the messages it does not hold
    /// for go past the group unchanged, in their place in the order. `owned`:
    /// the messages are the chain's own (outputs of an earlier group), not the
    /// caller's inputs, so nothing needs them after this group.
    fn run_from(
        &mut self,
        g: usize,
        messages: &mut [Message],
        origins: &[usize],
        owned: bool,
        parts: &mut Parts<'_>,
    ) {
        let Some(when) = self.groups[g].when.take() else {
            self.run_group(g, messages, origins, owned, parts);
            return;
        };
        let last = g + 1 == self.groups.len();
        // Whether `when` holds for each message, or why it cannot be checked.
        let verdicts: Vec<Result<bool, String>> = messages
            .iter()
            .map(|message| {
                Value::parse(&message.payload)
                    .map(|doc| when.matches(&doc, &message.metadata))
                    .map_err(|err| format!("message is not valid JSON: {err}"))
            })
            .collect();
        let mut start = 0;
        while start < messages.len() {
            let holds = match &verdicts[start] {
                Ok(holds) => *holds,
                Err(reason) => {
                    parts.failure(ChainFailure {
                        origin: origins[start],
                        transformer_index: Some(self.groups[g].first_index),
                        error_type: ErrorType::InvalidData,
                        stage: Stage::Transform,
                        message: reason.clone(),
                    });
                    start += 1;
                    continue;
                }
            };
            // The run of messages from `start` with the same verdict.
            let end = verdicts[start..]
                .iter()
                .position(|verdict| verdict.as_ref().ok() != Some(&holds))
                .map_or(messages.len(), |n| start + n);
            let (run, run_origins) = (&mut messages[start..end], &origins[start..end]);
            if holds {
                self.run_group(g, run, run_origins, owned, parts);
            } else {
                let passed = if owned {
                    run.iter_mut().map(std::mem::take).collect()
                } else {
                    run.to_vec()
                };
                self.hand_on(g, last, passed, run_origins, parts);
            }
            start = end;
        }
        self.groups[g].when = Some(when);
    }

    /// Runs `messages` (from the inputs `origins`) through group `g` itself, then
    /// the groups after it.
    fn run_group(
        &mut self,
        g: usize,
        messages: &mut [Message],
        origins: &[usize],
        owned: bool,
        parts: &mut Parts<'_>,
    ) {
        let last = g + 1 == self.groups.len();
        if let Some(probe) = &self.probe {
            let group = &self.groups[g];
            probe::offer_group_input(&**probe, group.first_index, group.steps, messages);
        }
        // The caller's inputs still serve the error records of whatever fails
        // after this group; after the last one nothing can (but a user
        // component's outputs are checked after it).
        let give = owned || (last && !self.groups[g].custom);
        let mut offset = 0;
        for chunk in call_chunks(messages) {
            let chunk_len = chunk.len();
            let chunk_origins = &origins[offset..offset + chunk_len];
            offset += chunk_len;
            self.runs[g].received += chunk_len as u64;
            match self.call(g, chunk, give) {
                Ok(outcomes) => {
                    let (outputs, out_origins) = self.sort(g, outcomes, chunk_origins, parts);
                    self.hand_on(g, last, outputs, &out_origins, parts);
                }
                Err(failure) => {
                    // Replay the chunk one message per call on a fresh instance, each
                    // result going on before the next message is tried.
                    if chunk_len > 1 {
                        tracing::warn!(transformer_index = self.groups[g].first_index, error = %failure, "batch call failed; replaying its messages one by one");
                    }
                    for (message, &origin) in chunk.iter_mut().zip(chunk_origins) {
                        let single = std::slice::from_mut(message);
                        let outcome = if chunk_len > 1 {
                            self.call(g, single, give)
                        } else {
                            Err(failure.clone())
                        };
                        match outcome {
                            Ok(outcomes) => {
                                let (outputs, out_origins) =
                                    self.sort(g, outcomes, &[origin], parts);
                                self.hand_on(g, last, outputs, &out_origins, parts);
                            }
                            Err(failure) => parts.failure(self.call_failed(g, origin, failure)),
                        }
                    }
                }
            }
        }
    }

    /// One call of group `g`, with its time and instance counters in the run;
    /// `give`: the chunk's metadata may go to its outputs.
    fn call(
        &mut self,
        g: usize,
        chunk: &mut [Message],
        give: bool,
    ) -> Result<Vec<Outcome>, CallFailure> {
        let Group { instance, .. } = &mut self.groups[g];
        let run = &mut self.runs[g];
        let before = (
            instance.rebuilds(),
            instance.timeouts(),
            instance.memory_limit_hits(),
        );
        let started = Instant::now();
        let result = instance.call(if give {
            Inputs::Given(chunk)
        } else {
            Inputs::Lent(chunk)
        });
        run.elapsed += started.elapsed();
        run.rebuilds += instance.rebuilds() - before.0;
        run.timeouts += instance.timeouts() - before.1;
        run.memory_limit_hits += instance.memory_limit_hits() - before.2;
        result
    }

    /// Splits a call's outcomes into outputs (with their origins) and failures.
    fn sort(
        &mut self,
        g: usize,
        outcomes: Vec<Outcome>,
        origins: &[usize],
        parts: &mut Parts<'_>,
    ) -> (Vec<Message>, Vec<usize>) {
        let group = &self.groups[g];
        let mut outputs = Vec::with_capacity(outcomes.len());
        let mut out_origins = Vec::with_capacity(outcomes.len());
        for (outcome, &origin) in outcomes.into_iter().zip(origins) {
            match outcome {
                Outcome::Emitted(messages) => {
                    out_origins.extend(std::iter::repeat_n(origin, messages.len()));
                    outputs.extend(messages);
                }
                Outcome::Failed(err) => parts.failure(ChainFailure {
                    origin,
                    transformer_index: Some(if group.custom {
                        group.first_index
                    } else {
                        group.first_index + usize::try_from(err.step).unwrap_or(0)
                    }),
                    error_type: match err.kind {
                        ErrorKind::InvalidData => ErrorType::InvalidData,
                        ErrorKind::Failed if group.script => ErrorType::ScriptError,
                        ErrorKind::Failed => ErrorType::Failed,
                    },
                    stage: Stage::Transform,
                    message: err.message,
                }),
            }
        }
        self.runs[g].emitted += outputs.len() as u64;
        (outputs, out_origins)
    }

    /// Outputs of group `g` go on to the next group, or, after the last, into the
    /// parts (a user component's outputs must be JSON: sinks expect it).
    fn hand_on(
        &mut self,
        g: usize,
        last: bool,
        mut outputs: Vec<Message>,
        origins: &[usize],
        parts: &mut Parts<'_>,
    ) {
        if let Some(probe) = &self.probe {
            let group = &self.groups[g];
            let step = group.first_index + group.steps - 1;
            if probe.wants_step(step) && !outputs.is_empty() {
                probe.step_output(step, &outputs);
            }
        }
        if !last {
            if !outputs.is_empty() {
                self.run_from(g + 1, &mut outputs, origins, true, parts);
            }
            return;
        }
        let group = &self.groups[g];
        for (message, &origin) in outputs.into_iter().zip(origins) {
            if group.custom
                && let Err(failure) =
                    check_json(&message, origin, Some(group.first_index), Stage::Transform)
            {
                self.runs[g].emitted -= 1;
                parts.failure(failure);
                continue;
            }
            parts.output(message, origin);
        }
    }

    fn call_failed(&self, g: usize, origin: usize, failure: CallFailure) -> ChainFailure {
        ChainFailure {
            origin,
            transformer_index: Some(self.groups[g].first_index),
            error_type: failure.kind.error_type(),
            stage: Stage::Transform,
            message: failure.message,
        }
    }
}

/// Whether a message is JSON; the failure it is when not.
fn check_json(
    message: &Message,
    origin: usize,
    transformer_index: Option<usize>,
    stage: Stage,
) -> Result<(), ChainFailure> {
    serde_json::from_slice::<IgnoredAny>(&message.payload)
        .map(drop)
        .map_err(|err| ChainFailure {
            origin,
            transformer_index,
            error_type: ErrorType::InvalidData,
            stage,
            message: format!("message is not valid JSON: {err}"),
        })
}
