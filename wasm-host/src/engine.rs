//! The engines of the process and preparing components on them.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, OptLevel};

use crate::WasmError;
use crate::bindings::TransformComponentPre;
use crate::cache::{compile, precompile_into};
use crate::epoch::EpochTicker;
use crate::state::HostState;

/// A component compiled and linked against our world, ready to instantiate.
pub type ComponentPre = TransformComponentPre<HostState>;

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
    /// files, sockets, env or args. `wasi:http` is linked too, so a component built
    /// with HTTP support (a default componentize-js build) loads, but every
    /// request it sends is refused.
    fn new(epoch_interruption: bool) -> Result<Self, WasmError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(epoch_interruption);
        config.cranelift_opt_level(OptLevel::Speed);
        // User components may be built by async-first toolchains (the component
        // model's async ABI); the built-ins are not, and skip its bookkeeping.
        config.concurrency_support(epoch_interruption);
        let engine = Engine::new(&config).map_err(|e| WasmError::Invalid {
            name: "engine".into(),
            reason: e.to_string(),
        })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker))
            .and_then(|()| crate::clock::add_capped_clock(&mut linker))
            .map_err(|e| WasmError::Invalid {
                name: "wasi".into(),
                reason: e.to_string(),
            })?;
        Ok(Self { engine, linker })
    }

    /// Compiles `bytes` (or loads the cached compilation) and links it against our
    /// world. `name` is used in errors.
    fn prepare(&self, name: &str, bytes: &[u8]) -> Result<ComponentPre, WasmError> {
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
    pub fn prepare(&self, name: &str, bytes: &[u8]) -> Result<ComponentPre, WasmError> {
        check_header(name, bytes)?;
        self.sandboxed.prepare(name, bytes)
    }

    /// Prepares the fused built-ins component (`bytes`, embedded by the processor)
    /// on the engine without epoch checks.
    pub fn prepare_builtins(&self, bytes: &[u8]) -> Result<ComponentPre, WasmError> {
        self.trusted.prepare("builtins", bytes)
    }

    /// Compiles a user component (a script runtime) into `dir`, where the
    /// processor finds it as already compiled (see `precompile` in the processor).
    pub fn precompile(&self, bytes: &[u8], dir: &Path) -> Result<std::path::PathBuf, WasmError> {
        check_header("component", bytes)?;
        precompile_into(&self.sandboxed.engine, bytes, dir).map_err(|e| WasmError::Invalid {
            name: dir.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Compiles the fused built-ins into `dir`, as [`WasmRuntime::precompile`].
    pub fn precompile_builtins(
        &self,
        bytes: &[u8],
        dir: &Path,
    ) -> Result<std::path::PathBuf, WasmError> {
        precompile_into(&self.trusted.engine, bytes, dir).map_err(|e| WasmError::Invalid {
            name: dir.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Loads a user component from `path`, checking `sha256` when given.
    pub fn prepare_file(
        &self,
        path: &Path,
        sha256: Option<&str>,
    ) -> Result<ComponentPre, WasmError> {
        let shown = path.display().to_string();
        let bytes = read_component(path)?;
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

/// Largest component accepted, in bytes (the Python and JavaScript runtimes are
/// about 20 MiB).
pub const MAX_COMPONENT_BYTES: u64 = 128 * 1024 * 1024;

/// Reads a component file: a regular file of at most [`MAX_COMPONENT_BYTES`].
/// Devices, pipes and directories are refused before anything is read, and no
/// error shows the file's content.
fn read_component(path: &Path) -> Result<Vec<u8>, WasmError> {
    use std::io::Read as _;
    let shown = path.display().to_string();
    let invalid = |reason: String| WasmError::Invalid {
        name: shown.clone(),
        reason,
    };
    let read_error = |cause| WasmError::Read {
        path: shown.clone(),
        cause,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(invalid("it is not a regular file".into()));
    }
    if metadata.len() > MAX_COMPONENT_BYTES {
        return Err(invalid(format!(
            "it is {} bytes; components of at most {MAX_COMPONENT_BYTES} bytes are accepted",
            metadata.len()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(invalid(format!(
            "it grew past {MAX_COMPONENT_BYTES} bytes while being read"
        )));
    }
    Ok(bytes)
}

/// Refuses bytes that are not WebAssembly at all, without quoting them.
fn check_header(name: &str, bytes: &[u8]) -> Result<(), WasmError> {
    if bytes.starts_with(b"\0asm") {
        Ok(())
    } else {
        Err(WasmError::Invalid {
            name: name.to_owned(),
            reason: "it is not WebAssembly (it does not start with the \\0asm header)".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_non_wasm_files_are_refused_without_showing_their_bytes() {
        let err = read_component(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let dir = std::env::temp_dir().join(format!("dataflow-secret-{}", std::process::id()));
        std::fs::write(&dir, b"root:SECRET-HASH:19000:0:99999:7:::\n").unwrap();
        let bytes = read_component(&dir).unwrap();
        let err = check_header(&dir.display().to_string(), &bytes)
            .unwrap_err()
            .to_string();
        std::fs::remove_file(&dir).ok();
        assert!(err.contains("not WebAssembly"), "{err}");
        assert!(!err.contains("SECRET") && !err.contains("root"), "{err}");
    }
}
