//! The WebAssembly glue: adapts a [`Transform`] to the generated `transform` resource.

use std::cell::RefCell;

use crate::{ErrorKind, Message, Outcome, StepCount, Transform, process_batch};

/// Bindings generated from `wit/transform.wit`.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "counted-transform-component",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "dataflow_transform_sdk::guest::bindings",
    });
}

use bindings::dataflow::transform::types as wit;
use bindings::exports::dataflow::transform::step_counters;
use bindings::exports::dataflow::transform::transformer::{self as exported, GuestTransform};

thread_local! {
    /// Step counters gathered from every batch since the host last took them.
    static STEP_COUNTS: RefCell<Vec<StepCount>> = const { RefCell::new(Vec::new()) };
}

/// Adds a batch's step counters to those the host has not taken yet.
fn add_step_counts(counts: Vec<StepCount>) {
    if counts.is_empty() {
        return;
    }
    STEP_COUNTS.with_borrow_mut(|pending| {
        if pending.len() < counts.len() {
            pending.resize(counts.len(), StepCount::default());
        }
        for (total, count) in pending.iter_mut().zip(counts) {
            total.received += count.received;
            total.emitted += count.emitted;
        }
    });
}

/// The `step-counters.take` export: the pending counters, reset.
pub fn take_step_counts() -> Vec<step_counters::StepCount> {
    STEP_COUNTS
        .take()
        .into_iter()
        .map(|c| step_counters::StepCount {
            received: c.received,
            emitted: c.emitted,
        })
        .collect()
}

/// Wraps a user transform as the exported resource.
pub struct Adapter<T: Transform> {
    inner: RefCell<T>,
}

impl<T: Transform> Adapter<T> {
    /// The `packed-transformer.process-packed` export for this transform.
    pub fn process_packed(&self, batch: &[u8]) -> Vec<u8> {
        let mut inner = self.inner.borrow_mut();
        let packed = crate::packed::process_packed(&mut *inner, batch);
        add_step_counts(inner.take_step_counts());
        match packed {
            Ok(outcomes) => outcomes,
            // Only a host that breaks the layout gets here; trapping is how a
            // component reports a broken call, and the host turns it into errors.
            Err(err) => panic!("{err}"),
        }
    }
}

impl<T: Transform> GuestTransform for Adapter<T> {
    fn create(config: String) -> Result<exported::Transform, String> {
        let inner = T::from_config(&config).map_err(|e| e.to_string())?;
        Ok(exported::Transform::new(Self {
            inner: RefCell::new(inner),
        }))
    }

    fn process(&self, batch: Vec<wit::Message>) -> Vec<wit::Outcome> {
        let batch = batch
            .into_iter()
            .map(|m| Message {
                payload: m.payload,
                metadata: m.metadata,
            })
            .collect();
        let mut inner = self.inner.borrow_mut();
        let outcomes = process_batch(&mut *inner, batch);
        add_step_counts(inner.take_step_counts());
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Emitted(messages) => wit::Outcome::Emitted(
                    messages
                        .into_iter()
                        .map(|m| wit::Message {
                            payload: m.payload,
                            metadata: m.metadata,
                        })
                        .collect(),
                ),
                Outcome::Failed(err) => wit::Outcome::Failed(wit::TransformError {
                    kind: match err.kind {
                        ErrorKind::InvalidData => wit::ErrorKind::InvalidData,
                        ErrorKind::Failed => wit::ErrorKind::Failed,
                    },
                    message: err.message,
                    step: err.step,
                }),
            })
            .collect()
    }
}
