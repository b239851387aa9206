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

/// Compiles a component, reusing an earlier compilation for exactly these bytes:
/// from the cache directory, else from the precompiled set shipped with the
/// binaries (the image's runtimes and built-ins).
pub(crate) fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    let digest: [u8; HEADER] = Sha256::digest(bytes).into();
    let name = entry_name(engine, &digest);
    let cached = cache_dir()
        .filter(|dir| private_dir(dir))
        .map(|dir| dir.join(&name));
    let shipped = precompiled_dirs()
        .into_iter()
        .map(|dir| dir.join(&name))
        .filter(|path| not_writable_by_others(path));
    for path in cached.iter().cloned().chain(shipped) {
        let Some(compiled) = read_entry(&path, &digest) else {
            continue;
        };
        // SAFETY: the entry was written by `Engine::precompile_component` of an
        // engine with the same compatibility hash (part of its name), for these
        // exact component bytes (its header), in a directory only this user (or,
        // for the shipped set, root) can write.
        match unsafe { Component::deserialize(engine, &compiled) } {
            Ok(component) => {
                tracing::debug!(path = %path.display(), "compiled component taken from disk");
                return Ok(component);
            }
            Err(err) => {
                tracing::debug!(path = %path.display(), %err, "ignoring unusable compilation cache entry")
            }
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    if let Some(cached) = &cached {
        write_entry(cached, &digest, &compiled);
    }
    // SAFETY: `compiled` was just produced by this engine.
    unsafe { Component::deserialize(engine, &compiled) }
}

/// Compiles `bytes` into an entry under `dir`, named as [`compile`] looks for it
/// (the processor's `precompile` command, run when the image is built).
pub(crate) fn precompile_into(
    engine: &Engine,
    bytes: &[u8],
    dir: &Path,
) -> std::io::Result<PathBuf> {
    let digest: [u8; HEADER] = Sha256::digest(bytes).into();
    let compiled = engine
        .precompile_component(bytes)
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(entry_name(engine, &digest));
    let mut entry = Vec::with_capacity(HEADER + compiled.len());
    entry.extend_from_slice(&digest);
    entry.extend_from_slice(&compiled);
    std::fs::write(&path, entry)?;
    Ok(path)
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

/// An entry's file name: the component's digest and the engine's compatibility hash.
fn entry_name(engine: &Engine, digest: &[u8; HEADER]) -> String {
    let mut engine_hash = DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    format!(
        "{}-{:016x}.cwasm",
        hex::encode(digest),
        engine_hash.finish()
    )
}

/// Where the image puts its precompiled set.
const IMAGE_PRECOMPILED_DIR: &str = "/usr/local/lib/dataflow/precompiled";

/// Where a precompiled set shipped with the binaries is looked for:
/// `DATAFLOW_PRECOMPILED_DIR`, else `precompiled/` beside the executable and
/// `../lib/dataflow/precompiled` from it, and the image's directory (for when
/// the executable's path cannot be read, as without `/proc`).
fn precompiled_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("DATAFLOW_PRECOMPILED_DIR").filter(|d| !d.is_empty()) {
        return vec![PathBuf::from(dir)];
    }
    let mut dirs: Vec<PathBuf> = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .map(|dir| {
            vec![
                dir.join("precompiled"),
                dir.join("../lib/dataflow/precompiled"),
            ]
        })
        .unwrap_or_default();
    dirs.push(PathBuf::from(IMAGE_PRECOMPILED_DIR));
    dirs
}

/// Whether `path` and its directory belong to root or this user and nobody else
/// may write them (a shipped entry is native code too).
fn not_writable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let safe = |p: &Path| {
        std::fs::metadata(p)
            .is_ok_and(|m| (m.uid() == 0 || m.uid() == uid) && m.mode() & 0o022 == 0)
    };
    safe(path) && path.parent().is_some_and(safe)
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

/// The processor's cache directory: `DATAFLOW_CACHE_DIR` (the pod's emptyDir),
/// else `$XDG_CACHE_HOME/dataflow` or `~/.cache/dataflow`.
pub fn cache_dir() -> Option<PathBuf> {
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
