//! The condition language of `filter` and `router`.
//!
//! ```text
//! cond    := or
//! or      := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | "(" cond ")" | path [op literal]
//! op      := "==" | "!=" | ">" | ">=" | "<" | "<="
//! literal := 'text' | "text" | number | true | false | null
//! ```
//!
//! A condition is at most [`MAX_CONDITION_BYTES`] long, nests parentheses and `!`
//! at most [`MAX_CONDITION_DEPTH`] deep and holds at most [`MAX_CONDITION_TERMS`]
//! tests; `&&` and `||` chains are kept flat, so evaluation depth is the nesting
//! depth, whatever the length.
//!
//! A bare path is true when the value exists and is truthy (`true`, a non-empty
//! string other than `"false"`, a non-zero number, any object or array). Comparisons
//! are typed: numbers numerically, strings lexically (by bytes), booleans and null by
//! equality only. Comparing different types is false, except `!=` which is true.
//! A missing field compares as `null`. A path with wildcards uses its first match.
//!
//! A dotted path starting `metadata.` reads the message's metadata instead of its
//! document (`metadata.topic`, `metadata.key`, `metadata.headers.trace-id`,
//! `metadata.table`); the JSONPath form `$.metadata.x` still reads the document.
//! Metadata values are text: truthy like strings, compared as strings with a string
//! literal, as numbers with a number literal (when the text is a number), as
//! booleans with `true`/`false`; a missing key is `null`.

use std::cmp::Ordering;

use crate::json::Value;

use crate::limits::MAX_CONDITION_BYTES;
use crate::message::find_meta;
use crate::path::FieldPath;

mod parse;
#[cfg(test)]
mod tests;

/// A parsed condition.
#[derive(Debug, Clone)]
pub struct Condition {
    root: Node,
}

/// A condition that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid condition {text:?}: {reason}")]
pub struct ConditionError {
    text: String,
    reason: String,
}

/// Prefix of a condition path that reads message metadata.
const METADATA_PREFIX: &str = "metadata.";

/// What a test looks at.
#[derive(Debug, Clone)]
enum Subject {
    /// A field of the document.
    Field(FieldPath),
    /// A metadata key (`metadata.<key>`).
    Metadata(String),
}

#[derive(Debug, Clone)]
enum Node {
    Truthy(Subject),
    Compare(Subject, Op, Literal),
    Not(Box<Node>),
    /// Every operand holds (at least two).
    All(Vec<Node>),
    /// Some operand holds (at least two).
    Any(Vec<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

impl Condition {
    /// Parses a condition.
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        let fail = |reason: String| ConditionError {
            text: shown(text),
            reason,
        };
        if text.len() > MAX_CONDITION_BYTES {
            return Err(fail(format!(
                "it is {} bytes long; at most {MAX_CONDITION_BYTES} are allowed",
                text.len()
            )));
        }
        let root = parse::tree(text).map_err(fail)?;
        Ok(Self { root })
    }

    /// Evaluates the condition against a message's document and metadata.
    pub fn matches(&self, doc: &Value, metadata: &[(String, String)]) -> bool {
        eval(&self.root, doc, metadata)
    }
}

/// The condition text as an error shows it: whole when short, else its start.
fn shown(text: &str) -> String {
    const SHOWN: usize = 200;
    if text.len() <= SHOWN {
        return text.to_owned();
    }
    let mut end = SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

/// The truthiness rule shared with the Go original's filter.
pub fn is_truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty() && s.as_str() != "false",
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::Array(_)) | Some(Value::Object(_)) => true,
    }
}

fn eval(node: &Node, doc: &Value, metadata: &[(String, String)]) -> bool {
    match node {
        Node::Truthy(Subject::Field(path)) => is_truthy(path.get(doc)),
        Node::Truthy(Subject::Metadata(key)) => {
            find_meta(metadata, key).is_some_and(|text| !text.is_empty() && text != "false")
        }
        Node::Compare(Subject::Field(path), op, literal) => {
            compare(path.get(doc).unwrap_or(&Value::Null), *op, literal)
        }
        Node::Compare(Subject::Metadata(key), op, literal) => {
            compare_text(find_meta(metadata, key), *op, literal)
        }
        Node::Not(inner) => !eval(inner, doc, metadata),
        Node::All(operands) => operands.iter().all(|n| eval(n, doc, metadata)),
        Node::Any(operands) => operands.iter().any(|n| eval(n, doc, metadata)),
    }
}

fn compare(value: &Value, op: Op, literal: &Literal) -> bool {
    let ordering = match (value, literal) {
        (Value::Number(n), Literal::Num(x)) => n.as_f64().and_then(|f| f.partial_cmp(x)),
        (Value::String(s), Literal::Str(x)) => Some(s.as_str().cmp(x.as_str())),
        (Value::Bool(b), Literal::Bool(x)) => return equality(b == x, op),
        (Value::Null, Literal::Null) => return op == Op::Eq,
        _ => None,
    };
    by_ordering(ordering, op)
}

/// A metadata value (text, or missing) against a literal.
fn compare_text(text: Option<&str>, op: Op, literal: &Literal) -> bool {
    let Some(text) = text else {
        return compare(&Value::Null, op, literal);
    };
    let ordering = match literal {
        Literal::Str(x) => Some(text.cmp(x.as_str())),
        Literal::Num(x) => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|f| f.partial_cmp(x)),
        Literal::Bool(x) => match text {
            "true" => return equality(*x, op),
            "false" => return equality(!*x, op),
            _ => None,
        },
        Literal::Null => None,
    };
    by_ordering(ordering, op)
}

/// `==`/`!=` for types that have no order; other operators are false.
fn equality(equal: bool, op: Op) -> bool {
    match op {
        Op::Eq => equal,
        Op::Ne => !equal,
        _ => false,
    }
}

/// The comparison's result from the operands' order; `None` (different types)
/// is false except for `!=`.
fn by_ordering(ordering: Option<Ordering>, op: Op) -> bool {
    match ordering {
        Some(ord) => match op {
            Op::Eq => ord == Ordering::Equal,
            Op::Ne => ord != Ordering::Equal,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
        },
        None => op == Op::Ne,
    }
}
