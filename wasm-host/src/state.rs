//! What each sandboxed store holds: a WASI context without capabilities, a
//! `wasi:http` context whose every outgoing request is refused, and the memory
//! limiter.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::http_refusal::RefuseOutgoing;

/// Resource limits of one transform instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory limit, bytes.
    pub memory_bytes: usize,
    /// Time limit per call, milliseconds.
    pub timeout_ms: u64,
}

/// Per-store state: WASI context (no capabilities), the memory limiter, and when
/// the current call must end.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_hooks: RefuseOutgoing,
    pub(crate) limiter: MemoryLimiter,
    /// The current call's time limit; waits on the clock may not end later.
    pub(crate) deadline: std::time::Instant,
    /// Set when the component asked to wait past `deadline` (its call is then
    /// stopped as having run out of time).
    pub(crate) waited_past_deadline: bool,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.http_hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// Refuses memory growth past the instance's limit and remembers that it did.
pub(crate) struct MemoryLimiter {
    pub(crate) max_bytes: usize,
    pub(crate) hit: bool,
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
