//! Where the script runtimes (the components that run `type: python` and
//! `type: javascript` steps) are:
//! `DATAFLOW_RUNTIME_DIR` when set, else `runtimes/` beside the executable (how
//! `make build` lays them out under `target/release`), else
//! `../lib/dataflow/runtimes/` from it (how the image installs them), and last
//! the image's own `/usr/local/lib/dataflow/runtimes/` (for when the executable's
//! path cannot be read, e.g. without `/proc`).

use std::path::{Path, PathBuf};

use crate::WasmError;

use dataflow_api::ScriptLanguage;

/// File name of the Python runtime component.
pub const PYTHON_RUNTIME: &str = "python.wasm";

/// File name of the JavaScript runtime component.
pub const JAVASCRIPT_RUNTIME: &str = "javascript.wasm";

/// Where the image installs the runtimes.
pub const IMAGE_RUNTIME_DIR: &str = "/usr/local/lib/dataflow/runtimes";

/// The directories searched for script runtimes, in order.
#[derive(Debug, Clone, Default)]
pub struct ScriptRuntimes {
    dirs: Vec<PathBuf>,
}

impl ScriptRuntimes {
    /// Runtimes looked up in `dir` only.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dirs: vec![dir.into()],
        }
    }

    /// The runtimes of this installation (see the module's doc).
    pub fn installed() -> Self {
        if let Some(dir) = std::env::var_os("DATAFLOW_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return Self::in_dir(dir);
        }
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        let mut dirs: Vec<PathBuf> = exe_dir
            .map(|dir| vec![dir.join("runtimes"), dir.join("../lib/dataflow/runtimes")])
            .unwrap_or_default();
        dirs.push(PathBuf::from(IMAGE_RUNTIME_DIR));
        Self { dirs }
    }

    /// The file of the runtime for `language`.
    pub fn runtime(&self, language: ScriptLanguage) -> Result<PathBuf, WasmError> {
        self.find(match language {
            ScriptLanguage::Python => PYTHON_RUNTIME,
            ScriptLanguage::Javascript => JAVASCRIPT_RUNTIME,
        })
    }

    fn find(&self, name: &str) -> Result<PathBuf, WasmError> {
        self.dirs
            .iter()
            .map(|dir| dir.join(name))
            .find(|file| file.is_file())
            .ok_or_else(|| WasmError::Invalid {
                name: name.to_owned(),
                reason: format!(
                    "the runtime is not installed (looked in {}; `make build` makes it, or set DATAFLOW_RUNTIME_DIR)",
                    self.dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}
