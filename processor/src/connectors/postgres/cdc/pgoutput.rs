//! Decoding of `pgoutput` messages (protocol version 1), the binary format of
//! PostgreSQL's built-in logical decoding plugin. Every length and count is
//! checked against the bytes that are there; a malformed message is an error,
//! never a panic.

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// One column of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Whether the column is part of the replica identity (the key).
    pub key: bool,
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
}

/// A table's description, sent before the first change of it in a stream and
/// again after its columns change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The table's OID.
    pub id: u32,
    /// Schema.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Columns in order.
    pub columns: Vec<Column>,
}

/// One column value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum<'a> {
    /// SQL NULL.
    Null,
    /// A TOASTed value the change did not touch; its value is not sent.
    Unchanged,
    /// The value in the type's text form.
    Text(&'a [u8]),
}

/// A decoded `pgoutput` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A transaction starts.
    Begin {
        /// LSN of its commit record.
        final_lsn: u64,
        /// Commit time, milliseconds since 1970.
        commit_ms: i64,
        /// Transaction id.
        xid: u32,
    },
    /// The transaction ends.
    Commit {
        /// LSN of the commit record.
        commit_lsn: u64,
        /// LSN just past it: where the next transaction's decoding starts.
        end_lsn: u64,
    },
    /// A relation's description.
    Relation(Relation),
    /// A new row.
    Insert {
        /// Relation OID.
        relation: u32,
        /// The row.
        new: Vec<Datum<'a>>,
    },
    /// A changed row.
    Update {
        /// Relation OID.
        relation: u32,
        /// The old row (key columns only, or all with REPLICA IDENTITY FULL),
        /// when the server sends it.
        old: Option<Vec<Datum<'a>>>,
        /// The new row.
        new: Vec<Datum<'a>>,
    },
    /// A deleted row.
    Delete {
        /// Relation OID.
        relation: u32,
        /// The old row (key columns, or all with REPLICA IDENTITY FULL).
        old: Vec<Datum<'a>>,
    },
    /// Tables emptied.
    Truncate {
        /// Relation OIDs.
        relations: Vec<u32>,
    },
    /// Anything else (origin, type, logical message): not needed here.
    Other,
}

/// A message that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed pgoutput message ({tag:?}): {reason}")]
pub struct DecodeError {
    tag: char,
    reason: &'static str,
}

/// Decodes one message.
pub fn decode(bytes: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let Some((&tag, body)) = bytes.split_first() else {
        return Err(DecodeError {
            tag: ' ',
            reason: "empty",
        });
    };
    let mut r = Reader {
        bytes: body,
        tag: char::from(tag),
    };
    let decoded = match tag {
        b'B' => Decoded::Begin {
            final_lsn: r.u64()?,
            commit_ms: unix_millis(r.i64()?),
            xid: r.u32()?,
        },
        b'C' => {
            let _flags = r.u8()?;
            Decoded::Commit {
                commit_lsn: r.u64()?,
                end_lsn: r.u64()?,
            }
        }
        b'R' => {
            let id = r.u32()?;
            let schema = r.string()?;
            let table = r.string()?;
            let _replica_identity = r.u8()?;
            let count = r.u16()?;
            let mut columns = Vec::with_capacity(usize::from(count).min(r.remaining()));
            for _ in 0..count {
                let flags = r.u8()?;
                let name = r.string()?;
                let type_oid = r.u32()?;
                let _typmod = r.u32()?;
                columns.push(Column {
                    key: flags & 1 == 1,
                    name,
                    type_oid,
                });
            }
            Decoded::Relation(Relation {
                id,
                schema,
                table,
                columns,
            })
        }
        b'I' => {
            let relation = r.u32()?;
            r.expect(b'N')?;
            Decoded::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let old = match r.u8()? {
                b'K' | b'O' => {
                    let old = r.tuple()?;
                    r.expect(b'N')?;
                    Some(old)
                }
                b'N' => None,
                _ => return Err(r.error("unknown tuple marker")),
            };
            Decoded::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            match r.u8()? {
                b'K' | b'O' => {}
                _ => return Err(r.error("unknown tuple marker")),
            }
            Decoded::Delete {
                relation,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let count = r.u32()?;
            let _options = r.u8()?;
            let mut relations = Vec::new();
            for _ in 0..count {
                relations.push(r.u32()?);
            }
            Decoded::Truncate { relations }
        }
        _ => Decoded::Other,
    };
    Ok(decoded)
}

/// PostgreSQL microseconds since 2000 as Unix milliseconds.
fn unix_millis(pg_micros: i64) -> i64 {
    pg_micros.saturating_add(PG_EPOCH_OFFSET_MICROS) / 1000
}

/// A cursor over a message's body.
struct Reader<'a> {
    bytes: &'a [u8],
    tag: char,
}

