//! Field paths in both styles the DataFlow spec accepts.
//!
//! - Dotted (gjson style, as in the Go original): `user.email`, `items.0.sku`,
//!   `items.#.sku` or `items.*.sku` (every element), `a\.b` for a key containing a dot.
//!   A numeric segment is an array index on arrays and a key on objects.
//! - JSONPath starting with `$`: `$.user.email`, `$.items[0].sku`, `$.items[*].card`,
//!   `$['odd key']`, `$.*`, negative indices (`[-1]` is the last element).
//!   Recursive descent (`..`), filters and unions are not supported and are rejected
//!   when the path is parsed.
//!
//! Paths are parsed once (at config time) and applied many times.

use std::borrow::Cow;
use std::fmt;

use crate::json::{Map, Value};
use crate::limits::{MAX_PATH_BYTES, MAX_PATH_SEGMENTS};

/// A path as an error shows it: whole when short, else its start.
fn shown(text: &str) -> String {
    const SHOWN: usize = 120;
    if text.len() <= SHOWN {
        return text.to_owned();
    }
    let mut end = SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// A parsed field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// An object key.
    Key(String),
    /// An array index (negative counts from the end).
    Index(i64),
    /// A dotted numeric segment: index on arrays, key on objects.
    KeyOrIndex(String, usize),
    /// Every child of an object or array.
    Wildcard,
}

/// A path that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path {path:?}: {reason}")]
pub struct PathError {
    path: String,
    reason: &'static str,
}

impl FieldPath {
    /// Parses a dotted or `$`-prefixed JSONPath field path.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let fail = |reason| PathError {
            path: shown(text),
            reason,
        };
        if text.len() > MAX_PATH_BYTES {
            return Err(fail("the path is longer than 1024 bytes"));
        }
        let segments = if let Some(rest) = text.strip_prefix('$') {
            parse_json_path(rest).map_err(fail)?
        } else {
            parse_dotted(text).map_err(fail)?
        };
        if segments.is_empty() {
            return Err(fail("the path must name a field, not the whole document"));
        }
        if segments.len() > MAX_PATH_SEGMENTS {
            return Err(fail("the path has more than 32 segments"));
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The path as written in the config.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the path can match several locations.
    pub fn has_wildcard(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Wildcard))
    }

    /// The name of the last segment (`email` for `user.email`, `0` for `$.items[0]`,
    /// `*` for a trailing wildcard).
    pub fn last_name(&self) -> Cow<'_, str> {
        match self.segments.last() {
            Some(Segment::Key(k)) | Some(Segment::KeyOrIndex(k, _)) => Cow::Borrowed(k),
            Some(Segment::Index(i)) => Cow::Owned(i.to_string()),
            Some(Segment::Wildcard) | None => Cow::Borrowed("*"),
        }
    }

    /// The first value the path selects.
    pub fn get<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let mut found = None;
        visit(root, &self.segments, &mut |v| {
            found = Some(v);
            false
        });
        found
    }

    /// Every value the path selects, in document order.
    pub fn get_all<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut found = Vec::new();
        visit(root, &self.segments, &mut |v| {
            found.push(v);
            true
        });
        found
    }

    /// Calls `f` on every selected value; returns how many there were.
    pub fn for_each_mut(&self, root: &mut Value, f: &mut dyn FnMut(&mut Value)) -> usize {
        visit_mut(root, &self.segments, f)
    }

    /// Removes every selected value (object keys keep their order); returns how many.
    pub fn remove(&self, root: &mut Value) -> usize {
        let (last, parents) = self.split_last();
        let mut removed = 0;
        visit_mut(root, parents, &mut |parent| {
            removed += remove_child(parent, last);
        });
        removed
    }

    /// Removes and returns the value at a path without wildcards.
    pub fn take(&self, root: &mut Value) -> Option<Value> {
        let (last, parents) = self.split_last();
        let mut parent = root;
        for segment in parents {
            parent = child_mut(parent, segment)?;
        }
        take_child(parent, last)
    }

    /// Sets the value at a path without wildcards, creating missing objects on the
    /// way (a scalar in the way is replaced by an object). Returns false when the
    /// path runs through an array index that does not exist.
    pub fn set(&self, root: &mut Value, value: Value) -> bool {
        let (last, parents) = self.split_last();
        let mut current = root;
        for segment in parents {
            current = match step_or_create(current, segment) {
                Some(next) => next,
                None => return false,
            };
        }
        set_child(current, last, value)
    }

    fn split_last(&self) -> (&Segment, &[Segment]) {
        // `parse` guarantees at least one segment.
        match self.segments.split_last() {
            Some((last, parents)) => (last, parents),
            None => (&Segment::Wildcard, &[]),
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_dotted(text: &str) -> Result<Vec<Segment>, &'static str> {
    if text.is_empty() {
        return Err("empty path");
    }
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => current.push(escaped),
                None => return Err("dangling escape at the end"),
            },
            '.' => segments.push(dotted_segment(std::mem::take(&mut current))?),
            other => current.push(other),
        }
    }
    segments.push(dotted_segment(current)?);
    Ok(segments)
}

