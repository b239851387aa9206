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

use std::cmp::Ordering;

use crate::json::Value;

use crate::limits::{MAX_CONDITION_BYTES, MAX_CONDITION_DEPTH, MAX_CONDITION_TERMS};
use crate::path::FieldPath;

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

#[derive(Debug, Clone)]
enum Node {
    Truthy(FieldPath),
    Compare(FieldPath, Op, Literal),
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
        let tokens = tokenize(text).map_err(fail)?;
        let terms = tokens
            .iter()
            .filter(|t| matches!(t, Token::Path(_)))
            .count();
        if terms > MAX_CONDITION_TERMS {
            return Err(fail(format!(
                "it holds {terms} tests; at most {MAX_CONDITION_TERMS} are allowed"
            )));
        }
        if tokens.is_empty() {
            return Err(fail("empty condition".into()));
        }
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let root = parser.or().map_err(fail)?;
        if parser.pos != parser.tokens.len() {
            return Err(fail(format!(
                "unexpected {} after the end of the condition",
                parser.tokens[parser.pos].describe()
            )));
        }
        Ok(Self { root })
    }

    /// Evaluates the condition against a document.
    pub fn matches(&self, doc: &Value) -> bool {
        eval(&self.root, doc)
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

fn eval(node: &Node, doc: &Value) -> bool {
    match node {
        Node::Truthy(path) => is_truthy(path.get(doc)),
        Node::Compare(path, op, literal) => {
            compare(path.get(doc).unwrap_or(&Value::Null), *op, literal)
        }
        Node::Not(inner) => !eval(inner, doc),
        Node::All(operands) => operands.iter().all(|n| eval(n, doc)),
        Node::Any(operands) => operands.iter().any(|n| eval(n, doc)),
    }
}

fn compare(value: &Value, op: Op, literal: &Literal) -> bool {
    let ordering = match (value, literal) {
        (Value::Number(n), Literal::Num(x)) => n.as_f64().and_then(|f| f.partial_cmp(x)),
        (Value::String(s), Literal::Str(x)) => Some(s.as_str().cmp(x.as_str())),
        (Value::Bool(b), Literal::Bool(x)) => {
            return match op {
                Op::Eq => b == x,
                Op::Ne => b != x,
                _ => false,
            };
        }
        (Value::Null, Literal::Null) => {
            return op == Op::Eq;
        }
        _ => None,
    };
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

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Path(String),
    Op(Op),
    Lit(Literal),
    Not,
    And,
    Or,
    Open,
    Close,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Path(p) => format!("path {p:?}"),
            Token::Op(op) => format!("operator {op:?}"),
            Token::Lit(l) => format!("literal {l:?}"),
            Token::Not => "'!'".into(),
            Token::And => "'&&'".into(),
            Token::Or => "'||'".into(),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    // After a comparison operator a literal is expected, not a path.
    let mut expect_literal = false;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two = |a: char, b: char| c == a && next == Some(b);
        let token = if two('&', '&') {
            i += 2;
            Token::And
        } else if two('|', '|') {
            i += 2;
            Token::Or
        } else if two('=', '=') {
            i += 2;
            Token::Op(Op::Eq)
        } else if two('!', '=') {
            i += 2;
            Token::Op(Op::Ne)
        } else if two('>', '=') {
            i += 2;
            Token::Op(Op::Ge)
        } else if two('<', '=') {
            i += 2;
            Token::Op(Op::Le)
        } else if c == '>' {
            i += 1;
            Token::Op(Op::Gt)
        } else if c == '<' {
            i += 1;
            Token::Op(Op::Lt)
        } else if c == '!' {
            i += 1;
            Token::Not
        } else if c == '(' {
            i += 1;
            Token::Open
        } else if c == ')' {
            i += 1;
            Token::Close
        } else if c == '\'' || c == '"' {
            let (s, end) = read_quoted(&chars, i)?;
            i = end;
            Token::Lit(Literal::Str(s))
        } else if expect_literal {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"()&|".contains(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            Token::Lit(parse_literal(&word)?)
        } else {
            let (path, end) = read_path(&chars, i)?;
            i = end;
            Token::Path(path)
        };
        expect_literal = matches!(token, Token::Op(_));
        tokens.push(token);
    }
    Ok(tokens)
}

fn read_quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                out.push(chars[i + 1]);
                i += 2;
            }
            c if c == quote => return Ok((out, i + 1)),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err("unterminated string literal".into())
}

