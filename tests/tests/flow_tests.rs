//! `dataflow test` over every flow test file the project keeps: one per
//! example in `examples/tests/`, and one per documentation example and sample
//! of the Go original in `tests/flows/go/` (copied there unchanged, so a clone
//! has them). Each must pass, every example with transformations must have
//! one, and a broken expectation must fail with a diff.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dataflow_tests::{cli_bin, workspace, write_file};

/// The `NAME.tests.yaml` files of a directory, with the flow each tests.
fn test_files(tests: &Path, flows: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut found: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(tests)
        .unwrap_or_else(|e| panic!("{}: {e}", tests.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter_map(|path| {
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(".tests.yaml")?
                .to_owned();
            Some((flows.join(format!("{name}.yaml")), path))
        })
        .collect();
    found.sort();
    found
}

fn dataflow_test(flow: &Path, tests: &Path) -> Output {
    Command::new(cli_bin())
        .arg("test")
        .args([flow, tests])
        .output()
        .expect("the dataflow binary runs (build it with `make build`)")
}

fn assert_all_pass(files: &[(PathBuf, PathBuf)]) {
    let mut failures = Vec::new();
    for (flow, tests) in files {
        assert!(
            flow.exists(),
            "{} tests {}, which does not exist",
            tests.display(),
            flow.display()
        );
        let out = dataflow_test(flow, tests);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains(" 0 failed") {
            failures.push(format!(
                "{}:\n{stdout}{}",
                tests.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "flow tests failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_example_has_flow_tests_and_they_pass() {
    let examples = workspace().join("examples");
    let files = test_files(&examples.join("tests"), &examples);
    let tested: Vec<&Path> = files.iter().map(|(flow, _)| flow.as_path()).collect();
    for entry in std::fs::read_dir(&examples).expect("examples/") {
        let path = entry.expect("an entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        // custom-wasm.yaml runs a component from a ConfigMap that only the
        // cluster holds; its component has its own `dataflow transform test`.
        if path.ends_with("custom-wasm.yaml") {
            continue;
        }
        assert!(
            tested.contains(&path.as_path()),
            "{} has no examples/tests/*.tests.yaml",
            path.display()
        );
    }
    assert_all_pass(&files);
}

#[test]
fn the_go_originals_documented_flows_pass_their_tests() {
    let dir = workspace().join("tests/flows/go");
    let files = test_files(&dir, &dir);
    assert!(
        files.len() >= 20,
        "only {} Go flows have tests",
        files.len()
    );
    assert_all_pass(&files);
}

#[test]
fn a_wrong_expectation_fails_with_a_diff() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let flow = workspace().join("examples/router.yaml");
    let tests = write_file(
        dir.path(),
        "wrong.tests.yaml",
        "tests:\n  - name: passes\n    input: [{level: info}]\n    expect: {sink: [{level: info}]}\n  \
         - name: expects the wrong route\n    input: [{level: error, n: 1}]\n    expect:\n      \
         sink: [{level: error, n: 1}]\n      routes: {1: [{level: error, n: 1}]}\n",
    );
    let out = dataflow_test(&flow, &tests);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok      passes"), "{stdout}");
    assert!(
        stdout.contains("FAILED  expects the wrong route"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sink:\n- {\"level\":\"error\",\"n\":1}"),
        "{stdout}"
    );
    assert!(
        stdout.contains("route 1:\n- {\"level\":\"error\",\"n\":1}"),
        "{stdout}"
    );
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");
}

#[test]
fn a_timestamp_pattern_must_match_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let flow = workspace().join("examples/replay-orders.yaml");
    let wrong = write_file(
        dir.path(),
        "wrong.tests.yaml",
        "tests:\n  - name: stamped in 1999\n    input: [{id: 1}]\n    expect:\n      \
         sink: [{id: 1, replayed_at: {$matches: \"^1999-\"}}]\n",
    );
    let out = dataflow_test(&flow, &wrong);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let broken = write_file(
        dir.path(),
        "broken.tests.yaml",
        "tests:\n  - name: t\n    input: [{id: 1}]\n    expect: {sink: [{id: {$matches: \"(\"}}]}\n",
    );
    let out = dataflow_test(&flow, &broken);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("test \"t\"") && stderr.contains("is not a regular expression"),
        "{stderr}"
    );
}
