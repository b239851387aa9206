use dataflow_transform_sdk as sdk;
use sdk::packed;
use wasmtime::component::{
    ComponentType, Func, Instance, Lift, ResourceAny, ResourceTable, TypedFunc,
};
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{TransformComponent, TransformComponentPre};
use super::engine::EPOCH_TICK;
use super::{ErrorKind, Message, Outcome, TransformError, WasmError};

/// The optional export with per-step counters (see `wit/transform.wit`).
const STEP_COUNTERS: &str = "dataflow:transform/step-counters@0.1.0";

/// Payload bytes handed to a component in one call, about. Larger batches are cut
/// into several calls, so what a call needs in the component's memory (the batch
/// going in and the outcomes coming out) stays far below any memory limit, and the
/// buffers of a call and their copies on the host side stay in the core's cache.
const CALL_PAYLOAD_BYTES: usize = 128 * 1024;

/// The optional export that takes and returns packed batches.
const PACKED_TRANSFORMER: &str = "dataflow:transform/packed-transformer@0.1.0";

/// What one step of a multi-step component did since the counters were last taken.
#[derive(ComponentType, Lift, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[component(record)]
pub struct StepCount {
    /// Messages the step was applied to.
    pub received: u64,
    /// Messages the step produced.
    pub emitted: u64,
}

type TakeStepCounts = TypedFunc<(), (Vec<StepCount>,)>;

/// How much of a component's stderr (panic messages) is kept for error reports.
const STDERR_CAPTURE: usize = 8 * 1024;

/// Resource limits of one transform instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory limit, bytes.
    pub memory_bytes: usize,
    /// Time limit per call, milliseconds.
    pub timeout_ms: u64,
}

/// Why a whole call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The component trapped (panic, unreachable, bad protocol).
    Trap,
    /// The call ran past its time limit.
    Timeout,
    /// The component tried to grow its memory past the limit.
    OutOfMemory,
}

impl FailureKind {
    /// The error type recorded in the error sink and metrics.
    pub fn error_type(self) -> &'static str {
        match self {
            FailureKind::Trap => "transform_trap",
            FailureKind::Timeout => "transform_timeout",
            FailureKind::OutOfMemory => "transform_oom",
        }
    }
}

/// A failed call: the instance is discarded and rebuilt for the next call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CallFailure {
    /// What happened.
    pub kind: FailureKind,
    /// Details (trap message, captured panic output).
    pub message: String,
}

/// Per-store state: WASI context (no capabilities) and the memory limiter.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

struct MemoryLimiter {
    max_bytes: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

struct Live {
    store: Store<HostState>,
    bindings: TransformComponent,
    resource: ResourceAny,
    stderr: MemoryOutputPipe,
    take_step_counts: Option<TakeStepCounts>,
    process_packed: Option<Func>,
}

/// One configured transform component, rebuilt after any failed call.
pub struct TransformInstance {
    name: String,
    pre: TransformComponentPre<HostState>,
    config: String,
    limits: Limits,
    live: Option<Live>,
    /// The packed form of the current batch, reused from call to call.
    packed_batch: Vec<u8>,
    rebuilds: u64,
    timeouts: u64,
    memory_limit_hits: u64,
}

impl TransformInstance {
    /// Instantiates the component and runs its constructor with `config`. A rejected
    /// configuration is [`WasmError::Config`] with the component's own message.
    pub fn create(
        name: &str,
        pre: TransformComponentPre<HostState>,
        config: String,
        limits: Limits,
    ) -> Result<Self, WasmError> {
        let mut instance = Self {
            name: name.to_owned(),
            pre,
            config,
            limits,
            live: None,
            packed_batch: Vec::new(),
            rebuilds: 0,
            timeouts: 0,
            memory_limit_hits: 0,
        };
        instance.live = Some(instance.start()?);
        Ok(instance)
    }

    /// How many times the instance was rebuilt after a failure.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// How many calls were interrupted by the time limit.
    pub fn timeouts(&self) -> u64 {
        self.timeouts
    }

    /// How many calls hit the memory limit.
    pub fn memory_limit_hits(&self) -> u64 {
        self.memory_limit_hits
    }

    /// The component's per-step counters since the last call, if it exports
    /// `step-counters`; empty otherwise, or when the instance has just failed.
    pub fn take_step_counts(&mut self) -> Vec<StepCount> {
        let deadline = self.deadline_ticks();
        let Some(live) = self.live.as_mut() else {
            return Vec::new();
        };
        let Some(take) = live.take_step_counts else {
            return Vec::new();
        };
        live.store.set_epoch_deadline(deadline);
        match take.call(&mut live.store, ()) {
            Ok((counts,)) => counts,
            Err(err) => {
                tracing::warn!(component = %self.name, error = %format!("{err:#}"), "cannot read step counters; the instance is rebuilt");
                self.live = None;
                Vec::new()
            }
        }
    }

