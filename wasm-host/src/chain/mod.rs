//! The transform chain: the spec's transformations as Wasm calls, with lineage.
//!
//! Consecutive built-ins run as one call of the fused built-ins component (one parse
//! and one serialisation per message); each `type: wasm` transformation is its own
//! component instance. Every output keeps the index of the input it came from, so
//! failures can carry the original message and sources can be acknowledged.
//!
//! A batch runs depth first: each call's outputs go on through the rest of the
//! chain before the next call, and results are handed on in parts of about
//! [`PART_BYTES`]. So what a batch holds in the host at once is bounded by one
//! call's output per transformation (itself bounded by the component's memory
//! limit) plus one part, however many outputs a transform makes per message.

mod custom;
mod probe;
mod run;

pub use probe::ChainProbe;

pub use run::{CALL_PAYLOAD_BYTES, PART_BYTES, call_chunks};

use std::time::Duration;

use dataflow_api::{DataFlowSpec, ErrorRecord, ErrorType, SinkType, Stage, TransformationSpec};
use dataflow_core::condition::Condition;
use dataflow_core::{Message, StepCount};

use crate::engine::ComponentPre;
use crate::{Limits, ScriptRuntimes, TransformInstance, WasmError, WasmRuntime};
use custom::{PreparedScripts, UserStep, wasm_step};

/// Limits of the fused built-ins instance (our own code, so generous).
const BUILTIN_LIMITS: Limits = Limits {
    memory_bytes: 512 * 1024 * 1024,
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
    /// Classified error type.
    pub error_type: ErrorType,
    /// Pipeline stage: `transform`, or `read` for input rejected before any transform.
    pub stage: Stage,
    /// Readable reason.
    pub message: String,
}

impl ChainFailure {
    /// The error-sink record of this failure; `inputs` is the batch the chain ran on.
    pub fn record<'a>(&'a self, inputs: &'a [Message], original_sink: SinkType) -> ErrorRecord<'a> {
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

/// The results of running a batch, or a part of them.
#[derive(Debug, Default)]
pub struct ChainOutput {
    /// Output messages in order.
    pub outputs: Vec<Message>,
    /// For each output, the index of the input it came from.
    pub origins: Vec<usize>,
    /// Failed messages.
    pub failures: Vec<ChainFailure>,
    /// Inputs that produced no output and no failure (dropped by a filter); set on
    /// a batch's last part.
    pub filtered: usize,
    /// Whether this is the batch's last part.
    pub last: bool,
}

struct Group {
    instance: TransformInstance,
    first_index: usize,
    custom: bool,
    /// A `python` or `javascript` step: what its code raises is a `script_error`.
    script: bool,
    steps: usize,
    /// A user component's `when`: the host decides which messages it sees (the
    /// fused built-ins check their own).
    when: Option<Condition>,
}

/// What one component call of the chain (a custom transform, or a run of fused
/// built-ins) did with the last batch. The pipeline turns it into metrics.
#[derive(Debug, Clone, Default)]
pub struct GroupRun {
    /// Spec index of the group's first transformation.
    pub first_index: usize,
    /// How many transformations the group runs (1 for a custom component).
    pub steps: usize,
    /// Whether this is a user step (`type: wasm`, `python` or `javascript`).
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
    /// Who watches the messages between steps (the tap), if anyone may.
    probe: Option<std::sync::Arc<dyn ChainProbe>>,
    /// Keeps the engine's epoch ticker (and so the time limits) alive.
    _runtime: WasmRuntime,
}

impl TransformChain {
    /// Builds the chain: compiles components, creates every instance with its
    /// configuration (so config errors surface here, before any message is read).
    /// `builtins` is the fused built-ins component; `runtimes` finds the components
    /// that run `python` and `javascript` steps.
    pub fn build(
        runtime: &WasmRuntime,
        spec: &DataFlowSpec,
        builtins: &[u8],
        runtimes: &ScriptRuntimes,
    ) -> Result<Self, ChainError> {
        let mut scripts = PreparedScripts::new(runtimes);
        let mut groups = Vec::new();
        let mut pending: Vec<(usize, serde_json::Value)> = Vec::new();
        let mut fused = Fused {
            bytes: builtins,
            prepared: None,
        };
        for (index, t) in spec.transformations.iter().enumerate() {
            let path = format!("spec.transformations[{index}]");
            let config = t.spec.component_config();
            let user_step = match (&t.spec, t.spec.script()) {
                (TransformationSpec::Wasm(wasm), _) => UserStep::Wasm(wasm),
                (_, Some((language, script))) => UserStep::Script(language, script),
                (builtin, None) => {
                    let mut step =
                        serde_json::json!({"type": builtin.kind().as_str(), "config": config});
                    if let Some(when) = &t.when {
                        step["when"] = serde_json::Value::String(when.clone());
                    }
                    pending.push((index, step));
                    continue;
                }
            };
            let when = t
                .when
                .as_deref()
                .map(Condition::parse)
                .transpose()
                .map_err(|e| ChainError {
                    path: format!("{path}.when"),
                    error: WasmError::Config(e.to_string()),
                })?;
            flush_builtins(runtime, &mut fused, &mut pending, &mut groups)?;
            let script = matches!(user_step, UserStep::Script(..));
            let custom = match user_step {
                UserStep::Script(language, script) => {
                    scripts.script_step(runtime, &path, index, language, script)?
                }
                UserStep::Wasm(wasm) => wasm_step(runtime, &path, wasm, &config)?,
            };
            let instance =
                TransformInstance::create(&custom.name, custom.pre, custom.config, custom.limits)
                    .map_err(|source| ChainError {
                    path: custom.path,
                    error: source,
                })?;
            groups.push(Group {
                instance,
                first_index: index,
                custom: true,
                script,
                steps: 1,
                when,
            });
        }
        flush_builtins(runtime, &mut fused, &mut pending, &mut groups)?;
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
            probe: None,
            _runtime: runtime.clone(),
        })
    }

