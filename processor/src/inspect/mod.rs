//! Seeing inside the running flow (`dataflow-inspect` wired into the processor):
//! the tap at every point, the recent failures, the live figures, the
//! playground's sandbox, and the `/api/v1` endpoints that serve them.

mod describe;
mod observe;
mod probe;
mod sandbox;

use std::sync::Arc;
use std::time::Duration;

use dataflow_api::DataFlowSpec;
use dataflow_inspect::figures::HISTORY_STEP_SECONDS;
use dataflow_inspect::{Failures, Figures, Inspect, Layout, Shaper, Tap, Token};
use dataflow_wasm_host::{TransformChain, WasmRuntime};

pub use describe::describe;
pub use observe::FiguresObserver;
pub use probe::StepProbe;
pub use sandbox::Sandbox;

use crate::pipeline::{Observer, Watchers};

/// The number of routes of the spec's router.
fn route_count(spec: &DataFlowSpec) -> usize {
    spec.transformations
        .iter()
        .filter_map(|t| t.spec.router())
        .map(|r| r.routes.len())
        .sum()
}

/// Everything a flow shows of itself.
#[derive(Clone)]
pub struct FlowInspect {
    tap: Arc<Tap>,
    failures: Arc<Failures>,
    figures: Arc<Figures>,
    sandbox: Arc<Sandbox>,
    flow: Arc<serde_json::Value>,
    payloads_allowed: bool,
    last_step: Option<usize>,
    router_step: Option<usize>,
}

impl std::fmt::Debug for FlowInspect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowInspect")
            .field("payloads_allowed", &self.payloads_allowed)
            .finish_non_exhaustive()
    }
}

impl FlowInspect {
    /// The inspection of `spec` (as loaded), whose live chain is `chain`;
    /// `payloads_allowed`: the flow lets its messages be shown.
    pub fn new(
        spec: &DataFlowSpec,
        name: &str,
        namespace: &str,
        chain: &TransformChain,
        payloads_allowed: bool,
    ) -> Result<Self, dataflow_wasm_host::WasmError> {
        let layout = Layout {
            steps: spec.transformations.len(),
            routes: route_count(spec),
        };
        let shaper = Shaper::for_fields(
            spec.observability
                .iter()
                .flat_map(|o| o.mask_fields.iter())
                .map(String::as_str),
        );
        let runtime = WasmRuntime::new()?;
        Ok(Self {
            tap: Tap::new(layout, shaper),
            failures: Arc::new(Failures::new(dataflow_api::redact::redact)),
            figures: Arc::new(Figures::new(layout)),
            sandbox: Arc::new(Sandbox::new(runtime, spec.clone())),
            flow: Arc::new(describe(spec, name, namespace, &chain.groups())),
            payloads_allowed,
            last_step: spec.transformations.len().checked_sub(1),
            router_step: spec
                .transformations
                .iter()
                .position(|t| t.spec.router().is_some()),
        })
    }

    /// What the pipeline feeds: the tap's points and the failures.
    pub fn watchers(&self) -> Watchers {
        Watchers {
            tap: self.tap.clone(),
            failures: self.failures.clone(),
            last_step: self.last_step,
            router_step: self.router_step,
        }
    }

    /// The observer keeping the live figures.
    pub fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(FiguresObserver(self.figures.clone()))
    }

    /// Lets the tap watch between the chain's steps (only when the flow shows
    /// its messages: otherwise the chain is never asked).
    pub fn watch_chain(&self, chain: &mut TransformChain) {
        if self.payloads_allowed {
            chain.set_probe(Arc::new(StepProbe::new(
                self.tap.clone(),
                self.sandbox.clone(),
            )));
        }
    }

    /// The `/api/v1` endpoints, behind `token`.
    pub fn router(&self, token: Option<Token>) -> axum::Router {
        Inspect {
            tap: self.tap.clone(),
            failures: self.failures.clone(),
            figures: self.figures.clone(),
            flow: self.flow.clone(),
            payloads_allowed: self.payloads_allowed,
            token,
            dry_run: Some(self.sandbox.clone()),
        }
        .router()
    }

    /// Keeps the figures' history (a point every few seconds) until the task is
    /// dropped.
    pub fn keep_history(&self) -> tokio::task::JoinHandle<()> {
        let figures = self.figures.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(HISTORY_STEP_SECONDS));
            loop {
                ticks.tick().await;
                figures.record_history();
            }
        })
    }

    /// Tap clients watching now.
    pub fn clients(&self) -> usize {
        self.tap.clients()
    }
}