    fn start(&self) -> Result<Live, WasmError> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                max_bytes: self.limits.memory_bytes,
                hit: false,
            },
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(self.deadline_ticks());
        let fail = |reason: String| WasmError::Start {
            name: self.name.clone(),
            reason,
        };
        let instance = self
            .pre
            .instance_pre()
            .instantiate(&mut store)
            .map_err(|e| fail(format!("{e:#}")))?;
        let bindings =
            TransformComponent::new(&mut store, &instance).map_err(|e| fail(format!("{e:#}")))?;
        let take_step_counts = step_counters(&instance, &mut store);
        let process_packed = packed_process(&instance, &mut store);
        let created = bindings
            .dataflow_transform_transformer()
            .transform()
            .call_create(&mut store, &self.config)
            .map_err(|e| fail(describe(&e, &stderr)))?;
        let resource = created.map_err(WasmError::Config)?;
        Ok(Live {
            store,
            bindings,
            resource,
            stderr,
            take_step_counts,
            process_packed,
        })
    }

    fn deadline_ticks(&self) -> u64 {
        let tick = u64::try_from(EPOCH_TICK.as_millis()).unwrap_or(10).max(1);
        self.limits.timeout_ms.div_ceil(tick) + 1
    }

    /// Processes one batch in a single call. On failure the instance is dropped
    /// (it is rebuilt on the next call) and the failure is classified.
    pub fn call(&mut self, batch: &[Message]) -> Result<Vec<Outcome>, CallFailure> {
        let mut live = match self.live.take() {
            Some(live) => live,
            None => {
                self.rebuilds += 1;
                self.start().map_err(|e| CallFailure {
                    kind: FailureKind::Trap,
                    message: e.to_string(),
                })?
            }
        };
        live.store.set_epoch_deadline(self.deadline_ticks());
        let result = match live.process_packed {
            Some(func) => self.call_packed(&mut live, func, batch),
            None => live
                .bindings
                .dataflow_transform_transformer()
                .transform()
                .call_process(&mut live.store, live.resource, batch)
                .map_err(Failed::Call),
        };
        match result {
            Ok(outcomes) if outcomes.len() == batch.len() => {
                self.live = Some(live);
                Ok(outcomes)
            }
            Ok(outcomes) => Err(CallFailure {
                kind: FailureKind::Trap,
                message: format!(
                    "component {} returned {} outcomes for {} messages",
                    self.name,
                    outcomes.len(),
                    batch.len()
                ),
            }),
            Err(Failed::Layout(message)) => Err(CallFailure {
                kind: FailureKind::Trap,
                message: format!("component {} {message}", self.name),
            }),
            Err(Failed::Call(err)) => {
                let kind = if live.store.data().limiter.hit {
                    FailureKind::OutOfMemory
                } else if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    FailureKind::Timeout
                } else {
                    FailureKind::Trap
                };
                match kind {
                    FailureKind::Timeout => self.timeouts += 1,
                    FailureKind::OutOfMemory => self.memory_limit_hits += 1,
                    FailureKind::Trap => {}
                }
                let message = match kind {
                    FailureKind::Timeout => format!(
                        "component {} exceeded its time limit of {} ms",
                        self.name, self.limits.timeout_ms
                    ),
                    FailureKind::OutOfMemory => format!(
                        "component {} exceeded its memory limit of {} MiB",
                        self.name,
                        self.limits.memory_bytes / (1024 * 1024)
                    ),
                    FailureKind::Trap => format!(
                        "component {} trapped: {}",
                        self.name,
                        describe(&err, &live.stderr)
                    ),
                };
                Err(CallFailure { kind, message })
            }
        }
    }

    /// One `process-packed` call: the batch goes in as one buffer and the outcomes
    /// come back as another (see `dataflow_transform_sdk::packed`).
    fn call_packed(
        &mut self,
        live: &mut Live,
        func: Func,
        batch: &[Message],
    ) -> Result<Vec<Outcome>, Failed> {
        packed::encode_batch(
            batch
                .iter()
                .map(|m| (m.payload.as_slice(), m.metadata.as_slice())),
            &mut self.packed_batch,
        )
        .map_err(|e| Failed::Layout(format!("cannot take this batch: {e}")))?;
        let typed = func
            .typed::<(ResourceAny, &[u8]), (Vec<u8>,)>(&live.store)
            .map_err(Failed::Call)?;
        let (packed,) = typed
            .call(&mut live.store, (live.resource, &self.packed_batch))
            .map_err(Failed::Call)?;
        let outcomes = packed::decode_outcomes(&packed, batch.len())
            .map_err(|e| Failed::Layout(format!("returned {e}")))?;
        Ok(outcomes.into_iter().map(host_outcome).collect())
    }

    /// Processes a batch so that a failing call fails only the messages that cause
    /// it: the batch is cut into calls of about [`CALL_PAYLOAD_BYTES`], and after a
    /// failed call its messages are replayed one per call on a fresh instance.
    /// Returns one result per input message.
    pub fn call_isolating(&mut self, batch: &[Message]) -> Vec<Result<Outcome, CallFailure>> {
        let mut results = Vec::with_capacity(batch.len());
        let mut rest = batch;
        while !rest.is_empty() {
            let mut bytes = 0;
            let take = rest
                .iter()
                .position(|message| {
                    bytes += message.payload.len();
                    bytes > CALL_PAYLOAD_BYTES
                })
                .unwrap_or(rest.len())
                .max(1);
            let (call, later) = rest.split_at(take);
            results.extend(self.call_replaying(call));
            rest = later;
        }
        results
    }

    /// One call for `batch`, replayed one message per call if it fails.
    fn call_replaying(&mut self, batch: &[Message]) -> Vec<Result<Outcome, CallFailure>> {
        match self.call(batch) {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(failure) if batch.len() <= 1 => vec![Err(failure)],
            Err(failure) => {
                tracing::warn!(component = %self.name, error = %failure, "batch call failed; replaying its messages one by one");
                batch
                    .iter()
                    .map(|message| {
                        self.call(std::slice::from_ref(message))
                            .and_then(|mut outcomes| outcomes.pop().ok_or_else(|| failure.clone()))
                    })
                    .collect()
            }
        }
    }
}

