//! The transform chain: the spec's transformations as Wasm calls, with lineage.
//!
//! Consecutive built-ins run as one call of the fused built-ins component (one parse
//! and one serialisation per message); each `type: wasm` transformation is its own
//! component instance. Every output keeps the index of the input it came from, so
//! failures can carry the original message and sources can be acknowledged.

use std::borrow::Cow;
use std::path::Path;
use std::time::{Duration, Instant};

use dataflow_api::{DataFlowSpec, TransformType};
use serde::de::IgnoredAny;

use crate::error_record::ErrorRecord;

use crate::wasm::{
    ErrorKind, Limits, Message, Outcome, StepCount, TransformInstance, WasmError, WasmRuntime,
};

/// Limits of the fused built-ins instance (our own code, so generous).
const BUILTIN_LIMITS: Limits = Limits {
    memory_bytes: 1024 * 1024 * 1024,
    timeout_ms: 30_000,
};

/// A chain that could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {error}")]
pub struct ChainError {
    /// The spec path of the failing transformation.
    pub path: String,
    /// Why (shown in the message, so deliberately not an error `source`: it would
    /// be printed twice in a chain).
    pub error: WasmError,
}

/// One message that failed somewhere in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFailure {
    /// Index of the input message it came from.
    pub origin: usize,
    /// The failing transformation's index in the spec, if a transformation failed.
    pub transformer_index: Option<usize>,
    /// Classified error type (`invalid_data`, `transform_trap`, ...).
    pub error_type: &'static str,
    /// Pipeline stage: `transform`, or `read` for input rejected before any transform.
    pub stage: &'static str,
    /// Readable reason.
    pub message: String,
}

impl ChainFailure {
    /// The error-sink record of this failure; `inputs` is the batch the chain ran on.
    pub fn record<'a>(&'a self, inputs: &'a [Message], original_sink: &'a str) -> ErrorRecord<'a> {
        let input = &inputs[self.origin];
        ErrorRecord {
            message: &self.message,
            error_type: self.error_type,
            stage: self.stage,
            original_sink,
            transformer_index: self.transformer_index,
            metadata: &input.metadata,
            original: &input.payload,
        }
    }
}

/// The result of running a batch through the chain.
#[derive(Debug, Default)]
pub struct ChainOutput {
    /// Output messages in order.
    pub outputs: Vec<Message>,
    /// For each output, the index of the input it came from.
    pub origins: Vec<usize>,
    /// Failed messages.
    pub failures: Vec<ChainFailure>,
    /// Inputs that produced no output and no failure (dropped by a filter).
    pub filtered: usize,
}

struct Group {
    instance: TransformInstance,
    first_index: usize,
    custom: bool,
    steps: usize,
}

/// What one component call of the chain (a custom transform, or a run of fused
/// built-ins) did with the last batch. The pipeline turns it into metrics.
#[derive(Debug, Clone, Default)]
pub struct GroupRun {
    /// Spec index of the group's first transformation.
    pub first_index: usize,
    /// How many transformations the group runs (1 for a custom component).
    pub steps: usize,
    /// Whether this is a user component (`type: wasm`).
    pub custom: bool,
    /// Messages handed to the group.
    pub received: u64,
    /// Messages the group produced.
    pub emitted: u64,
    /// Wall time of the group's call (and of its replays after a failure).
    pub elapsed: Duration,
    /// Per-step counters reported by the fused built-ins; empty for a custom
    /// component, or when the instance failed during the batch.
    pub step_counts: Vec<StepCount>,
    /// Instance rebuilds during the batch.
    pub rebuilds: u64,
    /// Calls stopped by the time limit during the batch.
    pub timeouts: u64,
    /// Calls stopped by the memory limit during the batch.
    pub memory_limit_hits: u64,
}

/// The spec's transformations, ready to run.
pub struct TransformChain {
    groups: Vec<Group>,
    runs: Vec<GroupRun>,
    /// Keeps the engine's epoch ticker (and so the time limits) alive.
    _runtime: WasmRuntime,
}

