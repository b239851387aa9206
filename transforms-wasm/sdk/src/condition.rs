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
//! A bare path is true when the value exists and is truthy (`true`, a non-empty
//! string other than `"false"`, a non-zero number, any object or array). Comparisons
//! are typed: numbers numerically, strings lexically (by bytes), booleans and null by
//! equality only. Comparing different types is false, except `!=` which is true.
//! A missing field compares as `null`. A path with wildcards uses its first match.

use std::cmp::Ordering;

use crate::json::Value;

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
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
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
            text: text.to_owned(),
            reason,
        };
        let tokens = tokenize(text).map_err(fail)?;
        if tokens.is_empty() {
            return Err(fail("empty condition".into()));
        }
        let mut parser = Parser { tokens, pos: 0 };
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
        Node::And(a, b) => eval(a, doc) && eval(b, doc),
        Node::Or(a, b) => eval(a, doc) || eval(b, doc),
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
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            left = Node::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, String> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            left = Node::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, String> {
        match self.next() {
            Some(Token::Not) => Ok(Node::Not(Box::new(self.unary()?))),
            Some(Token::Open) => {
                let inner = self.or()?;
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
}
