//! The WebAssembly glue: adapts a [`Transform`] to the generated `transform` resource.

use std::cell::RefCell;

use crate::{ErrorKind, Message, Outcome, Transform, process_batch};

/// Bindings generated from `wit/transform.wit`.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "transform-component",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "dataflow_transform_sdk::guest::bindings",
    });
}

use bindings::dataflow::transform::types as wit;
use bindings::exports::dataflow::transform::transformer::{self as exported, GuestTransform};

/// Wraps a user transform as the exported resource.
pub struct Adapter<T: Transform> {
    inner: RefCell<T>,
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
        process_batch(&mut *inner, batch)
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