fn dotted_segment(name: String) -> Result<Segment, &'static str> {
    if name.is_empty() {
        return Err("empty segment");
    }
    if name == "*" || name == "#" {
        return Ok(Segment::Wildcard);
    }
    if name.bytes().all(|b| b.is_ascii_digit())
        && let Ok(index) = name.parse::<usize>()
    {
        return Ok(Segment::KeyOrIndex(name, index));
    }
    Ok(Segment::Key(name))
}

fn parse_json_path(rest: &str) -> Result<Vec<Segment>, &'static str> {
    let bytes = rest.as_bytes();
    let mut segments = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                i += 1;
                match bytes.get(i) {
                    Some(b'.') => return Err("recursive descent (..) is not supported"),
                    Some(b'*') => {
                        segments.push(Segment::Wildcard);
                        i += 1;
                    }
                    Some(_) => {
                        let start = i;
                        while i < bytes.len() && bytes[i] != b'.' && bytes[i] != b'[' {
                            i += 1;
                        }
                        segments.push(Segment::Key(rest[start..i].to_owned()));
                    }
                    None => return Err("path ends with '.'"),
                }
            }
            b'[' => {
                i += 1;
                match bytes.get(i) {
                    Some(&quote @ (b'\'' | b'"')) => {
                        i += 1;
                        let mut key = String::new();
                        loop {
                            let Some(c) = rest[i..].chars().next() else {
                                return Err("unterminated quoted key");
                            };
                            i += c.len_utf8();
                            if c == '\\' {
                                let Some(escaped) = rest[i..].chars().next() else {
                                    return Err("unterminated quoted key");
                                };
                                i += escaped.len_utf8();
                                key.push(escaped);
                            } else if c as u32 == u32::from(quote) {
                                break;
                            } else {
                                key.push(c);
                            }
                        }
                        segments.push(Segment::Key(key));
                    }
                    Some(b'*') => {
                        segments.push(Segment::Wildcard);
                        i += 1;
                    }
                    Some(b'-' | b'0'..=b'9') => {
                        let start = i;
                        i += 1;
                        while i < bytes.len() && bytes[i].is_ascii_digit() {
                            i += 1;
                        }
                        let index = rest[start..i]
                            .parse::<i64>()
                            .map_err(|_| "bad array index")?;
                        segments.push(Segment::Index(index));
                    }
                    _ => return Err("only ['key'], [index] and [*] are supported inside brackets"),
                }
                if bytes.get(i) != Some(&b']') {
                    return Err("expected ']'");
                }
                i += 1;
            }
            _ => return Err("expected '.' or '[' after '$'"),
        }
    }
    Ok(segments)
}

fn resolve_index(index: i64, len: usize) -> Option<usize> {
    if index >= 0 {
        usize::try_from(index).ok().filter(|&i| i < len)
    } else {
        let back = usize::try_from(index.unsigned_abs()).ok()?;
        len.checked_sub(back)
    }
}

