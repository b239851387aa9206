//! The two ways a batch crosses into a component: the optional packed export (one
//! buffer each way, see `dataflow_core::packed`) and `transformer.process` with the
//! canonical ABI's records, for components made without our SDK. Both take and
//! give the pipeline's own message type.

use dataflow_core::packed::{self, Inputs};
use dataflow_core::{ErrorKind, Message, Outcome, TransformError};
use wasmtime::Store;
use wasmtime::component::{ComponentType, Func, Instance, Lift, Lower, ResourceAny};

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
pub(crate) enum Entry {
    /// `packed-transformer.process-packed`.
    Packed(Func),
    /// `transformer.[method]transform.process`.
    Records(Func),
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
        if let Some(func) = packed {
            return Some(Entry::Packed(func));
        }
        exported_func(instance, store, TRANSFORMER, "[method]transform.process")
            .filter(|func| {
                func.typed::<(ResourceAny, &[MessageRef<'_>]), (Vec<WitOutcome>,)>(&*store)
                    .is_ok()
            })
            .map(Entry::Records)
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
        match self {
            Entry::Packed(func) => call_packed(store, func, resource, batch, scratch),
            Entry::Records(func) => call_records(store, func, resource, batch.messages()),
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

fn call_packed(
    store: &mut Store<HostState>,
    func: Func,
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
    let typed = func
        .typed::<(ResourceAny, &[u8]), (Vec<u8>,)>(&*store)
        .map_err(Failed::Call)?;
    let (outcomes,) = typed
        .call(&mut *store, (resource, scratch.as_slice()))
        .map_err(Failed::Call)?;
    packed::decode_outcomes(&outcomes, batch).map_err(|e| Failed::Layout(format!("returned {e}")))
}

fn call_records(
    store: &mut Store<HostState>,
    func: Func,
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
    let typed = func
        .typed::<(ResourceAny, &[MessageRef<'_>]), (Vec<WitOutcome>,)>(&*store)
        .map_err(Failed::Call)?;
    let (outcomes,) = typed
        .call(&mut *store, (resource, lent.as_slice()))
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
