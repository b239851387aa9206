use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, OptLevel};

use super::WasmError;
use super::bindings::TransformComponentPre;
use super::instance::HostState;

/// The fused built-ins component, embedded at build time.
pub static BUILTINS_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/builtins.wasm"));

/// How often the epoch advances; time limits are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The Wasm engines of the process, their linkers and the epoch ticker.
///
/// User components run on an engine whose code checks an epoch deadline at every
/// loop and call, which is how time limits interrupt them. The fused built-ins are
/// our own code (linear in the size of the message, nesting bounded by the parser)
/// and run on a second engine without those checks, about 12% faster. Memory limits
/// and the sandbox apply to both.
#[derive(Clone)]
pub struct WasmRuntime {
    sandboxed: Arc<Host>,
    trusted: Arc<Host>,
    _ticker: Arc<EpochTicker>,
}

struct Host {
    engine: Engine,
    linker: Linker<HostState>,
}

impl Host {
    /// An engine (Cranelift, component model) and a linker that offers components
    /// only WASI's clocks, random, and closed stdio: every WASI interface is linked so
    /// standard-library components instantiate, but the per-store context grants no
    /// files, sockets, env or args.
    fn new(epoch_interruption: bool) -> Result<Self, WasmError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(epoch_interruption);
        config.cranelift_opt_level(OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| WasmError::Invalid {
            name: "engine".into(),
            reason: e.to_string(),
        })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| WasmError::Invalid {
            name: "wasi".into(),
            reason: e.to_string(),
        })?;
        Ok(Self { engine, linker })
    }

    /// Compiles `bytes` (or loads the cached compilation) and links it against our
    /// world. `name` is used in errors.
    fn prepare(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<TransformComponentPre<HostState>, WasmError> {
        let invalid = |reason: String| WasmError::Invalid {
            name: name.to_owned(),
            reason,
        };
        let component = compile(&self.engine, bytes).map_err(|e| invalid(format!("{e:#}")))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("{e:#}")))?;
        TransformComponentPre::new(pre).map_err(|e| {
            invalid(format!(
                "it does not export the dataflow:transform world: {e:#}"
            ))
        })
    }
}

impl WasmRuntime {
    /// Creates both engines and starts the epoch ticker.
    pub fn new() -> Result<Self, WasmError> {
        let sandboxed = Host::new(true)?;
        let trusted = Host::new(false)?;
        let ticker = EpochTicker::start(sandboxed.engine.clone());
        Ok(Self {
            sandboxed: Arc::new(sandboxed),
            trusted: Arc::new(trusted),
            _ticker: Arc::new(ticker),
        })
    }

    /// Prepares a user component (time limits enforced). `name` is used in errors.
    pub fn prepare(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<TransformComponentPre<HostState>, WasmError> {
        self.sandboxed.prepare(name, bytes)
    }

    /// Prepares the embedded fused built-ins on the engine without epoch checks.
    pub fn prepare_builtins(&self) -> Result<TransformComponentPre<HostState>, WasmError> {
        self.trusted.prepare("builtins", BUILTINS_COMPONENT)
    }

    /// Loads a user component from `path`, checking `sha256` when given.
    pub fn prepare_file(
        &self,
        path: &Path,
        sha256: Option<&str>,
    ) -> Result<TransformComponentPre<HostState>, WasmError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| WasmError::Read {
            path: shown.clone(),
            source,
        })?;
        if let Some(expected) = sha256 {
            let actual = hex::encode(Sha256::digest(&bytes));
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(WasmError::Checksum {
                    path: shown,
                    expected: expected.to_owned(),
                    actual,
                });
            }
        }
        self.prepare(&shown, &bytes)
    }
}

/// Compiles a component, reusing an earlier compilation from the cache directory
/// when there is one. Only files this process wrote (named by the hash of the
/// component and of the engine's settings) are ever loaded.
fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    let Some(cached) = cache_path(engine, bytes) else {
        return Component::new(engine, bytes);
    };
    if cached.exists() {
        // SAFETY: the file was produced by `Engine::precompile_component` of an
        // engine with the same compatibility hash (it is part of the name), in a
        // cache directory owned by this user.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => return Ok(component),
            Err(err) => {
                tracing::debug!(path = %cached.display(), %err, "ignoring unusable compilation cache entry")
            }
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    let temp = cached.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&temp, &compiled)
        .and_then(|()| std::fs::rename(&temp, &cached))
        .is_err()
    {
        let _ = std::fs::remove_file(&temp);
        tracing::debug!(path = %cached.display(), "compilation cache is not writable");
    }
    // SAFETY: `compiled` was just produced by this engine.
    unsafe { Component::deserialize(engine, &compiled) }
}

fn cache_path(engine: &Engine, bytes: &[u8]) -> Option<PathBuf> {
    let dir = cache_dir()?;
    std::fs::create_dir_all(&dir).ok()?;
    let mut engine_hash = DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let digest = hex::encode(Sha256::digest(bytes));
    Some(dir.join(format!("{digest}-{:016x}.cwasm", engine_hash.finish())))
}

fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DATAFLOW_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("dataflow"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/dataflow"))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
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
