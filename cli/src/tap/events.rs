//! Reading Server-Sent Events, and showing a sample as a table row.

use serde_json::Value;

/// Splits a byte stream into `(event, data)` pairs.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
}

/// The longest event kept; a longer one is cut off (the processor's samples
/// are bounded far below this).
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

impl SseParser {
    /// Takes a chunk; returns the events it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = find(&self.buffer, b"\n\n") {
            let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block[..end]);
            let mut name = "message".to_owned();
            let mut data = Vec::new();
            for line in text.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                }
            }
            if !data.is_empty() {
                events.push((name, data.join("\n")));
            }
        }
        if self.buffer.len() > MAX_EVENT_BYTES {
            self.buffer.clear();
        }
        events
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One sample as a line: number, time, step, metadata, payload (shortened).
pub fn table_row(sample: &Value) -> String {
    const PAYLOAD: usize = 96;
    let time = sample["time"].as_str().unwrap_or_default();
    let step = sample["step"]
        .as_u64()
        .map_or("-".to_owned(), |s| s.to_string());
    let metadata: Vec<String> = sample["metadata"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    let payload = match &sample["payload"] {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut shown: String = payload.chars().take(PAYLOAD).collect();
    if payload.chars().count() > PAYLOAD || sample["cut"] == true {
        shown.push('…');
    }
    let error = sample["error"]["message"]
        .as_str()
        .map_or(String::new(), |m| format!("  error: {m}"));
    format!(
        "{:>8}  {:<24}  step {:<3}  {:<40}  {shown}{error}",
        sample["seq"],
        time,
        step,
        metadata.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_put_together() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"event: sample\ndata: {\"seq\"").is_empty());
        let events =
            parser.push(b":1}\n\n: keep-alive\n\nevent: dropped\ndata: {\"dropped\":3}\n\n");
        assert_eq!(
            events,
            [
                ("sample".to_owned(), "{\"seq\":1}".to_owned()),
                ("dropped".to_owned(), "{\"dropped\":3}".to_owned())
            ]
        );
    }

    #[test]
    fn a_table_row_shortens_the_payload() {
        let sample = serde_json::json!({"seq": 7, "time": "2026-12-07T10:00:00.000Z", "step": 2,
            "metadata": {"topic": "t"}, "payload": {"text": "x".repeat(200)}, "cut": false});
        let row = table_row(&sample);
        assert!(
            row.contains("topic=t") && row.contains("step 2") && row.ends_with('…'),
            "{row}"
        );
    }
}