/// The `take` function of the optional `step-counters` export, when the component
/// has it with the expected type.
fn step_counters(instance: &Instance, store: &mut Store<HostState>) -> Option<TakeStepCounts> {
    let interface = instance.get_export_index(&mut *store, None, STEP_COUNTERS)?;
    let take = instance.get_export_index(&mut *store, Some(&interface), "take")?;
    instance.get_typed_func(&mut *store, take).ok()
}

/// The `process-packed` function of the optional `packed-transformer` export, when
/// the component has it with the expected type; otherwise the host uses `process`.
fn packed_process(instance: &Instance, store: &mut Store<HostState>) -> Option<Func> {
    let interface = instance.get_export_index(&mut *store, None, PACKED_TRANSFORMER)?;
    let process = instance.get_export_index(&mut *store, Some(&interface), "process-packed")?;
    let func = instance.get_func(&mut *store, process)?;
    func.typed::<(ResourceAny, &[u8]), (Vec<u8>,)>(&*store)
        .ok()
        .map(|_| func)
}

/// How a call went wrong before its outcomes could be used.
enum Failed {
    /// The call itself failed (trap, time or memory limit).
    Call(wasmtime::Error),
    /// The packed buffers did not follow the layout.
    Layout(String),
}

/// Moves an outcome of the SDK's packed decoder into the host's binding types.
fn host_outcome(outcome: sdk::Outcome) -> Outcome {
    match outcome {
        sdk::Outcome::Emitted(messages) => Outcome::Emitted(
            messages
                .into_iter()
                .map(|m| Message {
                    payload: m.payload,
                    metadata: m.metadata,
                })
                .collect(),
        ),
        sdk::Outcome::Failed(err) => Outcome::Failed(TransformError {
            kind: match err.kind {
                sdk::ErrorKind::InvalidData => ErrorKind::InvalidData,
                sdk::ErrorKind::Failed => ErrorKind::Failed,
            },
            message: err.message,
            step: err.step,
        }),
    }
}

/// A trap's message plus what the component printed to stderr (e.g. its panic).
fn describe(err: &wasmtime::Error, stderr: &MemoryOutputPipe) -> String {
    let printed = stderr.contents();
    let printed = String::from_utf8_lossy(&printed);
    let printed = printed.trim();
    let trap = err
        .downcast_ref::<Trap>()
        .map_or_else(|| format!("{err:#}"), ToString::to_string);
    if printed.is_empty() {
        trap
    } else {
        format!("{trap}: {printed}")
    }
}
