//! The document type transforms work on.
//!
//! Built for the hot path of a transform: parsing keeps number text verbatim (big
//! integers keep every digit, `1.50` stays `1.50`), objects keep their key order
//! (ordered vectors: small objects are searched faster than hashed), and short keys
//! and strings (up to 23 bytes) are stored inline, so a typical event parses with
//! almost no heap allocation. [`Value::to_json`] writes compact JSON and escapes only
//! what JSON requires (`<`, `>` and `&` stay as they are).

mod parse;
mod write;

use std::fmt;

pub use parse::ParseError;
pub use smol_str::SmolStr;

/// A JSON value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `null`
    #[default]
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number, as written.
    Number(Number),
    /// A string (unescaped).
    String(SmolStr),
    /// An array.
    Array(Vec<Value>),
    /// An object, keys in document order.
    Object(Map),
}

/// A JSON number, kept as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number(SmolStr);

impl Number {
    /// The number's JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as a float (big integers lose precision).
    pub fn as_f64(&self) -> Option<f64> {
        self.0.parse().ok()
    }

    /// The value as an integer, when it is one that fits.
    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }
}

impl From<i64> for Number {
    fn from(n: i64) -> Self {
        Number(SmolStr::new(n.to_string()))
    }
}

impl Number {
    /// A finite float as a JSON number (`3.0`, `0.1`, `1e300`); `None` for NaN
    /// and the infinities, which JSON cannot write.
    pub fn from_f64(f: f64) -> Option<Self> {
        f.is_finite()
            .then(|| Number(SmolStr::new(format!("{f:?}"))))
    }
}

impl From<u64> for Number {
    fn from(n: u64) -> Self {
        Number(SmolStr::new(n.to_string()))
    }
}

/// An object: key/value pairs in document order, keys unique.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    entries: Vec<(SmolStr, Value)>,
}

impl Map {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty object with room for `n` keys.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key`: an existing key keeps its position and gets the new value (the
    /// old one is returned); a new key goes at the end.
    pub fn insert(&mut self, key: impl Into<SmolStr>, value: Value) -> Option<Value> {
        let key = key.into();
        match self.position(&key) {
            Some(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Removes `key`, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.position(key).map(|i| self.entries.remove(i).1)
    }

    /// The value of `key`, inserting `make()` first when missing.
    pub fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> Value) -> &mut Value {
        let i = match self.position(key) {
            Some(i) => i,
            None => {
                self.entries.push((SmolStr::new(key), make()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Keys and values in order.
    pub fn iter(&self) -> impl Iterator<Item = (&SmolStr, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &SmolStr> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Values in order.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Values in order, mutably.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Value> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Appends without checking for an existing key (callers check).
    pub(crate) fn push_unchecked(&mut self, key: SmolStr, value: Value) {
        self.entries.push((key, value));
    }

    /// The entries, keys writable: callers that rewrite keys must restore their
    /// uniqueness (see [`Map::dedup_keys`]).
    pub(crate) fn entries_mut(&mut self) -> &mut [(SmolStr, Value)] {
        &mut self.entries
    }

    /// Makes keys unique again after keys were rewritten: a repeated key keeps the
    /// position of its first occurrence and the value of its last.
    pub(crate) fn dedup_keys(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        self.entries.reserve(entries.len());
        for (key, value) in entries {
            self.insert(key, value);
        }
    }
}

/// One of 64 bits, from a key's length and its first and last bytes: keys with
/// different bits are certainly different, which lets object builders skip most
/// duplicate searches.
pub(crate) fn key_shape(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let first = bytes.first().copied().unwrap_or(0);
    let last = bytes.last().copied().unwrap_or(0);
    let mix = bytes.len().wrapping_mul(31) ^ usize::from(first).wrapping_mul(7) ^ usize::from(last);
    1u64 << (mix % 64)
}

/// Index of the first byte at or after `from` that ends a plain run of string
/// text: `"`, `\` or a control character (or `bytes.len()`). Scans eight bytes at a
/// time with the classic zero-byte bit tricks; the lowest flagged byte is exact.
pub(crate) fn find_special(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let quote = zero_byte(x ^ (ONES * u64::from(b'"')));
        let backslash = zero_byte(x ^ (ONES * u64::from(b'\\')));
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let found = quote | backslash | control;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        i += 1;
    }
    bytes.len()
}