impl<'a> Reader<'a> {
    fn error(&self, reason: &'static str) -> DecodeError {
        DecodeError {
            tag: self.tag,
            reason,
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(self.error("ends early"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn expect(&mut self, marker: u8) -> Result<(), DecodeError> {
        if self.u8()? == marker {
            Ok(())
        } else {
            Err(self.error("unexpected tuple marker"))
        }
    }

    /// A NUL-terminated string.
    fn string(&mut self) -> Result<String, DecodeError> {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.error("unterminated string"))?;
        let text = self.take(end)?;
        self.take(1)?;
        String::from_utf8(text.to_vec()).map_err(|_| self.error("string is not UTF-8"))
    }

    fn tuple(&mut self) -> Result<Vec<Datum<'a>>, DecodeError> {
        let count = self.u16()?;
        // Each column takes at least one byte, so this cannot over-allocate.
        let mut datums = Vec::with_capacity(usize::from(count).min(self.remaining()));
        for _ in 0..count {
            datums.push(match self.u8()? {
                b'n' => Datum::Null,
                b'u' => Datum::Unchanged,
                b't' => {
                    let len = self.u32()?;
                    let len = usize::try_from(len).map_err(|_| self.error("value too long"))?;
                    Datum::Text(self.take(len)?)
                }
                b'b' => return Err(self.error("binary values are not requested")),
                _ => return Err(self.error("unknown column marker")),
            });
        }
        Ok(datums)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(values: &[Option<&str>]) -> Vec<u8> {
        let mut out = (values.len() as u16).to_be_bytes().to_vec();
        for value in values {
            match value {
                None => out.push(b'n'),
                Some(text) => {
                    out.push(b't');
                    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
                    out.extend_from_slice(text.as_bytes());
                }
            }
        }
        out
    }

    #[test]
    fn decodes_relation_and_changes() {
        let mut rel = vec![b'R'];
        rel.extend_from_slice(&16384u32.to_be_bytes());
        rel.extend_from_slice(b"public\0orders\0d");
        rel.extend_from_slice(&2u16.to_be_bytes());
        rel.extend_from_slice(b"\x01id\0");
        rel.extend_from_slice(&23u32.to_be_bytes());
        rel.extend_from_slice(&u32::MAX.to_be_bytes());
        rel.extend_from_slice(b"\x00note\0");
        rel.extend_from_slice(&25u32.to_be_bytes());
        rel.extend_from_slice(&u32::MAX.to_be_bytes());
        let Decoded::Relation(relation) = decode(&rel).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!(
            (relation.schema.as_str(), relation.table.as_str()),
            ("public", "orders")
        );
        assert!(relation.columns[0].key && !relation.columns[1].key);

        let mut update = vec![b'U'];
        update.extend_from_slice(&16384u32.to_be_bytes());
        update.push(b'K');
        update.extend(tuple(&[Some("1"), None]));
        update.push(b'N');
        update.extend(tuple(&[Some("2"), Some("hi")]));
        assert_eq!(
            decode(&update).unwrap(),
            Decoded::Update {
                relation: 16384,
                old: Some(vec![Datum::Text(b"1"), Datum::Null]),
                new: vec![Datum::Text(b"2"), Datum::Text(b"hi")],
            }
        );
    }

    #[test]
    fn begin_time_is_unix_milliseconds() {
        let mut begin = vec![b'B'];
        begin.extend_from_slice(&7u64.to_be_bytes());
        begin.extend_from_slice(&0i64.to_be_bytes());
        begin.extend_from_slice(&9u32.to_be_bytes());
        assert_eq!(
            decode(&begin).unwrap(),
            Decoded::Begin {
                final_lsn: 7,
                commit_ms: 946_684_800_000,
                xid: 9
            }
        );
    }

    #[test]
    fn truncated_or_lying_messages_are_errors() {
        let mut insert = vec![b'I'];
        insert.extend_from_slice(&1u32.to_be_bytes());
        insert.push(b'N');
        insert.extend_from_slice(&1u16.to_be_bytes());
        insert.push(b't');
        insert.extend_from_slice(&u32::MAX.to_be_bytes());
        insert.extend_from_slice(b"short");
        assert!(decode(&insert).is_err(), "a length past the end");
        for cut in 0..insert.len() {
            let _ = decode(&insert[..cut]);
        }
        let mut many = vec![b'I'];
        many.extend_from_slice(&1u32.to_be_bytes());
        many.push(b'N');
        many.extend_from_slice(&u16::MAX.to_be_bytes());
        assert!(decode(&many).is_err(), "a count past the end");
        assert!(decode(b"").is_err());
        assert_eq!(decode(b"Yanything").unwrap(), Decoded::Other);
    }
}
