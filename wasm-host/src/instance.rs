//! One configured transform component in its own sandboxed store, rebuilt after
//! any failed call.

use dataflow_core::packed::Inputs;
use dataflow_core::{Outcome, StepCount};
use wasmtime::component::{ResourceAny, TypedFunc};
use wasmtime::{Store, Trap};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi_http::WasiHttpCtx;

use crate::abi::{Entry, Failed};
use crate::bindings::TransformComponent;
use crate::component_log::ComponentLog;
use crate::engine::ComponentPre;
use crate::epoch::deadline_ticks;
use crate::http_refusal::RefuseOutgoing;
use crate::state::{HostState, Limits, MemoryLimiter};
use crate::{CallFailure, FailureKind, WasmError};

/// The optional export with per-step counters (see `wit/transform.wit`).
const STEP_COUNTERS: &str = "dataflow:transform/step-counters@0.1.0";

/// How much of a component's stderr (panic messages) is kept for error reports.
const STDERR_CAPTURE: usize = 8 * 1024;

/// What one step reported through `step-counters.take`.
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lift, Clone, Copy)]
#[component(record)]
struct WitStepCount {
    received: u64,
    emitted: u64,
}

type TakeStepCounts = TypedFunc<(), (Vec<WitStepCount>,)>;

struct Live {
    store: Store<HostState>,
    resource: ResourceAny,
    stderr: MemoryOutputPipe,
    entry: Entry,
    take_step_counts: Option<TakeStepCounts>,
}

/// One configured transform component, rebuilt after any failed call.
pub struct TransformInstance {
    name: String,
    pre: ComponentPre,
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
        pre: ComponentPre,
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
        let deadline = deadline_ticks(self.limits.timeout_ms);
        let call_deadline = self.call_deadline();
        let Some(live) = self.live.as_mut() else {
            return Vec::new();
        };
        let Some(take) = live.take_step_counts else {
            return Vec::new();
        };
        live.store.set_epoch_deadline(deadline);
        live.store.data_mut().deadline = call_deadline;
        match take.call(&mut live.store, ()) {
            Ok((counts,)) => counts
                .into_iter()
                .map(|c| StepCount {
                    received: c.received,
                    emitted: c.emitted,
                })
                .collect(),
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
            .stdout(ComponentLog::new(&self.name))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = HostState {
            wasi,
            table: wasmtime::component::ResourceTable::new(),
            http: WasiHttpCtx::new(),
            http_hooks: RefuseOutgoing,
            limiter: MemoryLimiter {
                max_bytes: self.limits.memory_bytes,
                hit: false,
            },
            deadline: self.call_deadline(),
            waited_past_deadline: false,
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(deadline_ticks(self.limits.timeout_ms));
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
        let entry = Entry::find(&instance, &mut store)
            .ok_or_else(|| fail("it exports no usable process function".into()))?;
        let created = bindings
            .dataflow_transform_transformer()
            .transform()
            .call_create(&mut store, &self.config)
            .map_err(|e| {
                let timed_out = store.data().waited_past_deadline
                    || e.downcast_ref::<Trap>() == Some(&Trap::Interrupt);
                if timed_out {
                    fail(format!(
                        "its constructor ran past the time limit of {} ms",
                        self.limits.timeout_ms
                    ))
                } else {
                    fail(describe(&e, &stderr))
                }
            })?;
        let resource = created.map_err(WasmError::Config)?;
        Ok(Live {
            store,
            resource,
            stderr,
            entry,
            take_step_counts,
        })
    }

    /// When a call starting now must end.
    fn call_deadline(&self) -> std::time::Instant {
        std::time::Instant::now() + std::time::Duration::from_millis(self.limits.timeout_ms)
    }

    /// Processes one batch in a single call. On failure the instance is dropped
    /// (it is rebuilt on the next call) and the failure is classified, and given
    /// inputs keep their metadata; on success, outputs may have taken it (see
    /// [`Inputs`]).
    pub fn call(&mut self, batch: Inputs<'_>) -> Result<Vec<Outcome>, CallFailure> {
        let batch_len = batch.messages().len();
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
        live.store
            .set_epoch_deadline(deadline_ticks(self.limits.timeout_ms));
        live.store.data_mut().deadline = self.call_deadline();
        let result = live.entry.call(
            &mut live.store,
            live.resource,
            batch,
            &mut self.packed_batch,
        );
        match result {
            Ok(outcomes) if outcomes.len() == batch_len => {
                self.live = Some(live);
                Ok(outcomes)
            }
            Ok(outcomes) => Err(CallFailure {
                kind: FailureKind::Trap,
                message: format!(
                    "component {} returned {} outcomes for {} messages",
                    self.name,
                    outcomes.len(),
                    batch_len
                ),
            }),
            Err(Failed::Layout(message)) => Err(CallFailure {
                kind: FailureKind::Trap,
                message: format!("component {} {message}", self.name),
            }),
            Err(Failed::Call(err)) => Err(self.classify(&err, &live)),
        }
    }

    /// Names what stopped a call: the memory limit, the time limit, or a trap.
    fn classify(&mut self, err: &wasmtime::Error, live: &Live) -> CallFailure {
        let state = live.store.data();
        let kind = if state.limiter.hit {
            FailureKind::OutOfMemory
        } else if state.waited_past_deadline || err.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
        {
            FailureKind::Timeout
        } else {
            FailureKind::Trap
        };
        let message = match kind {
            FailureKind::Timeout => {
                self.timeouts += 1;
                format!(
                    "component {} exceeded its time limit of {} ms",
                    self.name, self.limits.timeout_ms
                )
            }
            FailureKind::OutOfMemory => {
                self.memory_limit_hits += 1;
                format!(
                    "component {} exceeded its memory limit of {} MiB",
                    self.name,
                    self.limits.memory_bytes / (1024 * 1024)
                )
            }
            FailureKind::Trap => format!(
                "component {} trapped: {}",
                self.name,
                describe(err, &live.stderr)
            ),
        };
        CallFailure { kind, message }
    }
}

/// The `take` function of the optional `step-counters` export, when the component
/// has it with the expected type.
fn step_counters(
    instance: &wasmtime::component::Instance,
    store: &mut Store<HostState>,
) -> Option<TakeStepCounts> {
    let interface = instance.get_export_index(&mut *store, None, STEP_COUNTERS)?;
    let take = instance.get_export_index(&mut *store, Some(&interface), "take")?;
    instance.get_typed_func(&mut *store, take).ok()
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
