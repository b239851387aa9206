//! Tap clients for the end-to-end rows: plain HTTP/1.1 readers of
//! `/api/v1/tap` that hold a processor run's source until they are connected
//! (`DATAFLOW_TAP_HOLD_SECONDS`) and count the samples they got.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The token the benchmark's processors are given.
pub const TOKEN: &str = "bench-tap-token-0123456789";

/// A port free now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Makes `command` serve `/api/v1` on `port` and wait for a tap client.
pub fn serve_tap(command: &mut Command, port: u16) {
    command
        .arg(format!("--metrics-addr=127.0.0.1:{port}"))
        .env("DATAFLOW_TAP_TOKEN", TOKEN)
        .env("DATAFLOW_TAP_HOLD_SECONDS", "30");
}

/// Starts `clients` readers of `at` at `rate` messages a second; each returns
/// how many samples it got once the processor closes the stream.
pub fn watch(port: u16, at: &str, rate: u32, clients: usize) -> Vec<JoinHandle<usize>> {
    (0..clients)
        .map(|_| {
            let request = format!(
                "GET /api/v1/tap?at={at}&rate={rate} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n"
            );
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut stream = loop {
                    match TcpStream::connect(("127.0.0.1", port)) {
                        Ok(stream) => break stream,
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("the processor's port never opened: {e}"),
                    }
                };
                stream.write_all(request.as_bytes()).expect("send the request");
                let mut text = Vec::new();
                let _ = stream.read_to_end(&mut text);
                let text = String::from_utf8_lossy(&text);
                assert!(text.starts_with("HTTP/1.1 200"), "the tap refused: {text:.300}");
                text.matches("event: sample").count()
            })
        })
        .collect()
}
