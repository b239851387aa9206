use std::fmt;

use smol_str::SmolStr;

use super::{Map, Number, Value, find_special, key_shape};

/// Deepest nesting accepted; deeper documents are rejected rather than risking the
/// stack.
const MAX_DEPTH: usize = crate::limits::MAX_JSON_DEPTH;

/// Objects larger than this check duplicate keys through a hash set.
const LINEAR_KEY_CHECK: usize = 32;

/// Why a document is not valid JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    reason: &'static str,
    offset: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

pub(super) fn parse(bytes: &[u8]) -> Result<Value, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError {
        reason: "invalid UTF-8",
        offset: e.valid_up_to(),
    })?;
    let mut parser = Parser {
        text,
        bytes,
        pos: 0,
        depth: 0,
    };
    parser.skip_ws();
    let value = parser.value()?;
    parser.skip_ws();
    if parser.pos != bytes.len() {
        return Err(parser.fail("unexpected characters after the document"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn fail(&self, reason: &'static str) -> ParseError {
        ParseError {
            reason,
            offset: self.pos,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.literal("true", "expected `true`", Value::Bool(true)),
            Some(b'f') => self.literal("false", "expected `false`", Value::Bool(false)),
            Some(b'n') => self.literal("null", "expected `null`", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.fail("expected a value")),
            None => Err(self.fail("unexpected end of input")),
        }
    }

    fn literal(
        &mut self,
        word: &str,
        reason: &'static str,
        value: Value,
    ) -> Result<Value, ParseError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.fail(reason))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.fail("nesting is too deep"));
        }
        self.pos += 1;
        self.skip_ws();
        Ok(())
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        let mut map = Map::with_capacity(8);
        let mut seen: Option<std::collections::HashSet<SmolStr>> = None;
        // A 64-bit signature of the keys so far (one bit per key shape): a key whose
        // bit is clear cannot be a duplicate, so most keys skip the search.
        let mut shapes = 0u64;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Object(map));
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.fail("expected a key"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.fail("expected `:`"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value()?;
            // Duplicate keys: the last one wins, as in most JSON libraries.
            let bit = key_shape(&key);
            let maybe_duplicate = shapes & bit != 0;
            shapes |= bit;
            if seen.is_none() && maybe_duplicate && map.len() >= LINEAR_KEY_CHECK {
                seen = Some(map.keys().cloned().collect());
            }
            match &mut seen {
                Some(seen) => {
                    if seen.insert(key.clone()) {
                        map.push_unchecked(key, value);
                    } else {
                        map.insert(key, value);
                    }
                }
                None if maybe_duplicate => {
                    map.insert(key, value);
                }
                None => map.push_unchecked(key, value),
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.fail("expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.fail("expected `,` or `]`")),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.fail("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.fail("expected a digit after `.`"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.fail("expected a digit in the exponent"));
            }
        }
        if let Some(b'0'..=b'9') = self.peek() {
            return Err(self.fail("leading zeros are not allowed"));
        }
        Ok(Value::Number(Number(SmolStr::new(
            &self.text[start..self.pos],
        ))))
    }

    /// Parses a string starting at its opening quote.
    fn string(&mut self) -> Result<SmolStr, ParseError> {
        self.pos += 1;
        let start = self.pos;
        self.pos = find_special(self.bytes, self.pos);
        match self.peek() {
            Some(b'"') => {
                let s = SmolStr::new(&self.text[start..self.pos]);
                self.pos += 1;
                Ok(s)
            }
            Some(b'\\') => self.escaped_string(start),
            Some(_) => Err(self.fail("control character in a string")),
            None => Err(self.fail("unterminated string")),
        }
    }

    fn escaped_string(&mut self, start: usize) -> Result<SmolStr, ParseError> {
        let mut out = String::from(&self.text[start..self.pos]);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(SmolStr::from(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let c = self.unicode_escape()?;
                            out.push(c);
                            continue;
                        }
                        _ => return Err(self.fail("invalid escape")),
                    };
                    self.pos += 1;
                    out.push(c);
                }
                Some(0..=0x1f) => return Err(self.fail("control character in a string")),
                Some(_) => {
                    let run = self.pos;
                    self.pos = find_special(self.bytes, self.pos);
                    out.push_str(&self.text[run..self.pos]);
                }
                None => return Err(self.fail("unterminated string")),
            }
        }
    }

    /// After `\u`: four hex digits, or a surrogate pair written as two escapes.
    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        let high = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&high) {
            if !self.bytes[self.pos..].starts_with(b"\\u") {
                return Err(self.fail("unpaired surrogate"));
            }
            self.pos += 2;
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(self.fail("unpaired surrogate"));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| self.fail("unpaired surrogate"))
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.fail("expected four hex digits"))?;
        let value =
            u32::from_str_radix(digits, 16).map_err(|_| self.fail("expected four hex digits"))?;
        self.pos += 4;
        Ok(value)
    }
}
