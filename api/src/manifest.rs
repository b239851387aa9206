//! Reading a DataFlow spec: YAML or JSON, a whole manifest or a bare spec, alone or
//! in a file of several documents beside the Secrets it uses.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use serde_json::Value;

use crate::references::ObjectKey;
use crate::secrets::substitute;
use crate::{DataFlowSpec, FieldError, ResetRequest, ValidationErrors, validate};

/// A spec that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Not YAML/JSON, or not of the DataFlow shape.
    #[error("{0}")]
    Parse(String),
    /// The spec parses but breaks rules.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

impl From<ValidationErrors> for SpecError {
    fn from(errors: ValidationErrors) -> Self {
        SpecError::Invalid(errors)
    }
}

/// A loaded, validated spec and the DataFlow's identity.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// `metadata.name` of a manifest, if the file was one.
    pub name: Option<String>,
    /// `metadata.namespace` of a manifest, if set.
    pub namespace: Option<String>,
    /// The spec.
    pub spec: DataFlowSpec,
}

/// Largest spec text accepted, in bytes (Kubernetes keeps objects under 1.5 MiB).
pub const MAX_SPEC_BYTES: usize = 4 * 1024 * 1024;

/// Deepest nesting of mappings and sequences a spec text may have.
pub const MAX_SPEC_DEPTH: usize = 64;

/// Most documents one spec file may hold (a DataFlow and the Secrets it uses).
pub const MAX_DOCUMENTS: usize = 64;

/// Parses and validates spec text (YAML or JSON; a `kind: DataFlow` manifest or a
/// bare spec). A file of several YAML documents must hold exactly one DataFlow;
/// the `kind: Secret` documents beside it fill its `*SecretRef` fields, as the
/// operator does in a cluster, and documents of other kinds are ignored.
pub fn parse(text: &str) -> Result<LoadedSpec, SpecError> {
    check_shape(text)?;
    let documents = documents(text)?;
    let (document, secrets) = match documents.as_slice() {
        [] => return Err(SpecError::Parse("the file holds no document".into())),
        [only] => (only, Vec::new()),
        _ => pick_dataflow(&documents)?,
    };
    let (name, namespace, reset, body) = match document {
        // A document with any manifest key is a manifest, `kind:` or not.
        Value::Object(map) if is_manifest(map) => {
            let kind = map
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("DataFlow");
            if kind != "DataFlow" && kind != "DataFlowCron" {
                return Err(SpecError::Parse(format!(
                    "kind: expected DataFlow or DataFlowCron, got {kind:?}"
                )));
            }
            let meta = |key: &str| {
                map.get("metadata")
                    .and_then(|m| m.get(key))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let spec = map
                .get("spec")
                .cloned()
                .ok_or_else(|| SpecError::Parse("spec: required".into()))?;
            let spec = if kind == "DataFlowCron" {
                crate::dataflow_spec_of_cron(&spec).map_err(SpecError::Parse)?
            } else {
                spec
            };
            let reset = map
                .get("metadata")
                .and_then(|m| m.get("annotations"))
                .and_then(|a| a.get(crate::RESET_ANNOTATION))
                .and_then(Value::as_str)
                .map(str::to_owned);
            (meta("name"), meta("namespace"), reset, spec)
        }
        _ => (None, None, None, document.clone()),
    };
    let mut spec = deserialize_spec(body)?;
    if !secrets.is_empty() {
        let in_namespace = namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        let secrets = secrets_by_key(&secrets, in_namespace)?;
        let as_json =
            serde_json::to_value(&spec).map_err(|e| SpecError::Parse(format!("spec: {e}")))?;
        let resolved = substitute(&as_json, in_namespace, &secrets)
            .map_err(|e| SpecError::Parse(e.to_string()))?;
        spec = deserialize_spec(resolved)?;
    }
    validate(&spec)?;
    if let Some(reset) = reset {
        check_reset(&reset, &spec)?;
    }
    Ok(LoadedSpec {
        name,
        namespace,
        spec,
    })
}

/// A reset annotation must parse and fit the source, as the operator requires.
fn check_reset(text: &str, spec: &DataFlowSpec) -> Result<(), SpecError> {
    ResetRequest::for_spec(text, spec)
        .map(drop)
        .map_err(|error| {
            SpecError::Invalid(ValidationErrors(vec![FieldError {
                path: format!("metadata.annotations[{}]", crate::RESET_ANNOTATION),
                message: error.to_string(),
            }]))
        })
}

/// Namespace of a manifest that names none, as `kubectl apply` would use.
const DEFAULT_NAMESPACE: &str = "default";

fn is_manifest(map: &serde_json::Map<String, Value>) -> bool {
    ["kind", "apiVersion", "metadata", "spec"]
        .iter()
        .any(|key| map.contains_key(*key))
}

/// Every non-empty YAML document of `text`.
fn documents(text: &str) -> Result<Vec<Value>, SpecError> {
    let mut documents = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        if index >= MAX_DOCUMENTS {
            return Err(SpecError::Parse(format!(
                "the file holds more than {MAX_DOCUMENTS} YAML documents"
            )));
        }
        let value = Value::deserialize(document).map_err(|e| {
            let at = if index == 0 {
                String::new()
            } else {
                format!("document {}: ", index + 1)
            };
            SpecError::Parse(format!("{at}not valid YAML or JSON: {e}"))
        })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// The one DataFlow (or DataFlowCron) among several documents, and the Secrets
/// beside it.
fn pick_dataflow(documents: &[Value]) -> Result<(&Value, Vec<&Value>), SpecError> {
    let kind = |document: &Value| -> Option<String> {
        match document {
            Value::Object(map) if is_manifest(map) => Some(
                map.get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("DataFlow")
                    .to_owned(),
            ),
            _ => None,
        }
    };
    let mut dataflows = Vec::new();
    let mut secrets = Vec::new();
    let mut kinds = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        match kind(document).as_deref() {
            Some("DataFlow" | "DataFlowCron") => dataflows.push(document),
            Some("Secret") => secrets.push(document),
            Some(other) => kinds.push(other.to_owned()),
            None => {
                return Err(SpecError::Parse(format!(
                    "document {}: a file of several documents holds Kubernetes manifests \
                     (with kind, metadata and spec), not bare specs",
                    index + 1
                )));
            }
        }
    }
    match dataflows.as_slice() {
        [one] => Ok((one, secrets)),
        [] => Err(SpecError::Parse(format!(
            "none of the {} documents is a DataFlow (found {})",
            documents.len(),
            kinds.join(", ")
        ))),
        several => {
            let names: Vec<&str> = several
                .iter()
                .map(|d| {
                    d.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                })
                .collect();
            Err(SpecError::Parse(format!(
                "the file holds {} DataFlows ({}); give one per file",
                several.len(),
                names.join(", ")
            )))
        }
    }
}

/// The Secret documents by namespace and name (`in_namespace` when they name none).
fn secrets_by_key(
    documents: &[&Value],
    in_namespace: &str,
) -> Result<BTreeMap<ObjectKey, Secret>, SpecError> {
    let mut secrets = BTreeMap::new();
    for document in documents {
        let secret = Secret::deserialize(*document)
            .map_err(|e| SpecError::Parse(format!("a Secret document: {e}")))?;
        let name =
            secret.metadata.name.clone().ok_or_else(|| {
                SpecError::Parse("a Secret document: metadata.name: required".into())
            })?;
        let namespace = secret
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| in_namespace.to_owned());
        secrets.insert(ObjectKey::new(namespace, name), secret);
    }
    Ok(secrets)
}

