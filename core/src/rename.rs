//! Renaming object keys (the engine behind `snakeCase` and `camelCase`).

use crate::json::{Map, SmolStr, Value, key_shape};
use heck::{ToSnakeCase, ToUpperCamelCase};
use rustc_hash::FxHashMap;

/// How keys are rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCase {
    /// `userID` -> `user_id`.
    Snake,
    /// `first_name` -> `FirstName` (PascalCase, as the Go original's camelCase did).
    UpperCamel,
}

impl KeyCase {
    /// `key` as this case writes it (what `snakeCase` and `camelCase` make of it).
    pub fn convert(self, key: &str) -> SmolStr {
        SmolStr::from(match self {
            KeyCase::Snake => snake_case_keeping_edges(key),
            KeyCase::UpperCamel => key.to_upper_camel_case(),
        })
    }
}

/// `key` in snake_case, keeping its leading and trailing underscores as the Go
/// original does: `_id` stays `_id` (and does not collide with `id`), `__v` stays
/// `__v`, `userID_` becomes `user_id_`.
fn snake_case_keeping_edges(key: &str) -> String {
    let inner = key.trim_matches('_');
    if inner.is_empty() {
        return key.to_owned();
    }
    let lead = key.len() - key.trim_start_matches('_').len();
    let trail = key.len() - key.trim_end_matches('_').len();
    let mut out = String::with_capacity(key.len() + 4);
    out.push_str(&key[..lead]);
    out.push_str(&inner.to_snake_case());
    out.push_str(&key[key.len() - trail..]);
    out
}

/// Most documents of a flow share their keys, so conversions are memoised; the memo
/// is bounded and starts over when full.
const MEMO_LIMIT: usize = 4096;

/// Renames object keys, top level only or deep (nested objects and objects in arrays).
/// When two keys map to the same name the later one's value wins.
#[derive(Debug, Clone)]
pub struct KeyRenamer {
    case: KeyCase,
    deep: bool,
    /// Key -> its new name, or `None` when the conversion leaves it unchanged.
    memo: FxHashMap<SmolStr, Option<SmolStr>>,
}

impl KeyRenamer {
    /// A renamer for `case`; `deep` recurses into nested objects and arrays.
    pub fn new(case: KeyCase, deep: bool) -> Self {
        Self {
            case,
            deep,
            memo: FxHashMap::default(),
        }
    }

    /// Renames the keys of `value` in place. Non-objects are left alone (their
    /// nested objects are renamed too when deep).
    pub fn rename(&mut self, value: &mut Value) {
        match value {
            Value::Object(map) => self.rename_object(map),
            Value::Array(items) if self.deep => {
                for item in items {
                    self.rename(item);
                }
            }
            _ => {}
        }
    }

    /// Rewrites the keys where they are; only when two keys end up the same is the
    /// object rebuilt.
    fn rename_object(&mut self, map: &mut Map) {
        let mut shapes = 0u64;
        let mut collided = false;
        let entries = map.entries_mut();
        for i in 0..entries.len() {
            let (key, value) = &mut entries[i];
            if self.deep {
                self.rename(value);
            }
            if let Some(new) = self.converted(key) {
                *key = new;
            }
            let bit = key_shape(key);
            if shapes & bit != 0 && !collided {
                let key = &entries[i].0;
                collided = entries[..i].iter().any(|(earlier, _)| earlier == key);
            }
            shapes |= bit;
        }
        if collided {
            map.dedup_keys();
        }
    }

    /// The new name of `key`, or `None` when it stays as it is.
    fn converted(&mut self, key: &SmolStr) -> Option<SmolStr> {
        if let Some(done) = self.memo.get(key) {
            return done.clone();
        }
        let converted = self.case.convert(key);
        let done = (converted != *key).then_some(converted);
        if self.memo.len() >= MEMO_LIMIT {
            self.memo.clear();
        }
        self.memo.insert(key.clone(), done.clone());
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        Value::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn snake_deep_and_shallow() {
        let doc = json(r#"{"userID": 1, "HTTPServer": {"innerKey": [{"deepKey": 1}]}}"#);
        let mut deep = doc.clone();
        KeyRenamer::new(KeyCase::Snake, true).rename(&mut deep);
        assert_eq!(
            deep.to_string(),
            r#"{"user_id":1,"http_server":{"inner_key":[{"deep_key":1}]}}"#
        );
        let mut shallow = doc;
        KeyRenamer::new(KeyCase::Snake, false).rename(&mut shallow);
        assert_eq!(
            shallow.to_string(),
            r#"{"user_id":1,"http_server":{"innerKey":[{"deepKey":1}]}}"#
        );
    }

    #[test]
    fn later_key_wins_on_collision() {
        let mut doc = json(r#"{"userId":1,"user_id":2}"#);
        let mut renamer = KeyRenamer::new(KeyCase::Snake, false);
        renamer.rename(&mut doc);
        assert_eq!(doc, json(r#"{"user_id": 2}"#));
        // The memo gives the same answer the second time.
        let mut again = json(r#"{"userId":1,"user_id":2}"#);
        renamer.rename(&mut again);
        assert_eq!(again, json(r#"{"user_id": 2}"#));
    }

    #[test]
    fn collisions_keep_the_first_position_and_the_last_value() {
        let mut doc = json(r#"{"aB":1,"x":{"innerKey":true},"a_b":2,"A_B":3,"yZ":4}"#);
        KeyRenamer::new(KeyCase::Snake, true).rename(&mut doc);
        assert_eq!(
            doc.to_string(),
            r#"{"a_b":3,"x":{"inner_key":true},"y_z":4}"#
        );
    }

    #[test]
    fn upper_camel() {
        let mut doc = json(r#"{"first_name": "a", "user-id": 1}"#);
        KeyRenamer::new(KeyCase::UpperCamel, false).rename(&mut doc);
        assert_eq!(doc, json(r#"{"FirstName": "a", "UserId": 1}"#));
    }
}
