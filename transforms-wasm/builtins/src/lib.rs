//! The fused built-ins component.
//!
//! Consecutive built-in transformations of a DataFlow run as one component call:
//! each message is parsed once, passed through every step, and serialised once.
//! Each step is still its own crate, and a failure reports the index of its step.
//!
//! Config: `{"steps": [{"type": "mask", "config": {...}}, ...]}` where `type` is one of
//! [`BUILTIN_TYPES`], `config` is that transform's own configuration, and an optional
//! `when` (a condition) limits the step to the records it holds for.

use dataflow_transform_sdk::condition::Condition;
use dataflow_transform_sdk::{
    ConfigError, Record, StepCount, Transform, TransformError, parse_config,
};
use serde::Deserialize;

/// Small blocks are recycled through size-class free lists (see the SDK's `alloc`).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: dataflow_transform_sdk::alloc::SizeClassCache =
    dataflow_transform_sdk::alloc::SizeClassCache::new();

/// Defines [`Step`] and [`BUILTIN_TYPES`] from the list of built-ins.
macro_rules! steps {
    ($({ $variant:ident, $name:literal, $field:ident, $config:ident, $block:ident, $($transform:ident)::+ })*) => {
        /// The names of the built-in transforms, as written in a DataFlow spec.
        pub const BUILTIN_TYPES: &[&str] = &[$($name),*];

        /// One configured built-in.
        pub enum Step {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant($($transform)::+),
            )*
        }

        impl Step {
            /// Builds the built-in `kind` from its JSON config text.
            pub fn new(kind: &str, config: &str) -> Result<Self, ConfigError> {
                Ok(match kind {
                    $($name => Step::$variant(<$($transform)::+>::from_config(config)?),)*
                    other => {
                        return Err(ConfigError::new(format!(
                            "unknown built-in transform {other:?} (expected one of {})",
                            BUILTIN_TYPES.join(", ")
                        )));
                    }
                })
            }

            fn apply(&mut self, record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
                match self {
                    $(Step::$variant(t) => t.apply(record, out),)*
                }
            }

            fn keeps_payload(&self) -> bool {
                match self {
                    $(Step::$variant(t) => t.keeps_payload(),)*
                }
            }
        }
    };
}

dataflow_transform_config::for_each_builtin!(steps);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainConfig {
    steps: Vec<StepConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepConfig {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    config: serde_json::Value,
    /// The step runs only on the records this condition holds for.
    #[serde(default)]
    when: Option<String>,
}

/// Several built-ins applied in order to each record.
pub struct Chain {
    steps: Vec<Step>,
    /// Each step's `when`: the records it does not hold for pass the step unchanged.
    guards: Vec<Option<Condition>>,
    counts: Vec<StepCount>,
    current: Vec<Record>,
    next: Vec<Record>,
}

impl Chain {
    /// A chain of already built steps.
    pub fn new(steps: Vec<Step>) -> Self {
        Self::guarded(steps.into_iter().map(|step| (step, None)).collect())
    }

    /// A chain of already built steps, each with its optional `when`.
    pub fn guarded(steps: Vec<(Step, Option<Condition>)>) -> Self {
        let (steps, guards): (Vec<_>, Vec<_>) = steps.into_iter().unzip();
        Self {
            counts: vec![StepCount::default(); steps.len()],
            guards,
            steps,
            current: Vec::new(),
            next: Vec::new(),
        }
    }
}

impl Transform for Chain {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: ChainConfig = parse_config(config)?;
        if config.steps.is_empty() {
            return Err(ConfigError::field("steps", "must not be empty"));
        }
        let steps = config
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let fail = |e: &dyn std::fmt::Display| {
                    ConfigError::new(format!("steps[{i}] ({}): {e}", step.kind))
                };
                let built =
                    Step::new(&step.kind, &step.config.to_string()).map_err(|e| fail(&e))?;
                let guard = match &step.when {
                    Some(when) => {
                        Some(Condition::parse(when).map_err(|e| fail(&format!("when: {e}")))?)
                    }
                    None => None,
                };
                Ok((built, guard))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Self::guarded(steps))
    }

    fn apply(&mut self, record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        self.current.clear();
        self.current.push(record);
        let steps = self
            .steps
            .iter_mut()
            .zip(&self.guards)
            .zip(&mut self.counts);
        for (index, ((step, guard), count)) in steps.enumerate() {
            self.next.clear();
            let mut failure = None;
            count.received += self.current.len() as u64;
            for record in self.current.drain(..) {
                if let Some(guard) = guard
                    && !guard.matches(&record.value, &record.metadata)
                {
                    self.next.push(record);
                    continue;
                }
                if let Err(err) = step.apply(record, &mut self.next) {
                    failure = Some(err.at_step(index));
                    break;
                }
            }
            if let Some(err) = failure {
                self.current.clear();
                self.next.clear();
                return Err(err);
            }
            count.emitted += self.next.len() as u64;
            std::mem::swap(&mut self.current, &mut self.next);
            if self.current.is_empty() {
                return Ok(());
            }
        }
        out.append(&mut self.current);
        Ok(())
    }

    fn keeps_payload(&self) -> bool {
        self.steps.iter().all(Step::keeps_payload)
    }

    fn take_step_counts(&mut self) -> Vec<StepCount> {
        let taken = self.counts.clone();
        self.counts.fill(StepCount::default());
        taken
    }
}

dataflow_transform_sdk::export!(Chain);

#[cfg(test)]
mod tests {
    use dataflow_transform_sdk::{Message, Outcome, process_batch};

    use super::*;

    fn message(text: &str) -> Message {
        Message {
            payload: text.as_bytes().to_vec(),
            metadata: Vec::new(),
        }
    }

    #[test]
    fn counts_every_step_once_per_batch() {
        let mut chain = Chain::from_config(
            r#"{"steps": [
                {"type": "flatten", "config": {"field": "items"}},
                {"type": "filter", "config": {"condition": "$.keep"}},
                {"type": "mask", "config": {"fields": ["secret"]}}
            ]}"#,
        )
        .unwrap();
        let outcomes = process_batch(
            &mut chain,
            vec![
                message(r#"{"items": [{"keep": true}, {"keep": false}, {"keep": true}]}"#),
                message(r#"{"items": [{"keep": false}]}"#),
                message("not json"),
            ],
        );
        assert!(matches!(&outcomes[0], Outcome::Emitted(out) if out.len() == 2));
        assert!(matches!(&outcomes[1], Outcome::Emitted(out) if out.is_empty()));
        assert!(matches!(&outcomes[2], Outcome::Failed(_)));
        let counts = chain.take_step_counts();
        let pairs: Vec<(u64, u64)> = counts.iter().map(|c| (c.received, c.emitted)).collect();
        assert_eq!(pairs, vec![(2, 4), (4, 2), (2, 2)]);
        assert!(
            chain
                .take_step_counts()
                .iter()
                .all(|c| *c == StepCount::default())
        );
    }
}
