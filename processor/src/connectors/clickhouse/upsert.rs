//! `upsertMode` for the ClickHouse sink. ClickHouse updates no row in place: a
//! ReplacingMergeTree keeps, of the rows sharing its sorting key, the one
//! inserted last (at merge time; `SELECT ... FINAL` sees the result at once). So
//! an upsert here is an insert into such a table whose sorting key is exactly the
//! conflict key, and every message must carry the key's fields (a row without
//! them would collapse with every other keyless row).

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::ident::{TableName, literal, quote};

/// The key columns, and checks for the table and the messages.
pub(super) struct UpsertKey {
    columns: Vec<String>,
}

impl UpsertKey {
    /// A key of `columns` (never empty: the spec check makes sure).
    pub(super) fn new(columns: &[String]) -> Self {
        Self {
            columns: columns.to_vec(),
        }
    }

    /// `CREATE TABLE` for `autoCreateTable`: whole messages in `data` and each
    /// key field's JSON text in a String column of its own (written by the sink,
    /// so `1` and `"1"` stay different keys), the table ordered by those columns.
    pub(super) fn create_statement(&self, table: &TableName) -> Result<String, String> {
        if let Some(taken) = self
            .columns
            .iter()
            .find(|c| *c == "data" || *c == "created_at")
        {
            return Err(format!(
                "conflictKey {taken:?} is a column the sink makes itself; create the table yourself"
            ));
        }
        let keys: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} String", quote(c)))
            .collect();
        let order: Vec<String> = self.columns.iter().map(|c| quote(c)).collect();
        Ok(format!(
            "CREATE TABLE IF NOT EXISTS {table} (data String, {}, created_at DateTime DEFAULT now()) \
             ENGINE = ReplacingMergeTree() ORDER BY ({})",
            keys.join(", "),
            order.join(", ")
        ))
    }

    /// The key columns, back-quoted, for an insert's column list.
    pub(super) fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Appends `,"<column>":"<value's JSON text>"` for each key column (the
    /// values from [`UpsertKey::key_values`]) to a `JSONEachRow` row.
    pub(super) fn write_key_fields(&self, values: &[&str], out: &mut Vec<u8>) {
        for (column, value) in self.columns.iter().zip(values) {
            out.push(b',');
            // Writing strings into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, column);
            out.push(b':');
            let _ = serde_json::to_writer(&mut *out, value);
        }
    }

    /// The query reading the table's engine and sorting key.
    pub(super) fn engine_query(table: &TableName) -> String {
        format!(
            "SELECT engine, sorting_key FROM system.tables WHERE database = {} AND name = {}",
            literal(table.database()),
            literal(table.table())
        )
    }

    /// Whether a table of `engine` sorted by `sorting_key` deduplicates by
    /// exactly this key; says what is wrong when not.
    pub(super) fn check_table(&self, engine: &str, sorting_key: &str) -> Result<(), String> {
        let mut sorted: Vec<&str> = sorting_key
            .split(',')
            .map(|c| c.trim().trim_matches('`'))
            .filter(|c| !c.is_empty())
            .collect();
        let mut wanted: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        wanted.sort_unstable();
        if !engine.contains("ReplacingMergeTree") || sorted != wanted {
            return Err(format!(
                "upsertMode needs a ReplacingMergeTree table ordered by ({}); it is {engine} ordered by ({sorting_key})",
                self.columns.join(", ")
            ));
        }
        Ok(())
    }

    /// The JSON text of each key field of `payload`, in key order; says which
    /// is missing (or null) or why the payload is not an object.
    pub(super) fn key_values<'a>(&self, payload: &'a [u8]) -> Result<Vec<&'a str>, String> {
        struct Fields<'k, 'a> {
            columns: &'k [String],
            found: &'k mut [Option<&'a str>],
        }
        impl<'de> Visitor<'de> for Fields<'_, 'de> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object carrying the conflictKey fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match self.columns.iter().position(|c| *c == key) {
                        Some(i) => {
                            let value = map.next_value::<&'de RawValue>()?.get();
                            self.found[i] = (value != "null").then_some(value);
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(())
            }
        }
        let mut found = vec![None; self.columns.len()];
        let mut de = serde_json::Deserializer::from_slice(payload);
        de.deserialize_map(Fields {
            columns: &self.columns,
            found: &mut found,
        })
        .and_then(|()| de.end())
        .map_err(|e| format!("cannot read the conflictKey fields: {e}"))?;
        found
            .iter()
            .zip(&self.columns)
            .map(|(value, column)| {
                value.ok_or_else(|| format!("has no conflictKey field {column:?} (or it is null)"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(columns: &[&str]) -> UpsertKey {
        UpsertKey::new(&columns.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn every_message_must_carry_the_key() {
        let k = key(&["event_id", "region"]);
        assert_eq!(
            k.key_values(br#"{"region":"eu","x":{"event_id":0},"event_id":7}"#)
                .unwrap(),
            ["7", "\"eu\""]
        );
        assert!(
            k.key_values(br#"{"event_id":7}"#)
                .unwrap_err()
                .contains("\"region\"")
        );
        assert!(
            k.key_values(br#"{"event_id":null,"region":"eu"}"#)
                .unwrap_err()
                .contains("\"event_id\"")
        );
        assert!(k.key_values(b"[1]").is_err());
        assert!(k.key_values(br#"{"event_id":1,"region":"eu"} x"#).is_err());
        let mut row = b"{\"data\":\"x\"".to_vec();
        k.write_key_fields(&["7", "\"eu\""], &mut row);
        assert_eq!(row, br##"{"data":"x","event_id":"7","region":"\"eu\"""##);
    }

    #[test]
    fn the_table_must_replace_by_exactly_the_key() {
        let k = key(&["a", "b"]);
        assert!(k.check_table("ReplacingMergeTree", "b, a").is_ok());
        assert!(
            k.check_table("ReplicatedReplacingMergeTree", "`a`, `b`")
                .is_ok()
        );
        assert!(
            k.check_table("MergeTree", "a, b")
                .unwrap_err()
                .contains("it is MergeTree")
        );
        assert!(k.check_table("ReplacingMergeTree", "a").is_err());
        assert!(k.check_table("ReplacingMergeTree", "a, b, c").is_err());
    }

    #[test]
    fn the_created_table_is_ordered_by_the_key() {
        let table = TableName::parse("t", "db").unwrap_or_else(|| unreachable!());
        let sql = key(&["id"]).create_statement(&table).unwrap();
        assert!(
            sql.contains("(data String, `id` String, created_at"),
            "{sql}"
        );
        assert!(
            sql.contains("ReplacingMergeTree() ORDER BY (`id`)"),
            "{sql}"
        );
        assert!(key(&["data"]).create_statement(&table).is_err());
    }
}
