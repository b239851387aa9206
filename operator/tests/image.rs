//! The Dockerfile, checked by inspection (no Docker engine runs here): every file it
//! copies out of the build stage is one the build makes, the binaries match the
//! workspace's, the runtime user is not root, and the operator's processor pods
//! call the processor where the image puts it.

use std::path::PathBuf;

use dataflow_operator::desired::PROCESSOR_BINARY;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dockerfile() -> String {
    std::fs::read_to_string(workspace().join("Dockerfile")).unwrap()
}

/// Joins the Dockerfile's continuation lines into whole instructions.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

#[test]
fn dockerfile_copies_what_the_build_makes() {
    let text = dockerfile();
    let steps = instructions(&text);
    // The build stage runs `make build`, then copies these into /out.
    let build = steps
        .iter()
        .find(|s| s.starts_with("RUN make build"))
        .expect("the build stage runs `make build`");
    // The precompiled set is copied by pattern: every compilation `make build`
    // made into target/release/precompiled.
    let precompiled = "target/release/precompiled/*.cwasm";
    assert!(
        build.split_whitespace().any(|w| w == precompiled),
        "{build}"
    );
    let compiled = std::fs::read_dir(workspace().join("target/release/precompiled"))
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(
        compiled, 3,
        "make build precompiles the built-ins and the two runtimes"
    );
    assert!(
        steps.iter().any(
            |s| s == "COPY --from=build /out/precompiled/ /usr/local/lib/dataflow/precompiled/"
        ),
        "the precompiled set is not copied where the processor looks"
    );
    let built: Vec<&str> = build
        .split_whitespace()
        .filter(|w| w.starts_with("target/release/") && *w != precompiled)
        .collect();
    assert!(!built.is_empty(), "{build}");
    for path in &built {
        let file = workspace().join(path);
        assert!(
            file.exists(),
            "the Dockerfile copies {path}, which the build does not make"
        );
    }
    let names: Vec<&str> = built
        .iter()
        .filter(|p| !p.starts_with("target/release/runtimes/"))
        .filter_map(|p| p.rsplit('/').next())
        .collect();
    assert_eq!(names, ["dataflow-operator", "dataflow-processor"]);
    let runtimes: Vec<&str> = built
        .iter()
        .filter_map(|p| p.strip_prefix("target/release/runtimes/"))
        .collect();
    assert_eq!(
        runtimes,
        [
            dataflow_wasm_host::PYTHON_RUNTIME,
            dataflow_wasm_host::JAVASCRIPT_RUNTIME
        ]
    );
    // They go where the processor looks from /usr/local/bin (../lib/dataflow/runtimes).
    assert!(
        steps
            .iter()
            .any(|s| s == "COPY --from=build /out/runtimes/ /usr/local/lib/dataflow/runtimes/"),
        "the runtimes are not copied where the processor looks"
    );

    // The runtime stage takes exactly those from /out into /usr/local/bin.
    let copy = steps
        .iter()
        .find(|s| s.starts_with("COPY --from=build"))
        .expect("the runtime stage copies from the build stage");
    for name in &names {
        assert!(copy.contains(&format!("/out/{name}")), "{copy}");
    }
    assert!(copy.trim_end().ends_with("/usr/local/bin/"), "{copy}");
    assert_eq!(PROCESSOR_BINARY, "/usr/local/bin/dataflow-processor");

    let user = steps
        .iter()
        .rfind(|s| s.starts_with("USER "))
        .expect("a USER instruction");
    assert_eq!(user, "USER 65532:65532");
    assert!(
        steps
            .iter()
            .any(|s| s == "ENTRYPOINT [\"/usr/local/bin/dataflow-operator\"]")
    );
    assert!(
        steps.iter().filter(|s| s.starts_with("FROM ")).count() >= 2,
        "multi-stage"
    );
    // Everything the build needs is in the context: `.dockerignore` drops only
    // build output and VCS data.
    let ignore = std::fs::read_to_string(workspace().join(".dockerignore")).unwrap();
    for line in ignore.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            ["target/", "bench-out/", ".git/"].contains(&line.trim()),
            ".dockerignore drops {line}, which the build may need"
        );
    }
}
