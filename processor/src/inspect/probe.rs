//! The tap's step points: the chain shows the probe each call's outputs, and
//! what enters a fused run of built-ins when a step inside it is watched; the
//! probe re-runs the run's steps up to the watched one on the messages a
//! client's rate lets through, in the sandbox (see `dataflow_wasm_host::chain::probe`).

use std::sync::Arc;

use dataflow_core::Message;
use dataflow_inspect::{Point, Tap};
use dataflow_wasm_host::ChainProbe;

use super::sandbox::Sandbox;

/// Feeds the tap's step points.
pub struct StepProbe {
    tap: Arc<Tap>,
    sandbox: Arc<Sandbox>,
}

impl StepProbe {
    /// A probe offering to `tap`, re-running in `sandbox`.
    pub fn new(tap: Arc<Tap>, sandbox: Arc<Sandbox>) -> Self {
        Self { tap, sandbox }
    }
}

impl ChainProbe for StepProbe {
    fn wants_step(&self, step: usize) -> bool {
        self.tap.wants(Point::Step(step))
    }

    fn step_output(&self, step: usize, messages: &[Message]) {
        self.tap.offer(Point::Step(step), Some(step), messages);
    }

    fn group_input(&self, first: usize, steps: usize, messages: &[Message]) {
        for step in first..first + steps - 1 {
            if !self.tap.wants(Point::Step(step)) {
                continue;
            }
            self.tap
                .offer_derived(Point::Step(step), Some(step), messages.len(), &|indices| {
                    let picked = indices
                        .iter()
                        .filter_map(|&i| messages.get(i).cloned())
                        .collect();
                    self.sandbox.run_steps(first, step, picked)
                });
        }
    }
}
