//! The processor's logs: `tracing` to stderr, every line through the flow's
//! redactor (`dataflow_api::redact`), so no level of any library's logging, trace
//! included, can print a password, token, key or connection-string password the
//! spec holds.

use std::io::{IsTerminal, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Stderr, each event written whole once it is formatted, with every secret
/// value of the flow replaced by `***`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactedStderr;

impl<'a> MakeWriter<'a> for RedactedStderr {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter { line: Vec::new() }
    }
}

/// Collects one formatted event and writes it redacted when dropped (the
/// formatter drops the writer after each event).
#[derive(Debug)]
pub struct RedactingWriter {
    line: Vec<u8>,
}

impl Write for RedactingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        let redacted = dataflow_api::redact::redact(&text);
        // Nowhere to report a failed write to stderr.
        let _ = std::io::stderr().lock().write_all(redacted.as_bytes());
    }
}

/// `LOG_LEVEL` (debug|info|warn|error|trace) or `RUST_LOG` directives; logs go
/// to stderr, as JSON lines inside a cluster (or with `LOG_FORMAT=json`),
/// readable text elsewhere.
pub fn init(default_level: &str) {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("LOG_LEVEL"))
        .unwrap_or_else(|_| default_level.to_owned());
    let json = match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(RedactedStderr)
        .with_target(false);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}
