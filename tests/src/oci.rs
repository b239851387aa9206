//! The OCI registry `make services` starts, and pushes to it with the real
//! `oras` client, in the CNCF Wasm artifact layout `wkg` and `oras` write: a
//! `application/vnd.wasm.config.v0+json` config and one `application/wasm` layer.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::services::service_env;

/// `host:port` of the test registry (plain HTTP, no authentication).
pub fn registry() -> String {
    service_env("DATAFLOW_TEST_OCI_REGISTRY")
}

/// `host:port` of the test registry that asks for a user and password, as a
/// private registry does (htpasswd).
pub fn private_registry() -> String {
    service_env("DATAFLOW_TEST_OCI_AUTH_REGISTRY")
}

/// The user and password [`private_registry`] accepts.
pub fn private_login() -> (String, String) {
    (
        service_env("DATAFLOW_TEST_OCI_AUTH_USER"),
        service_env("DATAFLOW_TEST_OCI_AUTH_PASSWORD"),
    )
}

/// Pushes `bytes` as the one layer of an artifact at `reference`
/// (`<registry>/<repository>:<tag>`), with `layer_media_type`; returns the
/// bytes' sha256 in hex.
pub fn push(reference: &str, bytes: &[u8], layer_media_type: &str) -> String {
    push_as(reference, bytes, layer_media_type, None)
}

/// [`push`], logged in as `login` (user, password) when given.
pub fn push_as(
    reference: &str,
    bytes: &[u8],
    layer_media_type: &str,
    login: Option<&(String, String)>,
) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let digest = hex::encode(Sha256::digest(bytes));
    std::fs::write(dir.path().join("component.wasm"), bytes).expect("write the component");
    let config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [format!("sha256:{digest}")],
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("write the config");
    let layer = format!("component.wasm:{layer_media_type}");
    let mut args = vec![
        "push",
        "--plain-http",
        reference,
        "--config",
        "config.json:application/vnd.wasm.config.v0+json",
        &layer,
    ];
    if let Some((user, password)) = login {
        args.extend(["--username", user, "--password", password]);
    }
    oras(dir.path(), &args);
    digest
}

fn oras(dir: &Path, args: &[&str]) {
    let oras = service_env("DATAFLOW_TEST_ORAS");
    let output = Command::new(&oras)
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {oras}: {e}"));
    assert!(
        output.status.success(),
        "oras {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
