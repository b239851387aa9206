//! A transform component whose `transformer.[method]transform.process` export is
//! lifted with the component model's async ABI (wit-bindgen's `async` option), as a
//! component built by an async-first toolchain (a QuickJS or wasi-p3 build) is, so
//! the tests can prove the host runs such a component and still bounds it.
//!
//! It passes every message through, yielding to the host before each one and
//! adding the metadata `via = async`, except these payloads:
//! - `"fail"`: failed with `invalid-data`;
//! - `"hang"`: waits on a future that never completes;
//! - `"spin"`: yields to the host forever.
//!
//! Its config must be empty or `{}`.

#![cfg(target_arch = "wasm32")]

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "transform-component",
    });
}

use bindings::dataflow::transform::types::{ErrorKind, Message, Outcome, TransformError};
use bindings::exports::dataflow::transform::transformer::{self, GuestTransform};

struct Component;

impl transformer::Guest for Component {
    type Transform = AsyncEcho;
}

/// The pass-through transform.
struct AsyncEcho;

impl GuestTransform for AsyncEcho {
    fn create(config: String) -> Result<transformer::Transform, String> {
        match config.trim() {
            "" | "{}" => Ok(transformer::Transform::new(AsyncEcho)),
            other => Err(format!("this component takes no config, got {other}")),
        }
    }

    async fn process(&self, batch: Vec<Message>) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for mut message in batch {
            wit_bindgen::yield_async().await;
            match message.payload.as_slice() {
                br#""fail""# => {
                    outcomes.push(Outcome::Failed(TransformError {
                        kind: ErrorKind::InvalidData,
                        message: "told to fail".to_owned(),
                        step: 0,
                    }));
                    continue;
                }
                br#""hang""# => std::future::pending::<()>().await,
                br#""spin""# => loop {
                    wit_bindgen::yield_async().await;
                },
                _ => {}
            }
            message
                .metadata
                .push(("via".to_owned(), "async".to_owned()));
            outcomes.push(Outcome::Emitted(vec![message]));
        }
        outcomes
    }
}

bindings::export!(Component with_types_in bindings);
