//! The two ways a batch crosses into a component: the optional packed export (one
//! buffer each way, see `dataflow_core::packed`) and `transformer.process` with the
//! canonical ABI's records, for components made without our SDK. Both take and
//! give the pipeline's own message type.

use dataflow_core::packed::{self, Inputs};
use dataflow_core::{ErrorKind, Message, Outcome, TransformError};
use wasmtime::Store;
use wasmtime::component::{
    ComponentNamedList, ComponentType, Func, Instance, Lift, Lower, ResourceAny, TypedFunc,
};

use crate::state::HostState;

/// The optional export that takes and returns packed batches.
const PACKED_TRANSFORMER: &str = "dataflow:transform/packed-transformer@0.1.0";
/// The interface every transform exports.
const TRANSFORMER: &str = "dataflow:transform/transformer@0.1.0";

/// A message lent to the canonical ABI without copying it first.
#[derive(ComponentType, Lower)]
#[component(record)]
struct MessageRef<'a> {
    payload: &'a [u8],
    metadata: &'a [(String, String)],
}

#[derive(ComponentType, Lift)]
#[component(record)]
struct WitMessage {
    payload: Vec<u8>,
    metadata: Vec<(String, String)>,
}

#[derive(ComponentType, Lift, Clone, Copy)]
#[component(enum)]
#[repr(u8)]
#[allow(
    dead_code,
    reason = "the variants are made by the Lift derive from the component's answer"
)]
enum WitErrorKind {
    #[component(name = "invalid-data")]
    InvalidData,
    #[component(name = "failed")]
    Failed,
}

#[derive(ComponentType, Lift)]
#[component(record)]
struct WitTransformError {
    kind: WitErrorKind,
    message: String,
    step: u32,
}

#[derive(ComponentType, Lift)]
#[component(variant)]
enum WitOutcome {
    #[component(name = "emitted")]
    Emitted(Vec<WitMessage>),
    #[component(name = "failed")]
    Failed(WitTransformError),
}

/// How a batch goes into one instance.
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    func: Func,
    layout: Layout,
    /// The export is lifted with the component model's async ABI (as async-first
    /// toolchains build them): it is called as a task the store runs to its end
    /// on this thread, under the same time and memory limits.
    lifted_async: bool,
}

#[derive(Clone, Copy)]
enum Layout {
    /// `packed-transformer.process-packed`.
    Packed,
    /// `transformer.[method]transform.process`.
    Records,
}

/// Why a call's outcomes could not be had.
pub(crate) enum Failed {
    /// The call itself failed (trap, time or memory limit).
    Call(wasmtime::Error),
    /// The outcomes did not follow the layout.
    Layout(String),
}

impl Entry {
    /// The packed export when the component has it with the expected type, else
    /// `process`; `None` when neither can be found (the component was checked
    /// against our world when prepared, so this does not happen).
    pub(crate) fn find(instance: &Instance, store: &mut Store<HostState>) -> Option<Self> {
        let packed =
            exported_func(instance, store, PACKED_TRANSFORMER, "process-packed").filter(|func| {
                func.typed::<(ResourceAny, &[u8]), (Vec<u8>,)>(&*store)
                    .is_ok()
            });
        let (func, layout) = match packed {
            Some(func) => (func, Layout::Packed),
            None => exported_func(instance, store, TRANSFORMER, "[method]transform.process")
                .filter(|func| {
                    func.typed::<(ResourceAny, &[MessageRef<'_>]), (Vec<WitOutcome>,)>(&*store)
                        .is_ok()
                })
                .map(|func| (func, Layout::Records))?,
        };
        Some(Entry {
            func,
            layout,
            lifted_async: func.ty(&*store).async_(),
        })
    }

    /// Runs `batch` through the component; `scratch` is the packed buffer reused
    /// from call to call.
    pub(crate) fn call(
        self,
        store: &mut Store<HostState>,
        resource: ResourceAny,
        batch: Inputs<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<Outcome>, Failed> {
        match self.layout {
            Layout::Packed => call_packed(store, self, resource, batch, scratch),
            Layout::Records => call_records(store, self, resource, batch.messages()),
        }
    }
}

fn exported_func(
    instance: &Instance,
    store: &mut Store<HostState>,
    interface: &str,
    name: &str,
) -> Option<Func> {
    let interface = instance.get_export_index(&mut *store, None, interface)?;
    let func = instance.get_export_index(&mut *store, Some(&interface), name)?;
    instance.get_func(&mut *store, func)
}

/// Calls `typed` the way its export is lifted: straight, or for an async-lifted
/// export as a task driven to its end here (a task that waits on nothing that
/// can finish is a trap, and the time limit's epoch deadline interrupts it as
/// any other call).
fn call_lifted<P, R>(
    store: &mut Store<HostState>,
    typed: TypedFunc<P, R>,
    params: P,
    lifted_async: bool,
) -> wasmtime::Result<R>
where
    P: ComponentNamedList + Lower,
    R: ComponentNamedList + Lift + 'static,
{
    if lifted_async {
        futures::executor::block_on(typed.call_async(&mut *store, params))
    } else {
        typed.call(&mut *store, params)
    }
}

fn call_packed(
    store: &mut Store<HostState>,
    entry: Entry,
    resource: ResourceAny,
    batch: Inputs<'_>,
    scratch: &mut Vec<u8>,
) -> Result<Vec<Outcome>, Failed> {
    packed::encode_batch(
        batch
            .messages()
            .iter()
            .map(|m| (m.payload.as_slice(), m.metadata.as_slice())),
        scratch,
    )
    .map_err(|e| Failed::Layout(format!("cannot take this batch: {e}")))?;
    let typed = entry
        .func
        .typed::<(ResourceAny, &[u8]), (Vec<u8>,)>(&*store)
        .map_err(Failed::Call)?;
    let (outcomes,) = call_lifted(
        store,
        typed,
        (resource, scratch.as_slice()),
        entry.lifted_async,
    )
    .map_err(Failed::Call)?;
    packed::decode_outcomes(&outcomes, batch).map_err(|e| Failed::Layout(format!("returned {e}")))
}

fn call_records(
    store: &mut Store<HostState>,
    entry: Entry,
    resource: ResourceAny,
    batch: &[Message],
) -> Result<Vec<Outcome>, Failed> {
    let lent: Vec<MessageRef<'_>> = batch
        .iter()
        .map(|m| MessageRef {
            payload: &m.payload,
            metadata: &m.metadata,
        })
        .collect();
    let typed = entry
        .func
        .typed::<(ResourceAny, &[MessageRef<'_>]), (Vec<WitOutcome>,)>(&*store)
        .map_err(Failed::Call)?;
    let (outcomes,) = call_lifted(
        store,
        typed,
        (resource, lent.as_slice()),
        entry.lifted_async,
    )
    .map_err(Failed::Call)?;
    Ok(outcomes.into_iter().map(into_outcome).collect())
}

fn into_outcome(outcome: WitOutcome) -> Outcome {
    match outcome {
        WitOutcome::Emitted(messages) => Outcome::Emitted(
            messages
                .into_iter()
                .map(|m| Message {
                    payload: m.payload,
                    metadata: m.metadata,
                })
                .collect(),
        ),
        WitOutcome::Failed(err) => Outcome::Failed(TransformError {
            kind: match err.kind {
                WitErrorKind::InvalidData => ErrorKind::InvalidData,
                WitErrorKind::Failed => ErrorKind::Failed,
            },
            message: err.message,
            step: err.step,
        }),
    }
}
