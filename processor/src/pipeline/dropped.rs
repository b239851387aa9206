//! Failed messages of a flow without an error sink: counted and logged, sampled.

use dataflow_core::{Message, find_meta};

/// Logs failed messages: the first ten in full, then one in a thousand. `seen`
/// counts every failure so far.
pub(crate) fn log_dropped_errors(errors: &[Message], seen: &mut u64) {
    for error in errors {
        *seen += 1;
        if *seen <= 10 || (*seen).is_multiple_of(1000) {
            tracing::warn!(
                message_id = message_id(&error.metadata),
                errors_so_far = *seen,
                record = %String::from_utf8_lossy(&error.payload),
                "message failed and no error sink is configured"
            );
        }
    }
}

/// A message's identity for logs: its source position (`topic/partition/offset`),
/// else its `id` or `key` metadata, else empty.
fn message_id(metadata: &[(String, String)]) -> String {
    let get = |key: &str| find_meta(metadata, key);
    match (get("topic"), get("partition"), get("offset")) {
        (Some(topic), Some(partition), Some(offset)) => format!("{topic}/{partition}/{offset}"),
        _ => get("id")
            .or_else(|| get("key"))
            .unwrap_or_default()
            .to_owned(),
    }
}
