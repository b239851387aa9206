//! The epoch ticker: time limits are counted in its ticks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The epoch deadline (in ticks from now) of a call limited to `timeout_ms`.
pub(crate) fn deadline_ticks(timeout_ms: u64) -> u64 {
    let tick = u64::try_from(EPOCH_TICK.as_millis()).unwrap_or(10).max(1);
    timeout_ms.div_ceil(tick) + 1
}

/// Advances an engine's epoch every [`EPOCH_TICK`] until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            });
        if let Err(err) = spawned {
            tracing::error!(%err, "cannot start the epoch thread: Wasm time limits will not fire");
        }
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
