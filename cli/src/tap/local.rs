//! `dataflow tap --spec`: the flow run here by the processor, which holds its
//! source until the tap watches (`DATAFLOW_TAP_HOLD_SECONDS`), so a short flow's
//! messages are not gone before the first sample is asked for.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};

use super::{Stream, open_direct};

/// How long the processor may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The processor running the flow.
pub struct LocalProcessor {
    child: Child,
}

impl LocalProcessor {
    /// Waits for the processor to end (its flow did, or the tap closed).
    pub async fn finish(&mut self) {
        if let Ok(None) = self.child.try_wait()
            && let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok())
        {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

/// `dataflow-processor`: `DATAFLOW_PROCESSOR`, else beside this executable,
/// else on `PATH`.
fn processor_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DATAFLOW_PROCESSOR") {
        return PathBuf::from(path);
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("dataflow-processor")));
    match beside {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("dataflow-processor"),
    }
}

/// Starts the processor on `spec` and opens its tap with `query`.
pub async fn start(spec: &Path, query: &str) -> anyhow::Result<(LocalProcessor, Stream)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .context("no free local port")?;
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("cannot draw a token: {e}"))?;
    let token = hex::encode(bytes);
    let binary = processor_binary();
    let child = Command::new(&binary)
        .args(["run", "--spec"])
        .arg(spec)
        .arg(format!("--metrics-addr=127.0.0.1:{port}"))
        .env("DATAFLOW_TAP_TOKEN", &token)
        .env("DATAFLOW_TAP_HOLD_SECONDS", "30")
        .stdin(Stdio::null())
        // The flow's own output and logs go to stderr; stdout is the tap's.
        .stdout(std::io::stderr())
        .stderr(std::io::stderr())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let mut processor = LocalProcessor { child };
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        match open_direct(&url, &token, query).await {
            Ok(response) => return Ok((processor, Stream::Direct(response))),
            Err(error) => {
                let refused = error.to_string().contains("refused (");
                if refused || started.elapsed() > START_TIMEOUT {
                    processor.finish().await;
                    return Err(error);
                }
                if let Ok(Some(status)) = processor.child.try_wait() {
                    anyhow::bail!("the processor ended before its tap opened ({status})");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
