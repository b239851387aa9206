//! SQL identifiers: table names from the spec are quoted, never pasted.

use std::fmt;

/// A possibly schema-qualified name (`orders`, `sales.orders`), rendered quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    schema: Option<String>,
    name: String,
}

impl QualifiedName {
    /// Splits `text` at its first dot. Quotes in the input are not interpreted:
    /// each part is taken literally and quoted on output.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (schema, name) = match text.split_once('.') {
            Some((schema, name)) => (Some(schema.to_owned()), name.to_owned()),
            None => (None, text.to_owned()),
        };
        if name.is_empty() || schema.as_deref().is_some_and(str::is_empty) {
            return None;
        }
        Some(Self { schema, name })
    }

    /// The schema, when the name has one.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The bare table name (for index names and metadata).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{}.", quote(schema))?;
        }
        f.write_str(&quote(&self.name))
    }
}

/// `"name"` with embedded quotes doubled.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            QualifiedName::parse("orders").unwrap().to_string(),
            r#""orders""#
        );
        assert_eq!(
            QualifiedName::parse("sales.Orders").unwrap().to_string(),
            r#""sales"."Orders""#
        );
        assert_eq!(
            QualifiedName::parse(r#"x"; DROP TABLE t; --"#)
                .unwrap()
                .to_string(),
            r#""x""; DROP TABLE t; --""#
        );
        assert!(QualifiedName::parse("").is_none());
        assert!(QualifiedName::parse(".t").is_none());
    }
}
