//! The monotonic clock a component sees, with its waits cut at the call's
//! deadline.
//!
//! A guest that sleeps (`std::thread::sleep`, a WASI clock subscription polled by
//! `wasi:io/poll`) blocks in the host, where the epoch deadline cannot interrupt
//! it. So a wait that would end after the current call's time limit is refused at
//! once: the call stops there, reported as the time limit it is, and no host
//! thread sleeps for it.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use crate::state::HostState;

/// The WASI interface the shadowed functions belong to, at the version
/// `wasmtime-wasi` defines it (components importing older 0.2 versions link to it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// The origin of the nanoseconds the guest reads.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since [`origin`], as the guest reads them.
fn now_nanos() -> u64 {
    u64::try_from(origin().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A wait that ends at `until` (within the call's time limit); a zero wait yields once, as WASI's own does, so a
/// guest polling in a loop does not starve the host's reactor.
struct CappedWait {
    until: tokio::time::Instant,
    yielded: bool,
}

#[async_trait::async_trait]
impl Pollable for CappedWait {
    async fn ready(&mut self) {
        if self.until <= tokio::time::Instant::now() {
            if !self.yielded {
                self.yielded = true;
                tokio::task::yield_now().await;
            }
            return;
        }
        tokio::time::sleep_until(self.until).await;
    }
}

/// A pollable for a wait of `wanted`; a trap (marked as the time limit) when the
/// wait would outlast the current call's deadline.
fn wait(
    mut store: StoreContextMut<'_, HostState>,
    wanted: Duration,
) -> wasmtime::Result<Resource<DynPollable>> {
    let state = store.data_mut();
    let left = state.deadline.saturating_duration_since(Instant::now());
    if wanted > left {
        state.waited_past_deadline = true;
        return Err(wasmtime::format_err!(
            "the component waited on the clock past its time limit"
        ));
    }
    let until = tokio::time::Instant::now() + wanted;
    let wait = state.table.push(CappedWait {
        until,
        yielded: false,
    })?;
    subscribe(&mut state.table, wait)
}

/// Replaces the clock functions that can block with the capped ones.
pub(crate) fn add_capped_clock(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("now", |_store, (): ()| Ok((now_nanos(),)))?;
    clock.func_wrap(
        "subscribe-duration",
        |store: StoreContextMut<'_, HostState>, (nanos,): (u64,)| {
            Ok((wait(store, Duration::from_nanos(nanos))?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |store: StoreContextMut<'_, HostState>, (when,): (u64,)| {
            let wanted = Duration::from_nanos(when.saturating_sub(now_nanos()));
            Ok((wait(store, wanted)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
