//! A component's standard output as log lines: each line it prints (a Python
//! step's `ctx.log(...)`) becomes one `tracing` event naming the component, at most
//! [`LINES_PER_SECOND`] per instance; the lines past that are counted and the count
//! is reported with the next line logged.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Lines logged per second and instance; the rest are counted, not logged.
pub(crate) const LINES_PER_SECOND: u32 = 20;

/// Longest line logged, in bytes; the rest of a longer line is cut.
const LINE_BYTES: usize = 2048;

/// How much the component may write in one go.
const WRITE_PERMIT: usize = 64 * 1024;

/// The standard output of one instance, turned into log lines.
#[derive(Clone)]
pub(crate) struct ComponentLog {
    state: Arc<Mutex<LineState>>,
}

struct LineState {
    component: Arc<str>,
    partial: Vec<u8>,
    window_start: Instant,
    logged_in_window: u32,
    suppressed: u64,
}

impl ComponentLog {
    /// The log of the component named `component`.
    pub(crate) fn new(component: &str) -> Self {
        Self {
            state: Arc::new(Mutex::new(LineState {
                component: component.into(),
                partial: Vec::new(),
                window_start: Instant::now(),
                logged_in_window: 0,
                suppressed: 0,
            })),
        }
    }

    fn take(&self, bytes: &[u8]) {
        // A poisoned lock only means an earlier write panicked; the lines are
        // still usable.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.take(bytes);
    }
}

impl LineState {
    fn take(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.push(&bytes[..end]);
            let line = std::mem::take(&mut self.partial);
            self.emit(&line);
            bytes = &bytes[end + 1..];
        }
        self.push(bytes);
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = LINE_BYTES.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn emit(&mut self, line: &[u8]) {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.logged_in_window = 0;
        }
        if self.logged_in_window >= LINES_PER_SECOND {
            self.suppressed += 1;
            return;
        }
        self.logged_in_window += 1;
        let text = String::from_utf8_lossy(line);
        let suppressed = std::mem::take(&mut self.suppressed);
        if suppressed > 0 {
            tracing::info!(component = %self.component, suppressed, "{text}");
        } else {
            tracing::info!(component = %self.component, "{text}");
        }
    }
}

impl IsTerminal for ComponentLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ComponentLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for ComponentLog {
    async fn ready(&mut self) {}
}

impl OutputStream for ComponentLog {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for ComponentLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_cut_and_sampled() {
        let log = ComponentLog::new("t");
        log.take(b"one\ntw");
        log.take(b"o\n");
        let long = vec![b'x'; LINE_BYTES * 2];
        log.take(&long);
        {
            let state = log.state.lock().unwrap();
            assert_eq!(state.logged_in_window, 2, "two whole lines logged");
            assert_eq!(state.partial.len(), LINE_BYTES, "a long line is cut");
        }
        for _ in 0..(LINES_PER_SECOND * 2) {
            log.take(b"again\n");
        }
        let state = log.state.lock().unwrap();
        assert_eq!(state.logged_in_window, LINES_PER_SECOND);
        assert_eq!(
            state.suppressed,
            2 + u64::from(LINES_PER_SECOND),
            "42 lines (the cut one ends with the first `again`), 20 a second logged"
        );
    }
}
