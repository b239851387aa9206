//! The live figures as the pipeline's observer: the same events the metrics
//! count, kept as plain counters the API reads.

use std::sync::Arc;
use std::time::Duration;

use dataflow_inspect::{Figures, SinkFigure};
use dataflow_wasm_host::{ChainFailure, GroupRun};

use crate::connectors::Rejected;
use crate::pipeline::{Observer, SinkSlot};

/// Updates a flow's [`Figures`].
pub struct FiguresObserver(pub Arc<Figures>);

fn figure(slot: SinkSlot) -> SinkFigure {
    match slot {
        SinkSlot::Main => SinkFigure::Main,
        SinkSlot::Errors => SinkFigure::Errors,
        SinkSlot::Route(n) => SinkFigure::Route(n),
    }
}

impl Observer for FiguresObserver {
    fn started(&self, queue_capacity: usize) {
        self.0.set_queue_capacity(queue_capacity as u64);
        self.0.set_phase("running");
    }

    fn stopped(&self) {
        self.0.set_phase("stopped");
    }

    fn batch_read(&self, messages: usize, _bytes: usize, rejected: &[Rejected], _took: Duration) {
        self.0.read(messages as u64, rejected.len() as u64);
    }

    fn wants_positions(&self) -> bool {
        true
    }

    fn committed(&self, positions: &[String]) {
        positions.iter().for_each(|p| self.0.committed(p));
    }

    fn dequeued(&self, messages: usize, _waited: Duration) {
        self.0.dequeued(messages as u64);
    }

    fn transformed_part(&self, failures: &[ChainFailure], handed_on: usize, _bytes: usize) {
        for failure in failures {
            if let Some(index) = failure.transformer_index {
                self.0.step(index, 0, 0, 1);
            }
        }
        self.0.handed_on(handed_on as u64);
    }

    fn transformed(&self, runs: &[GroupRun], _took: Duration) {
        for run in runs {
            if run.steps == 1 {
                self.0.step(run.first_index, run.received, run.emitted, 0);
                continue;
            }
            // As the metrics count a fused run: its first step sees every
            // message the run got; the steps' own counters say the rest.
            for offset in 0..run.steps {
                let count = run.step_counts.get(offset).copied().unwrap_or_default();
                let received = if offset == 0 {
                    run.received
                } else {
                    count.received
                };
                self.0
                    .step(run.first_index + offset, received, count.emitted, 0);
            }
        }
    }

    fn accepted(&self, messages: usize, _waited: Duration) {
        self.0.accepted(messages as u64);
    }

    fn sink_refused(&self, slot: SinkSlot, rejected: &[Rejected]) {
        self.0.refused(figure(slot), rejected.len() as u64);
    }

    fn durable(&self, slot: SinkSlot, count: u64) {
        self.0.written(figure(slot), count);
    }
}
