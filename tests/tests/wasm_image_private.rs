//! `wasm.image` from a private registry: the real Distribution registry of
//! `make services` that asks for a password (htpasswd), reached with the
//! credentials a cluster gives, a `kubernetes.io/dockerconfigjson` Secret (what
//! `kubectl create secret docker-registry` makes) or a user and a password
//! Secret; a wrong or missing credential is refused naming the step, and no
//! credential reaches the output.

use std::path::Path;
use std::process::Output;

use base64::Engine;
use dataflow_tests::oci;
use dataflow_tests::services::unique;
use dataflow_tests::{component, processor, write_file};

const INPUT: &str = "{\"user\":\"ana\",\"card\":\"4111111111111111\"}\n";

/// A DataFlow running the image at `reference` (pinned at `sha`) with `auth`
/// (YAML fields of `wasm.image`), beside `secret` (a Secret document).
fn manifest(dir: &Path, reference: &str, sha: &str, auth: &str, secret: &str) -> String {
    let text = format!(
        r#"{secret}
---
apiVersion: dataflow.dataflow.io/v1
kind: DataFlow
metadata: {{name: private-image}}
spec:
  source: {{type: stdin}}
  sink: {{type: stdout}}
  transformations:
    - type: wasm
      wasm:
        image: {{reference: "{reference}", plainHttp: true, {auth}}}
        sha256: "{sha}"
"#
    );
    write_file(dir, "flow.yaml", &text)
        .to_string_lossy()
        .into_owned()
}

/// A `kubernetes.io/dockerconfigjson` Secret named regcred logging `user` in
/// to `registry` with `password`.
fn docker_config_secret(registry: &str, user: &str, password: &str) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let config = serde_json::json!({
        "auths": {registry: {"auth": engine.encode(format!("{user}:{password}"))}}
    });
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: regcred}}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
        engine.encode(config.to_string())
    )
}

fn run(manifest: &str, cache: &Path) -> Output {
    processor(
        &[
            "transform",
            "--spec",
            manifest,
            "--component-cache",
            &cache.to_string_lossy(),
        ],
        INPUT,
    )
}

/// The pii_redact component pushed to the private registry; its reference and sha256.
fn pushed(name: &str) -> (String, String) {
    let reference = format!("{}/{}:1.0", oci::private_registry(), unique(name));
    let wasm = std::fs::read(component("pii_redact")).unwrap();
    let sha = oci::push_as(
        &reference,
        &wasm,
        "application/wasm",
        Some(&oci::private_login()),
    );
    (reference, sha)
}

fn assert_redacted(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("\"user\":\"ana\"") && !stdout.contains("4111111111111111"),
        "the pulled component ran: {stdout}"
    );
}

#[test]
fn a_private_image_is_pulled_with_a_docker_config_secret_or_a_password_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (reference, sha) = pushed("private");
    let (user, password) = oci::private_login();

    let with_docker_config = manifest(
        dir.path(),
        &reference,
        &sha,
        "dockerConfigSecretRef: {name: regcred, key: .dockerconfigjson}",
        &docker_config_secret(&oci::private_registry(), &user, &password),
    );
    assert_redacted(&run(&with_docker_config, &dir.path().join("cache-a")));

    let password_secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: registry}}\nstringData: {{password: \"{password}\"}}\n"
    );
    let with_password = manifest(
        dir.path(),
        &reference,
        &sha,
        &format!("username: {user}, passwordSecretRef: {{name: registry, key: password}}"),
        &password_secret,
    );
    assert_redacted(&run(&with_password, &dir.path().join("cache-b")));
}

#[test]
fn a_wrong_or_missing_credential_is_refused_naming_the_step_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (reference, sha) = pushed("refused");
    let (user, _) = oci::private_login();
    let wrong = "not-the-password-9d1c";
    let cases = [
        (
            docker_config_secret(&oci::private_registry(), &user, wrong),
            "dockerConfigSecretRef: {name: regcred, key: .dockerconfigjson}",
            "",
        ),
        (
            docker_config_secret("other.example.com", &user, wrong),
            "dockerConfigSecretRef: {name: regcred, key: .dockerconfigjson}",
            "no entry for the registry",
        ),
        (
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: registry}}\nstringData: {{password: \"{wrong}\"}}\n"
            ),
            "username: dataflow, passwordSecretRef: {name: registry, key: password}",
            "",
        ),
    ];
    for (i, (secret, auth, also)) in cases.iter().enumerate() {
        let file = manifest(dir.path(), &reference, &sha, auth, secret);
        let cache = dir.path().join(format!("cache-{i}"));
        let output = run(&file, &cache);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "case {i} ran: {stderr}");
        assert!(
            stderr.contains(&format!(
                "spec.transformations[0].wasm.image {reference}: cannot read the manifest"
            )) && stderr.contains(also),
            "case {i}: {stderr}"
        );
        assert!(
            !stderr.contains(wrong),
            "case {i} shows the password: {stderr}"
        );
        assert!(
            String::from_utf8_lossy(&output.stdout).is_empty(),
            "case {i} wrote output"
        );
        assert!(
            !cache.join(format!("{sha}.wasm")).exists(),
            "case {i} stored the component"
        );
    }
}