impl TransformChain {
    /// Builds the chain: compiles components, creates every instance with its
    /// configuration (so config errors surface here, before any message is read).
    pub fn build(runtime: &WasmRuntime, spec: &DataFlowSpec) -> Result<Self, ChainError> {
        let mut groups = Vec::new();
        let mut pending: Vec<(usize, serde_json::Value)> = Vec::new();
        let mut builtins = None;
        for (index, t) in spec.transformations.iter().enumerate() {
            let path = format!("spec.transformations[{index}]");
            let config = t.component_config().ok_or_else(|| ChainError {
                path: format!("{path}.{}", t.kind.as_str()),
                error: WasmError::Config("required".into()),
            })?;
            if t.kind != TransformType::Wasm {
                pending.push((
                    index,
                    serde_json::json!({"type": t.kind.as_str(), "config": config}),
                ));
                continue;
            }
            flush_builtins(runtime, &mut builtins, &mut pending, &mut groups)?;
            let wasm = t.wasm.as_ref().ok_or_else(|| ChainError {
                path: format!("{path}.wasm"),
                error: WasmError::Config("required".into()),
            })?;
            let file = wasm.path.as_deref().ok_or_else(|| ChainError {
                path: format!("{path}.wasm.path"),
                error: WasmError::Config(
                    "required to run locally (configMapRef is resolved by the operator)".into(),
                ),
            })?;
            let fail = |source| ChainError {
                path: format!("{path}.wasm"),
                error: source,
            };
            let pre = runtime
                .prepare_file(Path::new(file), wasm.sha256.as_deref())
                .map_err(fail)?;
            let limits = wasm.limits.clone().unwrap_or_default();
            let limits = Limits {
                memory_bytes: usize::try_from(limits.memory_mib()).unwrap_or(usize::MAX)
                    * 1024
                    * 1024,
                timeout_ms: u64::from(limits.timeout_ms()),
            };
            let config_text = match &config {
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            let instance =
                TransformInstance::create(file, pre, config_text, limits).map_err(fail)?;
            groups.push(Group {
                instance,
                first_index: index,
                custom: true,
                steps: 1,
            });
        }
        flush_builtins(runtime, &mut builtins, &mut pending, &mut groups)?;
        let runs = groups
            .iter()
            .map(|g| GroupRun {
                first_index: g.first_index,
                steps: g.steps,
                custom: g.custom,
                ..GroupRun::default()
            })
            .collect();
        Ok(Self {
            groups,
            runs,
            _runtime: runtime.clone(),
        })
    }

    /// What each component call did with the last batch, in chain order.
    pub fn last_runs(&self) -> &[GroupRun] {
        &self.runs
    }

    /// How many times instances were rebuilt after failures, over the chain's life.
    pub fn rebuilds(&self) -> u64 {
        self.groups.iter().map(|g| g.instance.rebuilds()).sum()
    }

    /// Runs a batch through every transformation.
    pub fn run(&mut self, inputs: &[Message]) -> ChainOutput {
        let mut failures = Vec::new();
        let mut current: Cow<'_, [Message]> = Cow::Borrowed(inputs);
        let mut origins: Vec<usize> = (0..inputs.len()).collect();
        if self.groups.is_empty() {
            // Nothing will parse the payloads: check them here.
            let (valid, valid_origins) =
                keep_json(current.into_owned(), origins, &mut failures, None, "read");
            current = Cow::Owned(valid);
            origins = valid_origins;
        }
        let last = self.groups.len().saturating_sub(1);
        for (g, (group, run)) in self.groups.iter_mut().zip(&mut self.runs).enumerate() {
            let started = Instant::now();
            let before = (
                group.instance.rebuilds(),
                group.instance.timeouts(),
                group.instance.memory_limit_hits(),
            );
            let results = group.instance.call_isolating(&current);
            run.received = current.len() as u64;
            run.step_counts = if group.custom {
                Vec::new()
            } else {
                group.instance.take_step_counts()
            };
            run.elapsed = started.elapsed();
            run.rebuilds = group.instance.rebuilds() - before.0;
            run.timeouts = group.instance.timeouts() - before.1;
            run.memory_limit_hits = group.instance.memory_limit_hits() - before.2;
            let mut next = Vec::with_capacity(current.len());
            let mut next_origins = Vec::with_capacity(current.len());
            for (result, &origin) in results.into_iter().zip(&origins) {
                match result {
                    Ok(Outcome::Emitted(messages)) => {
                        next_origins.extend(std::iter::repeat_n(origin, messages.len()));
                        next.extend(messages);
                    }
                    Ok(Outcome::Failed(err)) => failures.push(ChainFailure {
                        origin,
                        transformer_index: Some(if group.custom {
                            group.first_index
                        } else {
                            group.first_index + usize::try_from(err.step).unwrap_or(0)
                        }),
                        error_type: match err.kind {
                            ErrorKind::InvalidData => "invalid_data",
                            ErrorKind::Failed => "unknown",
                        },
                        stage: "transform",
                        message: err.message,
                    }),
                    Err(failure) => failures.push(ChainFailure {
                        origin,
                        transformer_index: Some(group.first_index),
                        error_type: failure.kind.error_type(),
                        stage: "transform",
                        message: failure.message,
                    }),
                }
            }
            if g == last && group.custom {
                // A user component may emit anything; sinks expect JSON.
                let (valid, valid_origins) = keep_json(
                    next,
                    next_origins,
                    &mut failures,
                    Some(group.first_index),
                    "transform",
                );
                next = valid;
                next_origins = valid_origins;
            }
            run.emitted = next.len() as u64;
            current = Cow::Owned(next);
            origins = next_origins;
        }
        let mut touched = vec![false; inputs.len()];
        for &origin in &origins {
            touched[origin] = true;
        }
        for failure in &failures {
            touched[failure.origin] = true;
        }
        let filtered = touched.iter().filter(|t| !**t).count();
        ChainOutput {
            outputs: current.into_owned(),
            origins,
            failures,
            filtered,
        }
    }
}

fn flush_builtins(
    runtime: &WasmRuntime,
    prepared: &mut Option<crate::wasm::bindings::TransformComponentPre<crate::wasm::HostState>>,
    pending: &mut Vec<(usize, serde_json::Value)>,
    groups: &mut Vec<Group>,
) -> Result<(), ChainError> {
    let Some(&(first_index, _)) = pending.first() else {
        return Ok(());
    };
    let path = format!("spec.transformations[{first_index}]");
    let pre = match prepared {
        Some(pre) => pre.clone(),
        None => {
            let pre = runtime.prepare_builtins().map_err(|source| ChainError {
                path: path.clone(),
                error: source,
            })?;
            *prepared = Some(pre.clone());
            pre
        }
    };
    let steps: Vec<serde_json::Value> = pending.drain(..).map(|(_, step)| step).collect();
    let step_count = steps.len();
    let config = serde_json::json!({ "steps": steps }).to_string();
    let instance =
        TransformInstance::create("builtins", pre, config, BUILTIN_LIMITS).map_err(|source| {
            ChainError {
                path,
                error: source,
            }
        })?;
    groups.push(Group {
        instance,
        first_index,
        custom: false,
        steps: step_count,
    });
    Ok(())
}

/// Splits messages into valid JSON (kept) and the rest (recorded as failures).
fn keep_json(
    messages: Vec<Message>,
    origins: Vec<usize>,
    failures: &mut Vec<ChainFailure>,
    transformer_index: Option<usize>,
    stage: &'static str,
) -> (Vec<Message>, Vec<usize>) {
    let mut kept = Vec::with_capacity(messages.len());
    let mut kept_origins = Vec::with_capacity(origins.len());
    for (message, origin) in messages.into_iter().zip(origins) {
        match serde_json::from_slice::<IgnoredAny>(&message.payload) {
            Ok(_) => {
                kept.push(message);
                kept_origins.push(origin);
            }
            Err(err) => failures.push(ChainFailure {
                origin,
                transformer_index,
                error_type: "invalid_data",
                stage,
                message: format!("message is not valid JSON: {err}"),
            }),
        }
    }
    (kept, kept_origins)
}
