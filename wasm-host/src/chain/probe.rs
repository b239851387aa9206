//! Watching the messages between the chain's steps (the tap).
//!
//! After each call the chain shows the probe that call's outputs, which are
//! the outputs of the call's last step. A fused run of built-ins is one call,
//! so the messages between its steps never exist; for a step inside such a run
//! the probe is shown what enters the run instead and re-runs the steps up to
//! the wanted one on the few messages it samples, in an instance of its own
//! (built-ins are pure functions of the message, so that gives what the live
//! call computed; only `timestamp` reads the clock again). The live call stays
//! one call: watching never slows the flow by splitting it.

use dataflow_core::Message;

/// Watches the messages between steps; each question is asked once per call.
pub trait ChainProbe: Send + Sync {
    /// Whether the outputs of step `step` (as `spec.transformations` numbers
    /// them) are wanted now.
    fn wants_step(&self, step: usize) -> bool;

    /// The outputs of step `step`, the last of its call, as they go on.
    fn step_output(&self, step: usize, messages: &[Message]);

    /// The messages entering the fused run of built-ins `first..first + steps`,
    /// when the outputs of one of its steps but the last are wanted.
    fn group_input(&self, first: usize, steps: usize, messages: &[Message]);
}

/// Shows `probe` what enters the run of steps `first..first + steps` when a
/// step inside it (not its last, whose outputs are shown after the call) is wanted.
pub(super) fn offer_group_input(
    probe: &dyn ChainProbe,
    first: usize,
    steps: usize,
    messages: &[Message],
) {
    if steps > 1 && !messages.is_empty() && (first..first + steps - 1).any(|s| probe.wants_step(s))
    {
        probe.group_input(first, steps, messages);
    }
}
