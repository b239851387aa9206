//! Chains of the flow's own transformations, or of edited ones, built apart
//! from the live chain: the playground's dry runs and the tap's re-runs of a
//! fused run's first steps go through these, never through the live instance,
//! with the same limits.

use std::sync::Mutex;

use dataflow_api::{DataFlowSpec, Transformation};
use dataflow_core::Message;
use dataflow_inspect::api::{DryRun, DryRunOutcome, DryRunOutput};
use dataflow_wasm_host::{ScriptRuntimes, TransformChain, WasmRuntime};

use crate::builtins::BUILTINS_COMPONENT;
use crate::pipeline::route_of;

/// Builds and keeps sandbox chains of one flow.
pub struct Sandbox {
    runtime: WasmRuntime,
    spec: DataFlowSpec,
    scripts: ScriptRuntimes,
    /// The last chain a dry run built, by the transformations it runs.
    dry_run: Mutex<Option<(String, TransformChain)>>,
    /// Chains of the steps `first..=last`, for the tap's re-runs.
    prefixes: Mutex<Vec<((usize, usize), TransformChain)>>,
}

impl Sandbox {
    /// A sandbox for `spec` (as loaded: components found, images pulled).
    pub fn new(runtime: WasmRuntime, spec: DataFlowSpec) -> Self {
        Self {
            runtime,
            spec,
            scripts: ScriptRuntimes::installed(),
            dry_run: Mutex::new(None),
            prefixes: Mutex::new(Vec::new()),
        }
    }

    fn build(&self, transformations: Vec<Transformation>) -> Result<TransformChain, String> {
        let mut spec = self.spec.clone();
        spec.transformations = transformations;
        dataflow_api::validate(&spec).map_err(|e| e.to_string())?;
        TransformChain::build(&self.runtime, &spec, BUILTINS_COMPONENT, &self.scripts)
            .map_err(|e| e.to_string())
    }

    /// Runs `messages` through the steps `first..=last` of the flow's own
    /// transformations (a sandbox chain kept for the purpose); their outputs.
    pub fn run_steps(&self, first: usize, last: usize, mut messages: Vec<Message>) -> Vec<Message> {
        let mut prefixes = match self.prefixes.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        let position = match prefixes
            .iter()
            .position(|(range, _)| *range == (first, last))
        {
            Some(position) => position,
            None => {
                let Some(steps) = self.spec.transformations.get(first..=last) else {
                    return Vec::new();
                };
                match self.build(steps.to_vec()) {
                    Ok(chain) => {
                        prefixes.push(((first, last), chain));
                        prefixes.len() - 1
                    }
                    Err(error) => {
                        tracing::warn!(first, last, %error, "the tap cannot re-run these steps");
                        return Vec::new();
                    }
                }
            }
        };
        prefixes[position].1.run(&mut messages).outputs
    }

    /// Runs `inputs` through `transformations` (the flow's own when `None`).
    fn dry_run_now(
        &self,
        mut inputs: Vec<Message>,
        transformations: Option<serde_json::Value>,
    ) -> Result<Vec<DryRunOutcome>, String> {
        let key = transformations
            .as_ref()
            .map_or_else(String::new, serde_json::Value::to_string);
        let mut cached = match self.dry_run.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if cached.as_ref().is_none_or(|(k, _)| *k != key) {
            let steps = match transformations {
                None => self.spec.transformations.clone(),
                Some(value) => {
                    let mut track = serde_path_to_error::Track::new();
                    let deserializer = serde_path_to_error::Deserializer::new(value, &mut track);
                    serde::Deserialize::deserialize(deserializer).map_err(
                        |e: serde_json::Error| format!("transformations.{}: {e}", track.path()),
                    )?
                }
            };
            *cached = Some((key, self.build(steps)?));
        }
        let Some((_, chain)) = cached.as_mut() else {
            return Err("no sandbox chain".into());
        };
        let output = chain.run(&mut inputs);
        let mut outcomes = vec![DryRunOutcome::default(); inputs.len()];
        for (message, origin) in output.outputs.into_iter().zip(output.origins) {
            if let Some(outcome) = outcomes.get_mut(origin) {
                outcome.outputs.push(DryRunOutput {
                    route: route_of(&message),
                    message,
                });
            }
        }
        for failure in output.failures {
            if let Some(outcome) = outcomes.get_mut(failure.origin) {
                outcome.error = Some((
                    failure.error_type.as_str().to_owned(),
                    failure.transformer_index,
                    dataflow_api::redact::redact(&failure.message).into_owned(),
                ));
            }
        }
        Ok(outcomes)
    }
}

#[async_trait::async_trait]
impl DryRun for Sandbox {
    async fn run(
        &self,
        inputs: Vec<Message>,
        transformations: Option<serde_json::Value>,
    ) -> Result<Vec<DryRunOutcome>, String> {
        // Wasm calls are CPU work: off the async threads' duty while they run.
        tokio::task::block_in_place(|| self.dry_run_now(inputs, transformations))
    }
}