fn read_path(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut i = start;
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if c == '\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
        } else if c == '[' {
            depth += 1;
        } else if c == ']' {
            depth = depth.saturating_sub(1);
        } else if depth > 0 && (c == '\'' || c == '"') {
            quote = Some(c);
        } else if depth == 0 && (c.is_whitespace() || "()=<>!&|".contains(c)) {
            break;
        }
        i += 1;
    }
    if quote.is_some() || depth > 0 {
        return Err("unterminated bracket in path".into());
    }
    if i == start {
        // A lone `&`, `|` or `=`: nothing here is a path, and nothing else matched.
        return Err(format!("unexpected {:?}", chars[start]));
    }
    Ok((chars[start..i].iter().collect(), i))
}

fn parse_literal(word: &str) -> Result<Literal, String> {
    match word {
        "true" => Ok(Literal::Bool(true)),
        "false" => Ok(Literal::Bool(false)),
        "null" => Ok(Literal::Null),
        _ => word
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Literal::Num)
            .ok_or_else(|| {
                format!("{word:?} is not a literal (quote strings: 'text' or \"text\")")
            }),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Parentheses and `!` open around the current token.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn or(&mut self) -> Result<Node, String> {
        let mut operands = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            operands.push(self.and()?);
        }
        Ok(match operands.pop() {
            Some(only) if operands.is_empty() => only,
            Some(last) => {
                operands.push(last);
                Node::Any(operands)
            }
            None => return Err("empty condition".into()),
        })
    }

    fn and(&mut self) -> Result<Node, String> {
        let mut operands = vec![self.unary()?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            operands.push(self.unary()?);
        }
        Ok(match operands.pop() {
            Some(only) if operands.is_empty() => only,
            Some(last) => {
                operands.push(last);
                Node::All(operands)
            }
            None => return Err("empty condition".into()),
        })
    }

    /// Enters one level of parentheses or `!`, refusing to go past the limit.
    fn nest(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_CONDITION_DEPTH {
            return Err(format!(
                "parentheses and '!' nest more than {MAX_CONDITION_DEPTH} deep"
            ));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Node, String> {
        match self.next() {
            Some(Token::Not) => {
                self.nest()?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Node::Not(Box::new(inner)))
            }
            Some(Token::Open) => {
                self.nest()?;
                let inner = self.or()?;
                self.depth -= 1;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err("missing ')'".into()),
                }
            }
            Some(Token::Path(text)) => {
                let path = FieldPath::parse(&text).map_err(|e| e.to_string())?;
                if let Some(Token::Op(op)) = self.peek().cloned() {
                    self.pos += 1;
                    match self.next() {
                        Some(Token::Lit(literal)) => Ok(Node::Compare(path, op, literal)),
                        _ => Err(format!(
                            "expected a literal after the operator following {text:?}"
                        )),
                    }
                } else {
                    Ok(Node::Truthy(path))
                }
            }
            Some(other) => Err(format!("unexpected {}", other.describe())),
            None => Err("unexpected end of condition".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        Value::parse(text.as_bytes()).unwrap()
    }

    fn check(cond: &str, doc: &Value) -> bool {
        Condition::parse(cond).unwrap().matches(doc)
    }

    #[test]
    fn truthiness_table() {
        let doc = json(
            r#"{"t": true, "f": false, "s": "x", "e": "", "sf": "false", "n": 2, "z": 0, "o": {}, "a": [], "nul": null}"#,
        );
        for (path, expect) in [
            ("t", true),
            ("f", false),
            ("s", true),
            ("e", false),
            ("sf", false),
            ("n", true),
            ("z", false),
            ("o", true),
            ("a", true),
            ("nul", false),
            ("missing", false),
        ] {
            assert_eq!(check(path, &doc), expect, "{path}");
            assert_eq!(check(&format!("$.{path}"), &doc), expect, "$.{path}");
        }
    }

    #[test]
    fn typed_comparisons() {
        let doc = json(
            r#"{"level": "error", "code": 200, "big": 12345678901234567890, "ok": true, "n": null}"#,
        );
        assert!(check("$.level == 'error'", &doc));
        assert!(check("level == \"error\"", &doc));
        assert!(!check("$.code == '200'", &doc));
        assert!(check("$.code != '200'", &doc));
        assert!(check("$.code == 200", &doc));
        assert!(check("$.code >= 200 && $.code < 300", &doc));
        assert!(check("$.level > 'debug'", &doc));
        assert!(check("$.ok == true", &doc));
        assert!(!check("$.ok > false", &doc));
        assert!(check("$.n == null", &doc));
        assert!(check("$.missing == null", &doc));
        assert!(check("$.missing != 'x'", &doc));
        assert!(check("$.level != 'info'", &doc));
        assert!(check("big > 1e19", &doc));
    }

    #[test]
    fn boolean_structure() {
        let doc = json(r#"{"a": true, "b": false, "c": 1}"#);
        assert!(check("!b", &doc));
        assert!(check("a && !b", &doc));
        assert!(check("b || c == 1", &doc));
        assert!(!check("!(a || b)", &doc));
        assert!(check("(a || b) && (c > 0)", &doc));
        assert!(check("a&&c==1", &doc));
        assert!(check("$['a'] && $.c!=2", &doc));
    }

    #[test]
    fn bad_conditions_are_rejected() {
        for bad in [
            "", "a ==", "a == b c", "(a", "a &&", "== 1", "a == 'x", "$..x", "a b",
        ] {
            assert!(Condition::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused_not_a_stack_overflow() {
        let deep = format!("{}a{}", "(".repeat(2000), ")".repeat(2000));
        let err = Condition::parse(&deep).unwrap_err().to_string();
        assert!(err.contains("nest more than 32 deep"), "{err}");
        let nots = format!("{}a", "!".repeat(10_000));
        let err = Condition::parse(&nots).unwrap_err().to_string();
        assert!(err.contains("nest more than 32 deep"), "{err}");
        let ok = format!("{}a{}", "(".repeat(32), ")".repeat(32));
        assert!(check(&ok, &json(r#"{"a": 1}"#)));
    }

    #[test]
    fn long_chains_are_bounded_and_evaluate_flat() {
        let terms: Vec<String> = (0..MAX_CONDITION_TERMS).map(|i| format!("a{i}")).collect();
        let doc = json(r#"{"a0": 1}"#);
        // 256 tests joined by || is allowed and does not recurse per term.
        assert!(check(&terms.join(" || "), &doc));
        assert!(!check(&terms.join(" && "), &doc));
        let too_many = format!("{} || b", terms.join(" || "));
        let err = Condition::parse(&too_many).unwrap_err().to_string();
        assert!(err.contains("at most 256"), "{err}");
        let huge = "a && ".repeat(200_000) + "a";
        let err = Condition::parse(&huge).unwrap_err().to_string();
        assert!(err.contains("bytes long"), "{err}");
        assert!(err.len() < 400, "the error quotes only the start: {err}");
    }

    #[test]
    fn a_lone_operator_character_is_an_error_not_a_hang() {
        for text in ["a & b", "a | b", "a = 1", ".:'&$,<"] {
            assert!(Condition::parse(text).is_err(), "{text}");
        }
    }
}
