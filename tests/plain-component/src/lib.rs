//! A transform component written straight against `wit/transform.wit` with
//! wit-bindgen, without the SDK. It exports only the `transform-component` world (no
//! `packed-transformer`, no `step-counters`), as a component made in another language
//! might, so the tests can prove the host falls back to `transformer.process`.
//!
//! It passes every message through unchanged, adding the metadata `via = process`,
//! except a payload that is exactly `"fail"`, which it fails with `invalid-data`.
//! Its config must be empty or `{}`.

#![cfg(target_arch = "wasm32")]

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "transform-component",
    });
}

use bindings::dataflow::transform::types::{ErrorKind, Message, Outcome, TransformError};
use bindings::exports::dataflow::transform::transformer::{self, GuestTransform};

struct Component;

impl transformer::Guest for Component {
    type Transform = Echo;
}

/// The pass-through transform.
struct Echo;

impl GuestTransform for Echo {
    fn create(config: String) -> Result<transformer::Transform, String> {
        match config.trim() {
            "" | "{}" => Ok(transformer::Transform::new(Echo)),
            other => Err(format!("this component takes no config, got {other}")),
        }
    }

    fn process(&self, batch: Vec<Message>) -> Vec<Outcome> {
        batch
            .into_iter()
            .map(|mut message| {
                if message.payload == br#""fail""# {
                    return Outcome::Failed(TransformError {
                        kind: ErrorKind::InvalidData,
                        message: "told to fail".to_owned(),
                        step: 0,
                    });
                }
                message
                    .metadata
                    .push(("via".to_owned(), "process".to_owned()));
                Outcome::Emitted(vec![message])
            })
            .collect()
    }
}

bindings::export!(Component with_types_in bindings);