/// The spec in `body`, with errors naming the field.
fn deserialize_spec(body: Value) -> Result<DataFlowSpec, SpecError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let at = e.path().to_string();
        let at = if at.is_empty() || at == "." {
            "spec".to_owned()
        } else {
            format!("spec.{at}")
        };
        SpecError::Parse(format!("{at}: {}", e.into_inner()))
    })
}

/// Refuses, before any parsing, a text too large or nested too deep for a spec.
/// The depth is measured in one pass: flow brackets, and block nesting by
/// indentation and `- ` markers; quoted text and comments do not count.
fn check_shape(text: &str) -> Result<(), SpecError> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(SpecError::Parse(format!(
            "the spec is {} bytes; at most {MAX_SPEC_BYTES} are accepted",
            text.len()
        )));
    }
    let too_deep = |number: usize| {
        SpecError::Parse(format!(
            "line {}: the spec nests deeper than {MAX_SPEC_DEPTH} levels",
            number + 1
        ))
    };
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    // The indentation of a line ending in `|` or `>`: its block text follows.
    let mut block_text: Option<usize> = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let content = trimmed.trim_start();
        if let Some(owner) = block_text {
            if content.is_empty() || indent > owner {
                continue;
            }
            block_text = None;
        }
        if quote.is_none() && flow == 0 {
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            while indents.last().is_some_and(|&top| top >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut dashes = 0;
        let mut rest = trimmed;
        while quote.is_none() && flow == 0 && (rest.starts_with("- ") || rest == "-") {
            dashes += 1;
            rest = rest.get(2..).unwrap_or("").trim_start_matches(' ');
        }
        // A quote opens a scalar only where a scalar may start.
        let mut scalar_start = true;
        let mut after_space = true;
        let mut escaped = false;
        for c in rest.chars() {
            match quote {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' && q == '"' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => {
                    match c {
                        '"' | '\'' if scalar_start => quote = Some(c),
                        '#' if scalar_start || after_space => break,
                        '[' | '{' => flow += 1,
                        ']' | '}' => flow = flow.saturating_sub(1),
                        _ => {}
                    }
                    if !c.is_whitespace() {
                        scalar_start = matches!(c, ':' | '[' | '{' | ',' | '-');
                    }
                    after_space = c.is_whitespace();
                }
            }
            if indents.len() + dashes + flow > MAX_SPEC_DEPTH {
                return Err(too_deep(number));
            }
        }
        if indents.len() + dashes + flow > MAX_SPEC_DEPTH {
            return Err(too_deep(number));
        }
        let value_end = rest.trim_end();
        if quote.is_none()
            && flow == 0
            && ["|", ">", "|-", ">-", "|+", ">+"]
                .iter()
                .any(|marker| value_end.ends_with(&format!(" {marker}")) || value_end == *marker)
        {
            block_text = Some(indent);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_and_bare_spec() {
        let manifest = "apiVersion: dataflow.dataflow.io/v1\nkind: DataFlow\nmetadata: {name: demo, namespace: ns}\nspec:\n  source: {type: stdin}\n  sink: {type: stdout}\n";
        let loaded = parse(manifest).unwrap();
        assert_eq!(loaded.name.as_deref(), Some("demo"));
        assert_eq!(loaded.namespace.as_deref(), Some("ns"));
        let bare = r#"{"source": {"type": "generator", "generator": {"count": 10}}, "sink": {"type": "stdout"}}"#;
        match parse(bare).unwrap().spec.source {
            crate::SourceSpec::Generator(generator) => assert_eq!(generator.count, Some(10)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse(
            "source: {type: stdin}\nsink: {type: postgresql, postgresql: {connectionString: x}}\n",
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "spec.sink.postgresql.table: required");
        let err = parse("source: {type: stdin}\nsink: {type: nosuch}\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.sink.type: unknown variant `nosuch`"),
            "{err}"
        );
        let err =
            parse("source: {type: generator, generator: {count: many}}\nsink: {type: stdout}\n")
                .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.source.generator.count: invalid type"),
            "{err}"
        );
        let err = parse("source: {type: stdin}\nsink: {type: postgresql, postgresql: {connectionString: x, table: t}, file: {path: x}}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.sink: the file block is set, but type is postgresql"
        );
        let err = parse("source: {type: kafka}\nsink: {type: stdout}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.source: type kafka needs a kafka block"
        );
        let err = parse(
            "source: {type: stdin}\nsink: {type: stdout}\ntransformations: [{type: flatten}]\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.transformations[0]: type flatten needs a flatten block"
        );
        let loaded =
            parse("metadata: {name: n}\nspec: {source: {type: stdin}, sink: {type: stdout}}\n")
                .unwrap();
        assert_eq!(loaded.name.as_deref(), Some("n"), "a manifest without kind");
        let err = parse("metadata: {name: n}\nsource: {type: stdin}\nsink: {type: stdout}\n")
            .unwrap_err();
        assert_eq!(err.to_string(), "spec: required");
        let err = parse("kind: Deployment\nspec: {}\n").unwrap_err();
        assert!(
            err.to_string().starts_with("kind: expected DataFlow"),
            "{err}"
        );
        let loaded = parse(
            "kind: DataFlowCron\nspec: {schedule: \"0 * * * *\", source: {type: generator, generator: {count: 1}}, sink: {type: stdout}}\n",
        )
        .unwrap();
        let execution = loaded.spec.execution.unwrap();
        assert_eq!(execution.schedule.as_deref(), Some("0 * * * *"));
        let err = parse("kind: DataFlowCron\nspec: {schedule: \"0 * * * *\", source: {type: stdin}, sink: {type: stdout}, sechdule: x}\n").unwrap_err();
        assert!(
            err.to_string().contains("sechdule"),
            "a typo is named: {err}"
        );
    }

    #[test]
    fn a_file_of_several_documents_yields_its_dataflow_with_its_secrets_filled_in() {
        let text = r#"
apiVersion: v1
kind: Secret
metadata: {name: kafka}
stringData: {brokers: "k1:9092, k2:9092", password: s3cret}
---
apiVersion: v1
kind: Secret
metadata: {name: group, namespace: other}
data: {id: b3JkZXJz}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: dataflow.dataflow.io/v1
kind: DataFlow
metadata: {name: flow}
spec:
  source:
    type: kafka
    kafka:
      brokersSecretRef: {name: kafka, key: brokers}
      topic: t
      consumerGroupSecretRef: {name: group, namespace: other, key: id}
      sasl: {mechanism: plain, username: u, passwordSecretRef: {name: kafka, key: password}}
  sink: {type: stdout}
"#;
        let loaded = parse(text).unwrap();
        assert_eq!(loaded.name.as_deref(), Some("flow"));
        let crate::SourceSpec::Kafka(kafka) = loaded.spec.source else {
            panic!("not kafka");
        };
        assert_eq!(kafka.brokers, ["k1:9092", "k2:9092"]);
        assert_eq!(kafka.consumer_group.as_deref(), Some("orders"));
        assert!(kafka.brokers_secret_ref.is_none());
        let sasl = kafka.sasl.unwrap();
        assert_eq!(sasl.password.as_deref(), Some("s3cret"));

        let missing = text.replace("key: password", "key: nosuch");
        assert_eq!(
            parse(&missing).unwrap_err().to_string(),
            "spec.source.kafka.sasl.passwordSecretRef: secret default/kafka has no key \"nosuch\""
        );
    }

    #[test]
    fn a_file_of_several_documents_needs_exactly_one_dataflow() {
        let dataflow = |name: &str| {
            format!(
                "kind: DataFlow\nmetadata: {{name: {name}}}\nspec: {{source: {{type: stdin}}, sink: {{type: stdout}}}}\n"
            )
        };
        let two = format!("{}---\n{}", dataflow("a"), dataflow("b"));
        assert_eq!(
            parse(&two).unwrap_err().to_string(),
            "the file holds 2 DataFlows (a, b); give one per file"
        );
        let none = "kind: Secret\nmetadata: {name: s}\n---\nkind: ConfigMap\nmetadata: {name: c}\n";
        assert_eq!(
            parse(none).unwrap_err().to_string(),
            "none of the 2 documents is a DataFlow (found ConfigMap)"
        );
        let bare = format!(
            "{}---\nsource: {{type: stdin}}\nsink: {{type: stdout}}\n",
            dataflow("a")
        );
        assert!(
            parse(&bare)
                .unwrap_err()
                .to_string()
                .starts_with("document 2: "),
            "a bare spec among manifests is refused"
        );
        let with_separators = format!("---\n{}---\n", dataflow("a"));
        assert_eq!(parse(&with_separators).unwrap().name.as_deref(), Some("a"));
        let spec_without_kind =
            "metadata: {name: n}\nspec:\n  source: {type: stdin}\n  sink: {type: stdout}\n";
        assert_eq!(parse(spec_without_kind).unwrap().name.as_deref(), Some("n"));
    }

    #[test]
    fn deep_or_huge_texts_are_refused_before_parsing() {
        let started = std::time::Instant::now();
        let flow = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse(&flow).unwrap_err().to_string();
        assert!(err.contains("nests deeper than 64"), "{err}");
        let mut block = String::new();
        for depth in 0..200 {
            block.push_str(&" ".repeat(depth));
            block.push_str("a:\n");
        }
        let err = parse(&block).unwrap_err().to_string();
        assert!(err.contains("line 64") || err.contains("line 65"), "{err}");
        let dashes = format!("{}x\n", "- ".repeat(1000));
        assert!(
            parse(&dashes)
                .unwrap_err()
                .to_string()
                .contains("nests deeper")
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let big = format!(
            "source: {{type: stdin}}\nsink: {{type: stdout}}\n#{}",
            "x".repeat(MAX_SPEC_BYTES)
        );
        assert!(
            parse(&big)
                .unwrap_err()
                .to_string()
                .contains("bytes; at most")
        );
    }

    #[test]
    fn an_apostrophe_in_plain_text_does_not_switch_the_check_off() {
        let text = format!("x: don't\ny: {}1{}\n", "[".repeat(100), "]".repeat(100));
        assert!(
            parse(&text)
                .unwrap_err()
                .to_string()
                .contains("nests deeper")
        );
    }

    #[test]
    fn block_text_is_not_counted() {
        let code = (0..200)
            .map(|i| format!("      {}x = [\n", " ".repeat(i % 7)))
            .collect::<String>();
        let text =
            format!("source: {{type: stdin}}\nsink: {{type: stdout}}\nnote: |\n{code}other: 1\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(!err.contains("nests deeper"), "{err}");
    }

    #[test]
    fn brackets_inside_quotes_and_comments_do_not_count() {
        let text = format!(
            "source: {{type: stdin}}  # {}\nsink: {{type: stdout}}\ntransformations: [{{type: filter, filter: {{condition: \"{}\"}}}}]\n",
            "[".repeat(200),
            "a == '[[[['"
        );
        assert!(parse(&text).is_ok(), "{:?}", parse(&text).err());
    }
}
