//! Change events in Debezium's envelope: `{"before", "after", "source", "op",
//! "ts_ms"}`, built straight into JSON text from the values' text forms.
//!
//! Types keep their meaning: booleans become `true`/`false`; integers, floats and
//! `numeric` keep their exact digits as JSON numbers (`1.50` stays `1.50`), except
//! `NaN` and the infinities, which become strings; `json` and `jsonb` are embedded as
//! JSON; everything else (text, timestamps, UUIDs, arrays, ...) is the string
//! PostgreSQL prints for it. A TOASTed value an update did not touch is not sent by
//! the server and reads `"__debezium_unavailable_value"`, as in Debezium.

use dataflow_core::Message;

use super::pgoutput::{Datum, Relation};

/// What an unchanged TOASTed value reads as.
pub const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";

const BOOL: u32 = 16;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const OID: u32 = 26;
const JSON: u32 = 114;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const NUMERIC: u32 = 1700;
const JSONB: u32 = 3802;

/// Debezium's operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Insert.
    Create,
    /// Update.
    Update,
    /// Delete.
    Delete,
    /// Snapshot read.
    Read,
    /// Truncate.
    Truncate,
}

impl Op {
    fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }
}

/// Where a change comes from: the envelope's `source` block.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Database name.
    pub db: &'a str,
    /// Commit time (or snapshot time), Unix milliseconds.
    pub ts_ms: i64,
    /// Transaction id; none for snapshot reads.
    pub xid: Option<u32>,
    /// LSN of the transaction's commit; none for snapshot reads.
    pub lsn: Option<u64>,
}

/// A row that does not fit its relation's description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table}: the change carries {got} columns, the relation has {expected}")]
pub struct ShapeError {
    table: String,
    got: usize,
    expected: usize,
}

/// Builds the event of one change as a message with `table` (`schema.table`) and
/// `op` metadata.
pub fn change_message(
    op: Op,
    relation: &Relation,
    before: Option<&[Datum<'_>]>,
    after: Option<&[Datum<'_>]>,
    origin: &Origin<'_>,
    now_ms: i64,
) -> Result<Message, ShapeError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"before\":");
    write_row(&mut out, relation, before)?;
    out.extend_from_slice(b",\"after\":");
    write_row(&mut out, relation, after)?;
    out.extend_from_slice(b",\"source\":");
    write_source(&mut out, relation, origin, op == Op::Read);
    out.extend_from_slice(b",\"op\":\"");
    out.extend_from_slice(op.code().as_bytes());
    out.extend_from_slice(b"\",\"ts_ms\":");
    out.extend_from_slice(now_ms.to_string().as_bytes());
    out.push(b'}');
    Ok(Message {
        payload: out,
        metadata: vec![
            (
                "table".to_owned(),
                format!("{}.{}", relation.schema, relation.table),
            ),
            ("op".to_owned(), op.code().to_owned()),
        ],
    })
}

fn write_row(
    out: &mut Vec<u8>,
    relation: &Relation,
    row: Option<&[Datum<'_>]>,
) -> Result<(), ShapeError> {
    let Some(row) = row else {
        out.extend_from_slice(b"null");
        return Ok(());
    };
    if row.len() != relation.columns.len() {
        return Err(ShapeError {
            table: format!("{}.{}", relation.schema, relation.table),
            got: row.len(),
            expected: relation.columns.len(),
        });
    }
    out.push(b'{');
    for (i, (column, datum)) in relation.columns.iter().zip(row).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, &column.name);
        out.push(b':');
        match datum {
            Datum::Null => out.extend_from_slice(b"null"),
            Datum::Unchanged => write_string(out, UNAVAILABLE_VALUE),
            Datum::Text(text) => write_value(out, column.type_oid, text),
        }
    }
    out.push(b'}');
    Ok(())
}