fn child<'a>(value: &'a Value, segment: &Segment) -> Option<&'a Value> {
    match (segment, value) {
        (Segment::Key(k) | Segment::KeyOrIndex(k, _), Value::Object(map)) => map.get(k),
        (Segment::KeyOrIndex(_, i), Value::Array(items)) => items.get(*i),
        (Segment::Index(i), Value::Array(items)) => items.get(resolve_index(*i, items.len())?),
        _ => None,
    }
}

fn child_mut<'a>(value: &'a mut Value, segment: &Segment) -> Option<&'a mut Value> {
    match (segment, value) {
        (Segment::Key(k) | Segment::KeyOrIndex(k, _), Value::Object(map)) => map.get_mut(k),
        (Segment::KeyOrIndex(_, i), Value::Array(items)) => items.get_mut(*i),
        (Segment::Index(i), Value::Array(items)) => {
            let i = resolve_index(*i, items.len())?;
            items.get_mut(i)
        }
        _ => None,
    }
}

/// Visits matches in document order; `f` returns false to stop. Returns false when stopped.
fn visit<'a>(value: &'a Value, segments: &[Segment], f: &mut dyn FnMut(&'a Value) -> bool) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return f(value);
    };
    match first {
        Segment::Wildcard => match value {
            Value::Object(map) => map.values().all(|c| visit(c, rest, f)),
            Value::Array(items) => items.iter().all(|c| visit(c, rest, f)),
            _ => true,
        },
        segment => match child(value, segment) {
            Some(c) => visit(c, rest, f),
            None => true,
        },
    }
}

fn visit_mut(value: &mut Value, segments: &[Segment], f: &mut dyn FnMut(&mut Value)) -> usize {
    let Some((first, rest)) = segments.split_first() else {
        f(value);
        return 1;
    };
    match first {
        Segment::Wildcard => match value {
            Value::Object(map) => map.values_mut().map(|c| visit_mut(c, rest, f)).sum(),
            Value::Array(items) => items.iter_mut().map(|c| visit_mut(c, rest, f)).sum(),
            _ => 0,
        },
        segment => child_mut(value, segment).map_or(0, |c| visit_mut(c, rest, f)),
    }
}

fn remove_child(parent: &mut Value, last: &Segment) -> usize {
    match (last, parent) {
        (Segment::Wildcard, Value::Object(map)) => {
            let n = map.len();
            map.clear();
            n
        }
        (Segment::Wildcard, Value::Array(items)) => {
            let n = items.len();
            items.clear();
            n
        }
        (segment, parent) => usize::from(take_child(parent, segment).is_some()),
    }
}

fn take_child(parent: &mut Value, last: &Segment) -> Option<Value> {
    match (last, parent) {
        (Segment::Key(k) | Segment::KeyOrIndex(k, _), Value::Object(map)) => map.remove(k),
        (Segment::KeyOrIndex(_, i), Value::Array(items)) if *i < items.len() => {
            Some(items.remove(*i))
        }
        (Segment::Index(i), Value::Array(items)) => {
            let i = resolve_index(*i, items.len())?;
            Some(items.remove(i))
        }
        _ => None,
    }
}

fn step_or_create<'a>(value: &'a mut Value, segment: &Segment) -> Option<&'a mut Value> {
    match segment {
        Segment::Key(k) | Segment::KeyOrIndex(k, _) if !value.is_array() => {
            if !value.is_object() {
                *value = Value::Object(Map::new());
            }
            let map = value.as_object_mut()?;
            let entry = map.get_or_insert_with(k, || Value::Object(Map::new()));
            if !(entry.is_object() || entry.is_array()) {
                *entry = Value::Object(Map::new());
            }
            Some(entry)
        }
        segment => child_mut(value, segment),
    }
}