    /// Lets `probe` watch the messages between steps from now on.
    pub fn set_probe(&mut self, probe: std::sync::Arc<dyn ChainProbe>) {
        self.probe = Some(probe);
    }

    /// The chain's calls in order: (first step, number of steps, user step),
    /// a fused run of built-ins being one call of several steps.
    pub fn groups(&self) -> Vec<(usize, usize, bool)> {
        self.groups
            .iter()
            .map(|g| (g.first_index, g.steps, g.custom))
            .collect()
    }

    /// What each component call did with the last batch, in chain order.
    pub fn last_runs(&self) -> &[GroupRun] {
        &self.runs
    }

    /// How many times instances were rebuilt after failures, over the chain's life.
    pub fn rebuilds(&self) -> u64 {
        self.groups.iter().map(|g| g.instance.rebuilds()).sum()
    }
}

/// The fused built-ins component, prepared when first needed.
struct Fused<'a> {
    bytes: &'a [u8],
    prepared: Option<ComponentPre>,
}

/// Turns the pending run of built-ins into one group of the fused component.
fn flush_builtins(
    runtime: &WasmRuntime,
    fused: &mut Fused<'_>,
    pending: &mut Vec<(usize, serde_json::Value)>,
    groups: &mut Vec<Group>,
) -> Result<(), ChainError> {
    let Some(&(first_index, _)) = pending.first() else {
        return Ok(());
    };
    let path = format!("spec.transformations[{first_index}]");
    let pre = match &fused.prepared {
        Some(pre) => pre.clone(),
        None => {
            let pre = runtime
                .prepare_builtins(fused.bytes)
                .map_err(|source| ChainError {
                    path: path.clone(),
                    error: source,
                })?;
            fused.prepared = Some(pre.clone());
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
        script: false,
        steps: step_count,
        when: None,
    });
    Ok(())
}
