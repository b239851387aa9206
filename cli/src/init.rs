//! `dataflow transform init`: a working project in a new directory, its transform,
//! a sample input, the output expected of it and a short README.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::project::{
    Language, PROJECT_FILE, Project, SAMPLE_EXPECTED, SAMPLE_INPUT, is_dns_label,
};

const SAMPLE: &str = include_str!("../templates/input.jsonl");
const PYTHON: &str = include_str!("../templates/python/transform.py");
const PYTHON_EXPECTED: &str = include_str!("../templates/python/expected.jsonl");
const TYPESCRIPT: &str = include_str!("../templates/typescript/transform.ts");
const TYPESCRIPT_EXPECTED: &str = include_str!("../templates/typescript/expected.jsonl");
const RUST_LIB: &str = include_str!("../templates/rust/src/lib.rs");
const RUST_CARGO: &str = include_str!("../templates/rust/Cargo.toml.in");
const RUST_EXPECTED: &str = include_str!("../templates/rust/expected.jsonl");
const RUST_GITIGNORE: &str = include_str!("../templates/rust/gitignore");

/// Where a Rust project finds the SDK.
#[derive(Debug, Clone)]
pub enum SdkSource {
    /// A checkout's `transforms-wasm/sdk` directory.
    Path(PathBuf),
    /// The repository holding the SDK.
    Git(String),
}

impl SdkSource {
    /// The dependency's TOML value.
    fn toml(&self) -> String {
        match self {
            SdkSource::Path(path) => format!("{{ path = {:?} }}", path.display().to_string()),
            SdkSource::Git(url) => {
                format!("{{ git = {url:?}, package = \"dataflow-transform-sdk\" }}")
            }
        }
    }

    /// The SDK of the checkout this binary was built in (`target/<profile>/dataflow`).
    pub fn beside_executable() -> Option<Self> {
        let exe = std::env::current_exe().ok()?;
        exe.ancestors()
            .skip(1)
            .take(4)
            .map(|dir| dir.join("transforms-wasm/sdk"))
            .find(|sdk| sdk.join("Cargo.toml").is_file())
            .and_then(|sdk| sdk.canonicalize().ok())
            .map(SdkSource::Path)
    }
}

/// Makes the project in `dir` (which must not exist or be empty).
pub fn init(
    dir: &Path,
    language: Language,
    name: Option<String>,
    sdk: Option<SdkSource>,
) -> anyhow::Result<Project> {
    let name = match name {
        Some(name) => name,
        None => name_from_dir(dir)?,
    };
    if !is_dns_label(&name) {
        bail!(
            "--name {name:?}: must be a Kubernetes name (lowercase letters, digits and '-', at most 63)"
        );
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} is not empty; init makes a new project", dir.display());
    }
    let (source, files): (Option<&str>, Vec<(String, String)>) = match language {
        Language::Python => (
            Some("transform.py"),
            vec![
                ("transform.py".into(), PYTHON.into()),
                (SAMPLE_EXPECTED.into(), PYTHON_EXPECTED.into()),
            ],
        ),
        Language::Typescript => (
            Some("transform.ts"),
            vec![
                ("transform.ts".into(), TYPESCRIPT.into()),
                (SAMPLE_EXPECTED.into(), TYPESCRIPT_EXPECTED.into()),
            ],
        ),
        Language::Rust => {
            let Some(sdk) = sdk else {
                bail!(
                    "a Rust project depends on the SDK: pass --sdk-path <checkout>/transforms-wasm/sdk or --sdk-git <repository URL>"
                );
            };
            let cargo = RUST_CARGO
                .replace("{{crate}}", &name)
                .replace("{{sdk}}", &sdk.toml());
            let lib = RUST_LIB.replace("{{type}}", &type_name(&name));
            (
                None,
                vec![
                    ("Cargo.toml".into(), cargo),
                    ("src/lib.rs".into(), lib),
                    (".gitignore".into(), RUST_GITIGNORE.into()),
                    (SAMPLE_EXPECTED.into(), RUST_EXPECTED.into()),
                ],
            )
        }
    };
    let project = Project {
        name: name.clone(),
        language,
        source: source.map(str::to_owned),
        config: Some(serde_json::json!({"currency": "EUR", "largeAmount": 1000})),
    };
    let mut all = files;
    all.push((SAMPLE_INPUT.into(), SAMPLE.into()));
    all.push((PROJECT_FILE.into(), project_file(&project)));
    all.push(("README.md".into(), readme(&project)));
    for (file, text) in all {
        let path = dir.join(&file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(project)
}

/// The project's name from its directory: `clean-orders` from `./clean-orders`.
fn name_from_dir(dir: &Path) -> anyhow::Result<String> {
    let base = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
        .replace(['_', ' ', '.'], "-");
    if is_dns_label(&base) {
        Ok(base)
    } else {
        bail!(
            "cannot make a Kubernetes name of {}; pass --name",
            dir.display()
        )
    }
}

/// `CleanOrders` from `clean-orders`.
fn type_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for part in name.split('-').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'T');
    }
    out
}

fn project_file(project: &Project) -> String {
    format!(
        "# A dataflow transform project: `dataflow transform test|build|package` read this.\n# config is the step's `config:`, handed to the transform.\n{}",
        project.to_yaml()
    )
}

fn readme(project: &Project) -> String {
    let (edit, build) = match project.language {
        Language::Rust => (
            "src/lib.rs",
            "`dataflow transform build .` makes the component (needs `rustup target add wasm32-wasip2`); `cargo test` runs it natively.",
        ),
        Language::Python => (
            "transform.py",
            "No build step: the source is the transform.",
        ),
        Language::Typescript => (
            "transform.ts",
            "No build step: the source is the transform.",
        ),
    };
    format!(
        "# {name}\n\n\
         Edit `{edit}`; `sample/input.jsonl` is what it gets, `sample/expected.jsonl` what it must give (`{{\"$error\": ...}}` where a message fails).\n\
         `dataflow transform test .` runs it in the real sandbox over the sample and shows the difference (`--update` rewrites the expectation).\n\
         {build}\n\
         `dataflow transform package . > {name}.yaml` prints the ConfigMap and the DataFlow step, its sha256 pinned.\n\
         `kubectl apply -f {name}.yaml`, then paste the step into your DataFlow's `transformations`.\n",
        name = project.name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_directory() {
        assert_eq!(
            name_from_dir(Path::new("/x/Clean_Orders")).unwrap(),
            "clean-orders"
        );
        assert!(name_from_dir(Path::new("/x/ä")).is_err());
        assert_eq!(type_name("clean-orders-2"), "CleanOrders2");
        assert_eq!(type_name("3d"), "T3d");
    }

    #[test]
    fn init_refuses_a_directory_with_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let err = init(dir.path(), Language::Python, Some("x".into()), None).unwrap_err();
        assert!(err.to_string().contains("is not empty"), "{err}");
        let err = init(&dir.path().join("new"), Language::Rust, None, None).unwrap_err();
        assert!(err.to_string().contains("--sdk-path"), "{err}");
    }
}
