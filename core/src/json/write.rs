use super::{Value, find_special};

pub(super) fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => append(out, n.as_str().as_bytes()),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(key, out);
                out.push(b':');
                write_value(item, out);
            }
            out.push(b'}');
        }
    }
}

/// Writes a JSON string, escaping only quotes, backslashes and control characters.
fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    loop {
        let i = find_special(bytes, start);
        append(out, &bytes[start..i]);
        let Some(&b) = bytes.get(i) else { break };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        start = i + 1;
    }
    out.push(b'"');
}

/// Appends `bytes`. Runs of up to 16 bytes, most keys and values, are copied as two
/// overlapping words: a copy of unknown length becomes `memory.copy` in Wasm, which
/// is a call out to the runtime and costs more than the copy itself.
fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = out.len();
    let n = bytes.len();
    if let (8..=16, Some(head), Some(tail)) = (n, bytes.first_chunk::<8>(), bytes.last_chunk::<8>())
    {
        out.extend_from_slice(head);
        out.truncate(len + n - 8);
        out.extend_from_slice(tail);
    } else if let (4..8, Some(head), Some(tail)) =
        (n, bytes.first_chunk::<4>(), bytes.last_chunk::<4>())
    {
        out.extend_from_slice(head);
        out.truncate(len + n - 4);
        out.extend_from_slice(tail);
    } else if n < 4 {
        for &b in bytes {
            out.push(b);
        }
    } else {
        out.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::append;

    #[test]
    fn append_copies_runs_of_every_length() {
        let source: Vec<u8> = (0..40u8).collect();
        for len in 0..=source.len() {
            let mut out = b"prefix".to_vec();
            append(&mut out, &source[..len]);
            assert_eq!(&out[..6], b"prefix");
            assert_eq!(&out[6..], &source[..len], "length {len}");
        }
    }
}