fn write_source(out: &mut Vec<u8>, relation: &Relation, origin: &Origin<'_>, snapshot: bool) {
    out.extend_from_slice(b"{\"version\":\"dataflow\",\"connector\":\"postgresql\",\"name\":");
    write_string(out, origin.db);
    out.extend_from_slice(b",\"ts_ms\":");
    out.extend_from_slice(origin.ts_ms.to_string().as_bytes());
    out.extend_from_slice(if snapshot {
        b",\"snapshot\":\"true\",\"db\":"
    } else {
        b",\"snapshot\":\"false\",\"db\":"
    });
    write_string(out, origin.db);
    out.extend_from_slice(b",\"schema\":");
    write_string(out, &relation.schema);
    out.extend_from_slice(b",\"table\":");
    write_string(out, &relation.table);
    out.extend_from_slice(b",\"txId\":");
    match origin.xid {
        Some(xid) => out.extend_from_slice(xid.to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"lsn\":");
    match origin.lsn {
        Some(lsn) => out.extend_from_slice(lsn.to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// A value in its type's text form, as JSON.
pub fn write_value(out: &mut Vec<u8>, type_oid: u32, text: &[u8]) {
    match type_oid {
        // `t` from the stream, `true` from a snapshot's `::text`.
        BOOL => out.extend_from_slice(if text == b"t" || text == b"true" {
            b"true"
        } else {
            b"false"
        }),
        INT2 | INT4 | INT8 | OID | FLOAT4 | FLOAT8 | NUMERIC if is_json_number(text) => {
            out.extend_from_slice(text);
        }
        JSON | JSONB if serde_json::from_slice::<&serde_json::value::RawValue>(text).is_ok() => {
            out.extend_from_slice(text);
        }
        _ => write_string(out, &String::from_utf8_lossy(text)),
    }
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Whether `text` is a JSON number as it stands (`NaN`, `Infinity` are not).
fn is_json_number(text: &[u8]) -> bool {
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut rest = text.strip_prefix(b"-").unwrap_or(text);
    let int = digits(rest);
    if int == 0 || (int > 1 && rest[0] == b'0') {
        return false;
    }
    rest = &rest[int..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = digits(frac);
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if let Some(exp) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exp = exp
            .strip_prefix(b"+")
            .or_else(|| exp.strip_prefix(b"-"))
            .unwrap_or(exp);
        let n = digits(exp);
        if n == 0 {
            return false;
        }
        rest = &exp[n..];
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::postgres::cdc::pgoutput::Column;

    fn relation() -> Relation {
        let column = |name: &str, type_oid, key| Column {
            key,
            name: name.to_owned(),
            type_oid,
        };
        Relation {
            id: 1,
            schema: "public".into(),
            table: "orders".into(),
            columns: vec![
                column("id", INT8, true),
                column("price", NUMERIC, false),
                column("paid", BOOL, false),
                column("doc", JSONB, false),
                column("note", 25, false),
                column("ratio", FLOAT8, false),
            ],
        }
    }

    #[test]
    fn values_keep_their_type_and_digits() {
        let row = [
            Datum::Text(b"12345678901234567890"),
            Datum::Text(b"1.50"),
            Datum::Text(b"t"),
            Datum::Text(br#"{"a": [1, 2]}"#),
            Datum::Unchanged,
            Datum::Text(b"NaN"),
        ];
        let origin = Origin {
            db: "shop",
            ts_ms: 5,
            xid: Some(7),
            lsn: Some(99),
        };
        let m = change_message(Op::Create, &relation(), None, Some(&row), &origin, 6).unwrap();
        let text = String::from_utf8(m.payload).unwrap();
        assert_eq!(
            text,
            r#"{"before":null,"after":{"id":12345678901234567890,"price":1.50,"paid":true,"doc":{"a": [1, 2]},"note":"__debezium_unavailable_value","ratio":"NaN"},"source":{"version":"dataflow","connector":"postgresql","name":"shop","ts_ms":5,"snapshot":"false","db":"shop","schema":"public","table":"orders","txId":7,"lsn":99},"op":"c","ts_ms":6}"#
        );
        assert_eq!(m.metadata[0], ("table".into(), "public.orders".into()));
        let short = [Datum::Null];
        assert!(change_message(Op::Delete, &relation(), Some(&short), None, &origin, 6).is_err());
    }

    #[test]
    fn json_numbers_are_recognised_exactly() {
        for good in ["0", "-1", "1.50", "1e+20", "-0.5E-3", "123"] {
            assert!(is_json_number(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            "-",
            "01",
            "1.",
            ".5",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e",
            "1 ",
        ] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
    }
}
