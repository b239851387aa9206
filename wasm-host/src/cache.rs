//! The on-disk compilation cache: compiled components, named by a hash of their
//! bytes and of the engine's settings.
//!
//! Each entry starts with the SHA-256 of the component it was compiled from; an
//! entry whose hash is not the one asked for (a file renamed or swapped in) is
//! compiled again, never run. Compiled code is native code, so the cache directory
//! must belong to this user and be writable by nobody else; otherwise it is not
//! used at all.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Length of the header naming the source component.
const HEADER: usize = 32;

/// Compiles a component, reusing an earlier compilation from the cache directory
/// when there is one for exactly these bytes.
pub(crate) fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    let digest: [u8; HEADER] = Sha256::digest(bytes).into();
    let Some(cached) = cache_path(engine, &digest) else {
        return Component::new(engine, bytes);
    };
    if let Some(compiled) = read_entry(&cached, &digest) {
        // SAFETY: the entry was written by `Engine::precompile_component` of an
        // engine with the same compatibility hash (part of its name), for these
        // exact component bytes (its header), in a directory only this user can
        // write.
        match unsafe { Component::deserialize(engine, &compiled) } {
            Ok(component) => return Ok(component),
            Err(err) => {
                tracing::debug!(path = %cached.display(), %err, "ignoring unusable compilation cache entry")
            }
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    write_entry(&cached, &digest, &compiled);
    // SAFETY: `compiled` was just produced by this engine.
    unsafe { Component::deserialize(engine, &compiled) }
}

/// The compiled code in the entry at `path`, if it was compiled from `digest`.
fn read_entry(path: &Path, digest: &[u8; HEADER]) -> Option<Vec<u8>> {
    let mut entry = std::fs::read(path).ok()?;
    if entry.get(..HEADER) != Some(digest.as_slice()) {
        tracing::warn!(path = %path.display(), "a compilation cache entry does not belong to its component; compiling again");
        return None;
    }
    entry.drain(..HEADER);
    Some(entry)
}

/// Writes an entry (header, then code) through a temporary file.
fn write_entry(path: &Path, digest: &[u8; HEADER], compiled: &[u8]) {
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut entry = Vec::with_capacity(HEADER + compiled.len());
    entry.extend_from_slice(digest);
    entry.extend_from_slice(compiled);
    if std::fs::write(&temp, &entry)
        .and_then(|()| std::fs::rename(&temp, path))
        .is_err()
    {
        let _ = std::fs::remove_file(&temp);
        tracing::debug!(path = %path.display(), "compilation cache is not writable");
    }
}

fn cache_path(engine: &Engine, digest: &[u8; HEADER]) -> Option<PathBuf> {
    let dir = cache_dir()?;
    if !private_dir(&dir) {
        return None;
    }
    let mut engine_hash = DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    Some(dir.join(format!(
        "{}-{:016x}.cwasm",
        hex::encode(digest),
        engine_hash.finish()
    )))
}

/// Creates `dir` (mode 0700) if needed; true when it is a directory of this user
/// that nobody else may write.
fn private_dir(dir: &Path) -> bool {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    let Ok(metadata) = std::fs::metadata(dir) else {
        return false;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let private = metadata.is_dir() && metadata.uid() == uid && metadata.mode() & 0o022 == 0;
    if !private {
        tracing::warn!(dir = %dir.display(), "the compilation cache directory is not private to this user; not using it");
    }
    private
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_of_another_component_is_not_used() {
        let dir = std::env::temp_dir().join(format!("dataflow-cache-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("entry.cwasm");
        let a: [u8; HEADER] = Sha256::digest(b"component a").into();
        let b: [u8; HEADER] = Sha256::digest(b"component b").into();
        write_entry(&path, &b, b"native code of b");
        assert_eq!(read_entry(&path, &a), None, "b's entry under a's name");
        assert_eq!(
            read_entry(&path, &b).as_deref(),
            Some(&b"native code of b"[..])
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
