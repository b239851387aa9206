//! Reading a spec file from disk; the parsing and checks are the API crate's.

use std::path::Path;

use dataflow_api::manifest::{LoadedSpec, SpecError, parse};

/// A spec file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecFileError {
    /// The file cannot be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// File path.
        path: String,
        /// Cause (shown in the message, so not an error `source`).
        cause: std::io::Error,
    },
    /// Its content is not a usable spec.
    #[error(transparent)]
    Spec(#[from] SpecError),
}

/// Reads, parses and validates a spec file.
pub fn load(path: &Path) -> Result<LoadedSpec, SpecFileError> {
    let text = std::fs::read_to_string(path).map_err(|cause| SpecFileError::Read {
        path: path.display().to_string(),
        cause,
    })?;
    Ok(parse(&text)?)
}
