//! A transform project: the directory `dataflow transform init` makes, described by
//! its `dataflow-transform.yaml`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The project file's name, at the project's root.
pub const PROJECT_FILE: &str = "dataflow-transform.yaml";

/// The sample messages, one JSON document per line.
pub const SAMPLE_INPUT: &str = "sample/input.jsonl";

/// What the transform must make of the sample: one line per output, and a line
/// `{"$error": "<message>"}` where an input fails.
pub const SAMPLE_EXPECTED: &str = "sample/expected.jsonl";

/// The language a transform is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// A Rust crate built into a component with the SDK.
    Rust,
    /// A Python function, run by the Python runtime.
    Python,
    /// A TypeScript (or JavaScript) function, run by the JavaScript runtime.
    Typescript,
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::Typescript => "typescript",
        })
    }
}

/// A string as a JSON (and so YAML) scalar.
pub fn json_text(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// `dataflow-transform.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Project {
    /// The transform's name: the ConfigMap's name when packaged.
    pub name: String,
    /// Its language.
    pub language: Language,
    /// Python and TypeScript: the file defining `transform(doc, ctx)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The step's `config:`, handed to the transform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

/// A project that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The project file is missing or unreadable.
    #[error("cannot read {path}: {cause} (make a project with `dataflow transform init`)")]
    Read {
        /// The file.
        path: String,
        /// Why.
        cause: std::io::Error,
    },
    /// The project file is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why, with the field.
        reason: String,
    },
}

impl Project {
    /// Reads the project at `dir`.
    pub fn load(dir: &Path) -> Result<Self, ProjectError> {
        let path = dir.join(PROJECT_FILE);
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|cause| ProjectError::Read {
            path: shown.clone(),
            cause,
        })?;
        let project: Project =
            serde_norway::from_str(&text).map_err(|e| ProjectError::Invalid {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        let invalid = |reason: &str| ProjectError::Invalid {
            path: shown.clone(),
            reason: reason.to_owned(),
        };
        if !is_dns_label(&project.name) {
            return Err(invalid(
                "name: must be a Kubernetes name (lowercase letters, digits and '-', at most 63)",
            ));
        }
        match (project.language, &project.source) {
            (Language::Rust, Some(_)) => Err(invalid(
                "source: a Rust project is its crate (Cargo.toml); leave source out",
            )),
            (Language::Python | Language::Typescript, None) => {
                Err(invalid("source: name the file that defines transform"))
            }
            _ => Ok(project),
        }
    }

    /// The source file of a Python or TypeScript project.
    pub fn source_path(&self, dir: &Path) -> Option<PathBuf> {
        self.source.as_ref().map(|s| dir.join(s))
    }

    /// The project file's text; `config` is written as JSON (which YAML reads).
    pub fn to_yaml(&self) -> String {
        let mut text = format!(
            "name: {}\nlanguage: {}\n",
            json_text(&self.name),
            self.language
        );
        if let Some(source) = &self.source {
            text.push_str(&format!("source: {}\n", json_text(source)));
        }
        if let Some(config) = &self.config {
            text.push_str(&format!("config: {config}\n"));
        }
        text
    }
}

/// Whether `name` can name a ConfigMap: a DNS label.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Project, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PROJECT_FILE), text).unwrap();
        Project::load(dir.path()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_project_names_its_language_and_source() {
        let project = load(
            "name: clean-orders\nlanguage: python\nsource: transform.py\nconfig: {currency: EUR}\n",
        )
        .unwrap();
        assert_eq!(project.language, Language::Python);
        assert_eq!(project.config.unwrap()["currency"], "EUR");
        assert!(
            load("name: Clean\nlanguage: python\nsource: t.py\n")
                .unwrap_err()
                .contains("name: must be a Kubernetes name")
        );
        assert!(
            load("name: x\nlanguage: typescript\n")
                .unwrap_err()
                .contains("source: name the file")
        );
        let written = Project {
            config: Some(
                serde_json::from_str(
                    r#"{"rate": 1.25, "big": 12345678901234567890, "list": [1, "a"]}"#,
                )
                .unwrap(),
            ),
            ..project
        };
        assert_eq!(
            load(&written.to_yaml()).unwrap(),
            written,
            "the config survives a write and a read"
        );
        assert!(
            load("name: x\nlanguage: rust\nsourc: y\n")
                .unwrap_err()
                .contains("unknown field `sourc`")
        );
    }
}
