//! Reading condition text: tokens, then a tree.

use super::{Literal, METADATA_PREFIX, Node, Op, Subject};
use crate::limits::{MAX_CONDITION_DEPTH, MAX_CONDITION_TERMS};
use crate::path::FieldPath;

/// The tree of a condition's text, or why it is not one (the length is checked
/// by the caller).
pub(super) fn tree(text: &str) -> Result<Node, String> {
    let tokens = tokenize(text)?;
    let terms = tokens
        .iter()
        .filter(|t| matches!(t, Token::Path(_)))
        .count();
    if terms > MAX_CONDITION_TERMS {
        return Err(format!(
            "it holds {terms} tests; at most {MAX_CONDITION_TERMS} are allowed"
        ));
    }
    if tokens.is_empty() {
        return Err("empty condition".into());
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let root = parser.or()?;
    if parser.pos != parser.tokens.len() {
        return Err(format!(
            "unexpected {} after the end of the condition",
            parser.tokens[parser.pos].describe()
        ));
    }
    Ok(root)
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
                let subject = match text.strip_prefix(METADATA_PREFIX) {
                    Some("") => return Err("metadata. needs a key after it".into()),
                    Some(key) => Subject::Metadata(key.to_owned()),
                    None => Subject::Field(FieldPath::parse(&text).map_err(|e| e.to_string())?),
                };
                if let Some(Token::Op(op)) = self.peek().cloned() {
                    self.pos += 1;
                    match self.next() {
                        Some(Token::Lit(literal)) => Ok(Node::Compare(subject, op, literal)),
                        _ => Err(format!(
                            "expected a literal after the operator following {text:?}"
                        )),
                    }
                } else {
                    Ok(Node::Truthy(subject))
                }
            }
            Some(other) => Err(format!("unexpected {}", other.describe())),
            None => Err("unexpected end of condition".into()),
        }
    }
}
