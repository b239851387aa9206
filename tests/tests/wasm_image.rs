//! `wasm.image`: a component published to the real OCI registry of
//! `make services` (CNCF Distribution) with the real `oras` client is pulled
//! by the processor, checked against the step's pin before and after the
//! download, and kept in the cache so later starts need no registry.

use std::path::Path;
use std::process::Output;

use dataflow_tests::cluster::free_port;
use dataflow_tests::oci;
use dataflow_tests::services::unique;
use dataflow_tests::{component, processor, write_file};

const INPUT: &str = "{\"user\":\"ana\",\"card\":\"4111111111111111\"}\n{\"user\":\"bo\",\"card\":\"5500005555555559\"}\n";

/// A one-step spec running the component at `wasm` (the YAML of the step's body).
fn spec(dir: &Path, wasm: &str) -> String {
    let spec = format!(
        "source: {{type: stdin}}\nsink: {{type: stdout}}\ntransformations:\n  - {{type: wasm, wasm: {wasm}}}\n"
    );
    write_file(dir, "flow.yaml", &spec)
        .to_string_lossy()
        .into_owned()
}

fn transform(spec: &str, cache: &Path) -> Output {
    processor(
        &[
            "transform",
            "--spec",
            spec,
            "--component-cache",
            &cache.to_string_lossy(),
        ],
        INPUT,
    )
}

fn image_step(reference: &str, sha: &str) -> String {
    format!("{{image: {{reference: \"{reference}\", plainHttp: true}}, sha256: \"{sha}\"}}")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_image_component_is_pulled_pinned_and_then_served_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let wasm = std::fs::read(component("pii_redact")).unwrap();
    let reference = format!("{}/{}:1.0", oci::registry(), unique("pii"));
    let sha = oci::push(&reference, &wasm, "application/wasm");

    let local = format!("{{path: \"{}\"}}", component("pii_redact").display());
    let expected = transform(&spec(dir.path(), &local), &cache);
    assert!(expected.status.success(), "{}", stderr(&expected));
    let pulled = transform(&spec(dir.path(), &image_step(&reference, &sha)), &cache);
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    assert_eq!(
        String::from_utf8_lossy(&pulled.stdout),
        String::from_utf8_lossy(&expected.stdout),
        "the pulled component runs as the local file does"
    );
    assert!(
        !String::from_utf8_lossy(&pulled.stdout).contains("4111111111111111"),
        "the component ran"
    );
    assert_eq!(
        std::fs::read(cache.join(format!("{sha}.wasm"))).unwrap(),
        wasm,
        "the cache holds the component under its digest"
    );

    // The registry is gone for the next start: the cache answers.
    let gone = format!("127.0.0.1:{}/nowhere/pii:1.0", free_port());
    let cached = transform(&spec(dir.path(), &image_step(&gone, &sha)), &cache);
    assert!(cached.status.success(), "{}", stderr(&cached));
    assert_eq!(cached.stdout, pulled.stdout);

    // A damaged cache entry is not run: it is pulled again.
    std::fs::write(cache.join(format!("{sha}.wasm")), b"\0asm damaged").unwrap();
    let again = transform(&spec(dir.path(), &image_step(&reference, &sha)), &cache);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(again.stdout, pulled.stdout);
    assert_eq!(
        std::fs::read(cache.join(format!("{sha}.wasm"))).unwrap(),
        wasm
    );
}

#[test]
fn a_tag_moved_to_other_bytes_is_refused_before_the_download() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let reference = format!("{}/{}:latest", oci::registry(), unique("moved"));
    let pinned = oci::push(
        &reference,
        &std::fs::read(component("pii_redact")).unwrap(),
        "application/wasm",
    );
    let other = oci::push(
        &reference,
        &std::fs::read(component("dataflow_transform_mask")).unwrap(),
        "application/wasm",
    );
    assert_ne!(pinned, other);
    let output = transform(&spec(dir.path(), &image_step(&reference, &pinned)), &cache);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains(&format!("spec.transformations[0].wasm.image {reference}"))
            && err.contains(&format!("its component layer is sha256:{other}"))
            && err.contains("the tag now points at other bytes"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&cache)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing was stored: {left:?}");
}

#[test]
fn an_artifact_without_a_wasm_layer_or_an_unreachable_registry_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let reference = format!("{}/{}:1", oci::registry(), unique("plain"));
    let sha = oci::push(&reference, b"not a component", "application/octet-stream");
    let output = transform(&spec(dir.path(), &image_step(&reference, &sha)), &cache);
    let err = stderr(&output);
    assert!(
        !output.status.success()
            && err.contains("no application/wasm layer (found [\"application/octet-stream\"])"),
        "{err}"
    );

    let gone = format!("127.0.0.1:{}/nowhere/pii:1.0", free_port());
    let output = transform(&spec(dir.path(), &image_step(&gone, &sha)), &cache);
    let err = stderr(&output);
    assert!(
        !output.status.success()
            && err.contains(&format!(
                "spec.transformations[0].wasm.image {gone}: cannot read the manifest"
            )),
        "{err}"
    );

    let unpinned = spec(
        dir.path(),
        &format!("{{image: {{reference: \"{reference}\", plainHttp: true}}}}"),
    );
    let err = stderr(&processor(&["validate", "--spec", &unpinned], ""));
    assert!(
        err.contains("spec.transformations[0].wasm.sha256: is required with image"),
        "{err}"
    );
}
