//! ClickHouse identifiers and string literals.

use std::fmt;

/// A table, `database.table` or `table` (in the connection's database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TableName {
    database: String,
    table: String,
}

impl TableName {
    /// Parses `text`; `None` unless it is one or two non-empty dot-separated parts.
    pub(super) fn parse(text: &str, default_database: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let (first, second) = (parts.next()?, parts.next());
        if parts.next().is_some() {
            return None;
        }
        let (database, table) = match second {
            Some(table) => (first, table),
            None => (default_database, first),
        };
        (!database.is_empty() && !table.is_empty()).then(|| Self {
            database: database.to_owned(),
            table: table.to_owned(),
        })
    }

    /// The database part.
    pub(super) fn database(&self) -> &str {
        &self.database
    }

    /// The table part.
    pub(super) fn table(&self) -> &str {
        &self.table
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", quote(&self.database), quote(&self.table))
    }
}

/// `name` as a back-quoted identifier.
pub(super) fn quote(name: &str) -> String {
    format!("`{}`", escape(name))
}

/// `text` as a single-quoted string literal.
pub(super) fn literal(text: &str) -> String {
    format!("'{}'", escape(text))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '\\' | '\'' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_quotes_table_names() {
        let t = TableName::parse("analytics.events", "default").unwrap();
        assert_eq!(t.to_string(), "`analytics`.`events`");
        let t = TableName::parse("ev`il", "default").unwrap();
        assert_eq!(t.to_string(), "`default`.`ev\\`il`");
        for bad in ["", "a.", ".b", "a.b.c"] {
            assert_eq!(TableName::parse(bad, "default"), None, "{bad}");
        }
        assert_eq!(literal("it's \\"), "'it\\'s \\\\'");
    }
}
