//! `dataflow transform test`: runs the project's transform in the real host over
//! `sample/input.jsonl` and compares what it gives with `sample/expected.jsonl`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use dataflow_core::Message;
use dataflow_wasm_host::TransformChain;
use serde_json::Value;

/// Messages per call into the transform, as the processor batches them.
const BATCH: usize = 256;

/// Largest sample compared with a line diff; longer ones are compared line by line.
const MAX_DIFF_CELLS: usize = 4_000_000;

/// What the transform made of each input line, in input order: its outputs, or
/// `{"$error": "<message>"}` where it failed.
pub fn run_sample(chain: &mut TransformChain, input: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let mut messages: Vec<Message> = text
        .split(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
        .map(|line| Message {
            payload: line.to_vec(),
            metadata: Vec::new(),
        })
        .collect();
    let mut lines = Vec::new();
    for batch in messages.chunks_mut(BATCH) {
        let output = chain.run(batch);
        let mut per_input: Vec<Vec<String>> = vec![Vec::new(); batch.len()];
        for (message, origin) in output.outputs.iter().zip(&output.origins) {
            per_input[*origin].push(String::from_utf8_lossy(&message.payload).into_owned());
        }
        for failure in &output.failures {
            per_input[failure.origin]
                .push(serde_json::json!({"$error": failure.message}).to_string());
        }
        lines.extend(per_input.into_iter().flatten());
    }
    Ok(lines)
}

/// The lines of an expectation file (blank lines skipped).
pub fn expected_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} (`--update` writes it)", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Two lines say the same when they are the same JSON (numbers compared as
/// written, object keys in any order), or the same text when either is not JSON.
fn same(expected: &str, actual: &str) -> bool {
    match (
        serde_json::from_str::<Value>(expected),
        serde_json::from_str::<Value>(actual),
    ) {
        (Ok(e), Ok(a)) => e == a,
        _ => expected == actual,
    }
}

/// A diff of `expected` against `actual`, or `None` when they say the same.
pub fn diff(expected: &[String], actual: &[String]) -> Option<String> {
    let ops = if expected.len().saturating_mul(actual.len()) <= MAX_DIFF_CELLS {
        lcs_ops(expected, actual)
    } else {
        positional_ops(expected, actual)
    };
    if ops.iter().all(|op| matches!(op, Op::Same(_))) {
        return None;
    }
    let mut out = String::new();
    for op in ops {
        // Writing to a String cannot fail.
        let _ = match op {
            Op::Same(a) => writeln!(out, "  {}", actual[a]),
            Op::Missing(e) => writeln!(out, "- {}", expected[e]),
            Op::Extra(a) => writeln!(out, "+ {}", actual[a]),
        };
    }
    Some(out)
}

enum Op {
    Same(usize),
    Missing(usize),
    Extra(usize),
}

/// A shortest edit script by longest common subsequence.
fn lcs_ops(expected: &[String], actual: &[String]) -> Vec<Op> {
    let (n, m) = (expected.len(), actual.len());
    let mut table = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[at(i, j)] = if same(&expected[i], &actual[j]) {
                table[at(i + 1, j + 1)] + 1
            } else {
                table[at(i + 1, j)].max(table[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::with_capacity(n.max(m)));
    while i < n || j < m {
        if i < n && j < m && same(&expected[i], &actual[j]) {
            ops.push(Op::Same(j));
            i += 1;
            j += 1;
        } else if i < n && (j == m || table[at(i + 1, j)] >= table[at(i, j + 1)]) {
            ops.push(Op::Missing(i));
            i += 1;
        } else {
            ops.push(Op::Extra(j));
            j += 1;
        }
    }
    ops
}

/// Line i against line i, for samples too long for [`lcs_ops`].
fn positional_ops(expected: &[String], actual: &[String]) -> Vec<Op> {
    let mut ops = Vec::new();
    for i in 0..expected.len().max(actual.len()) {
        match (expected.get(i), actual.get(i)) {
            (Some(e), Some(a)) if same(e, a) => ops.push(Op::Same(i)),
            (e, a) => {
                if e.is_some() {
                    ops.push(Op::Missing(i));
                }
                if a.is_some() {
                    ops.push(Op::Extra(i));
                }
            }
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn json_lines_compare_by_value_and_numbers_by_their_text() {
        let expected = lines(&[r#"{"a":1,"b":"x"}"#, r#"{"n":1.50}"#]);
        assert_eq!(
            diff(
                &expected,
                &lines(&[r#"{"b": "x", "a": 1}"#, r#"{"n":1.50}"#])
            ),
            None
        );
        let shown = diff(&expected, &lines(&[r#"{"a":1,"b":"x"}"#, r#"{"n":1.5}"#])).unwrap();
        assert_eq!(
            shown,
            "  {\"a\":1,\"b\":\"x\"}\n- {\"n\":1.50}\n+ {\"n\":1.5}\n"
        );
    }

    #[test]
    fn a_dropped_or_extra_line_shows_once() {
        let expected = lines(&["1", "2", "3"]);
        let shown = diff(&expected, &lines(&["1", "3", "4"])).unwrap();
        assert_eq!(shown, "  1\n- 2\n  3\n+ 4\n");
        let shown = positional_ops(&expected, &lines(&["1", "3"]));
        assert_eq!(shown.len(), 4);
    }
}