impl IntoIterator for Map {
    type Item = (SmolStr, Value);
    type IntoIter = std::vec::IntoIter<(SmolStr, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K: Into<SmolStr>> FromIterator<(K, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut map = Map::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl Value {
    /// Parses one JSON document.
    pub fn parse(bytes: &[u8]) -> Result<Value, ParseError> {
        parse::parse(bytes)
    }

    /// Compact JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        write::write_value(self, &mut out);
        out
    }

    /// Appends compact JSON text to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        write::write_value(self, out);
    }

    /// The value of `key` when this is an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object().and_then(|m| m.get(key))
    }

    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The object, when this is one.
    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The object, mutably, when this is one.
    pub fn as_object_mut(&mut self) -> Option<&mut Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The array, when this is one.
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// True for objects.
    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }

    /// True for arrays.
    pub fn is_array(&self) -> bool {
        matches!(self, Value::Array(_))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(SmolStr::new(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(SmolStr::from(s))
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Number(Number::from(n))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Object(m)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_json()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        String::from_utf8(Value::parse(text.as_bytes()).unwrap().to_json()).unwrap()
    }

    #[test]
    fn text_survives_exactly() {
        for text in [
            r#"{"z":1,"a":12345678901234567890123,"m":1.50,"e":1e3,"E":-2.5E-07,"s":"<&>","u":"Ünï ✓"}"#,
            r#"[null,true,false,0,-0,"",{},[],[[]],{"a":{"b":[1,{"c":null}]}}]"#,
            r#""just a string""#,
            "42",
        ] {
            assert_eq!(round_trip(text), text);
        }
    }

    #[test]
    fn whitespace_is_dropped_and_escapes_normalised() {
        assert_eq!(round_trip(" { \"a\" : [ 1 , 2 ] }\n"), r#"{"a":[1,2]}"#);
        assert_eq!(
            round_trip(r#"["\u0041\/\n\t\"\\\u00e9\ud83d\ude00\u0001"]"#),
            "[\"A/\\n\\t\\\"\\\\é😀\\u0001\"]"
        );
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        assert_eq!(round_trip(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
        // Enough keys to switch to the hashed check, with duplicates before and after.
        let many: Vec<String> = (0..100).map(|i| format!("\"k{}\":{i}", i % 70)).collect();
        let parsed = Value::parse(format!("{{{}}}", many.join(",")).as_bytes()).unwrap();
        let map = parsed.as_object().unwrap();
        assert_eq!(map.len(), 70);
        assert_eq!(map.get("k5"), Some(&Value::from(75)));
        assert_eq!(map.get("k69"), Some(&Value::from(69)));
        let late: Vec<String> = (0..60)
            .map(|i| format!("\"key{i}\":{i}"))
            .chain(["\"key59\":0".to_owned(), "\"key0\":1".to_owned()])
            .collect();
        let parsed = Value::parse(format!("{{{}}}", late.join(",")).as_bytes()).unwrap();
        let map = parsed.as_object().unwrap();
        assert_eq!(
            (map.len(), map.get("key59"), map.get("key0")),
            (60, Some(&Value::from(0)), Some(&Value::from(1)))
        );
    }

    #[test]
    fn invalid_documents_are_rejected() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\"}",
            "{\"a\":}",
            "01",
            "1.",
            "1e",
            "-",
            "+1",
            "tru",
            "nul",
            "\"unterminated",
            "\"bad \\x escape\"",
            "\"\\ud800\"",
            "\"ctrl \u{1} char\"",
            "{} {}",
            "[1 2]",
            "{\"a\":1,}",
            "NaN",
        ] {
            assert!(
                Value::parse(bad.as_bytes()).is_err(),
                "{bad:?} was accepted"
            );
        }
        assert!(Value::parse(b"\xff").is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(Value::parse(deep.as_bytes()).is_err(), "nesting is bounded");
    }

    #[test]
    fn special_bytes_are_found_in_every_position() {
        for len in 0..40 {
            for pos in 0..=len {
                for special in [b'"', b'\\', b'\n', 0x01, 0x1f] {
                    let mut text = vec![b'a'; len];
                    text.extend_from_slice("é✓".as_bytes());
                    if pos < len {
                        text[pos] = special;
                    }
                    let expected = if pos < len { pos } else { text.len() };
                    assert_eq!(
                        find_special(&text, 0),
                        expected,
                        "len {len} pos {pos} byte {special}"
                    );
                }
            }
        }
        assert_eq!(find_special(b"ab\"cd\"", 3), 5);
    }

    #[test]
    fn special_bytes_are_found_from_every_start() {
        let naive = |text: &[u8], from: usize| {
            (from..text.len())
                .find(|&i| matches!(text[i], b'"' | b'\\' | 0..0x20))
                .unwrap_or(text.len())
        };
        for len in 0..30 {
            for first in 0..len {
                for second in first..len {
                    let mut text = vec![b'x'; len];
                    text[first] = b'\\';
                    text[second] = b'"';
                    for from in 0..=len {
                        assert_eq!(
                            find_special(&text, from),
                            naive(&text, from),
                            "len {len} specials at {first}, {second}, from {from}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn errors_say_where() {
        let err = Value::parse(br#"{"a": tru}"#).unwrap_err();
        assert_eq!(err.to_string(), "expected `true` at byte 6");
    }
}