fn set_child(parent: &mut Value, last: &Segment, new: Value) -> bool {
    match (last, parent) {
        (Segment::KeyOrIndex(_, i), Value::Array(items)) => match items.get_mut(*i) {
            Some(slot) => {
                *slot = new;
                true
            }
            None => false,
        },
        (Segment::Index(i), Value::Array(items)) => {
            match resolve_index(*i, items.len()).and_then(|i| items.get_mut(i)) {
                Some(slot) => {
                    *slot = new;
                    true
                }
                None => false,
            }
        }
        (Segment::Key(k) | Segment::KeyOrIndex(k, _), parent) => {
            if !parent.is_object() {
                *parent = Value::Object(Map::new());
            }
            match parent.as_object_mut() {
                Some(map) => {
                    map.insert(k.as_str(), new);
                    true
                }
                None => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        Value::parse(text.as_bytes()).unwrap()
    }

    fn doc() -> Value {
        json(
            r#"{"user": {"email": "a@b", "name": "A"}, "items": [{"sku": "x", "card": "1"}, {"sku": "y", "card": "2"}], "a.b": 1, "0": "zero"}"#,
        )
    }

    fn p(text: &str) -> FieldPath {
        FieldPath::parse(text).unwrap()
    }

    #[test]
    fn both_styles_reach_the_same_values() {
        let d = doc();
        for (dotted, jp) in [
            ("user.email", "$.user.email"),
            ("items.1.sku", "$.items[1].sku"),
            ("a\\.b", "$['a.b']"),
            ("0", "$['0']"),
        ] {
            assert!(p(dotted).get(&d).is_some(), "{dotted}");
            assert_eq!(p(dotted).get(&d), p(jp).get(&d), "{dotted} vs {jp}");
        }
        assert_eq!(p("$.items[-1].sku").get(&d), Some(&json("\"y\"")));
        assert_eq!(p("$[\"user\"].name").get(&d), Some(&json("\"A\"")));
    }

    #[test]
    fn wildcards_select_every_match() {
        let d = doc();
        let all = p("$.items[*].card").get_all(&d);
        assert_eq!(all, vec![&json("\"1\""), &json("\"2\"")]);
        assert_eq!(p("items.#.card").get_all(&d), all);
        assert_eq!(p("items.*.card").get_all(&d), all);
        assert!(p("$.items[*].card").has_wildcard());
    }

    #[test]
    fn remove_keeps_key_order_and_counts() {
        let mut d = json(r#"{"a": 1, "b": 2, "c": 3}"#);
        assert_eq!(p("b").remove(&mut d), 1);
        assert_eq!(d.to_string(), r#"{"a":1,"c":3}"#);
        let mut d = doc();
        assert_eq!(p("$.items[*].card").remove(&mut d), 2);
        assert_eq!(
            d.get("items"),
            Some(&json(r#"[{"sku": "x"}, {"sku": "y"}]"#))
        );
        assert_eq!(p("missing.path").remove(&mut d), 0);
    }

    #[test]
    fn set_creates_objects_on_the_way() {
        let mut d = json(r#"{"meta": 5}"#);
        assert!(p("meta.ts").set(&mut d, json("1")));
        assert!(p("$.x.y").set(&mut d, json("2")));
        assert_eq!(d, json(r#"{"meta": {"ts": 1}, "x": {"y": 2}}"#));
        let mut d = json(r#"{"a": []}"#);
        assert!(!p("a.3").set(&mut d, json("1")));
    }

    #[test]
    fn take_removes_and_returns() {
        let mut d = doc();
        assert_eq!(p("user.name").take(&mut d), Some(json("\"A\"")));
        assert_eq!(p("user.name").take(&mut d), None);
    }

    #[test]
    fn unsupported_json_path_is_rejected() {
        for bad in ["$..a", "$.a[?(@.x)]", "$", "", "a..b", "$.a[1", "$x"] {
            assert!(FieldPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn last_name() {
        assert_eq!(p("user.email").last_name(), "email");
        assert_eq!(p("$.items[0]").last_name(), "0");
        assert_eq!(p("$['odd key']").last_name(), "odd key");
    }

    #[test]
    fn long_and_deep_paths_are_refused() {
        let deep = vec!["a"; 33].join(".");
        assert!(
            FieldPath::parse(&deep)
                .unwrap_err()
                .to_string()
                .contains("32 segments")
        );
        assert!(FieldPath::parse(&vec!["a"; 32].join(".")).is_ok());
        let long = "x".repeat(2000);
        let err = FieldPath::parse(&long).unwrap_err().to_string();
        assert!(err.contains("longer than 1024"), "{err}");
        assert!(err.len() < 300, "{err}");
    }
}
