//! A transform that misbehaves on purpose, for the host's containment tests.
//!
//! Config `{"mode": M}`. Messages without `"evil": true` pass through unchanged;
//! on an evil message the component, depending on `M`:
//! - `panic`: panics (a trap);
//! - `loop`: spins forever (hits the time limit);
//! - `oom`: allocates without bound (hits the memory limit);
//! - `probe`: does not misbehave, but tries to read a file, the environment, the
//!   arguments, the network and an HTTP request through `wasi:http`, and reports
//!   what it could reach in the message;
//! - `sleep`: sleeps 20 s through WASI's clock (a blocking host call);
//! - `fanout`: emits `outputs` (default 10,000) copies of the message, each with
//!   a 1 KiB filler.
//!
//! With `"sleepInCreate": true` the constructor sleeps 20 s first.

use std::hint::black_box;

use dataflow_transform_sdk::json::{Map, Value};
use dataflow_transform_sdk::{ConfigError, Record, Transform, TransformError, parse_config};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum Mode {
    Panic,
    Loop,
    Oom,
    Probe,
    Sleep,
    Fanout,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Config {
    mode: Mode,
    #[serde(default)]
    outputs: Option<u32>,
    #[serde(default)]
    sleep_in_create: bool,
}

/// How long the sleeping modes sleep.
const SLEEP: std::time::Duration = std::time::Duration::from_secs(20);

/// The misbehaving transform.
pub struct Hostile {
    mode: Mode,
    outputs: u32,
}

impl Transform for Hostile {
    fn from_config(config: &str) -> Result<Self, ConfigError> {
        let config: Config = parse_config(config)?;
        if config.sleep_in_create {
            std::thread::sleep(SLEEP);
        }
        Ok(Self {
            mode: config.mode,
            outputs: config.outputs.unwrap_or(10_000),
        })
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        if record.value.get("evil") == Some(&Value::Bool(true)) {
            match self.mode {
                Mode::Panic => panic!("hostile component panicked on purpose"),
                Mode::Loop => {
                    let mut spins = 0u64;
                    loop {
                        spins = black_box(spins.wrapping_add(1));
                    }
                }
                Mode::Oom => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(black_box(vec![1u8; 1 << 20]));
                    }
                }
                Mode::Probe => {
                    if let Some(map) = record.value.as_object_mut() {
                        map.insert("probe", probe());
                    }
                }
                Mode::Sleep => std::thread::sleep(SLEEP),
                Mode::Fanout => {
                    if let Some(map) = record.value.as_object_mut() {
                        map.insert("filler", Value::from("x".repeat(1024)));
                    }
                    for _ in 1..self.outputs {
                        out.push(record.clone());
                    }
                }
            }
        }
        out.push(record);
        Ok(())
    }
}

fn probe() -> Value {
    let file = match std::fs::read_to_string("/etc/hostname") {
        Ok(_) => "readable".to_owned(),
        Err(e) => format!("denied: {e}"),
    };
    let dir = match std::fs::read_dir("/") {
        Ok(_) => "listable".to_owned(),
        Err(e) => format!("denied: {e}"),
    };
    let net = match std::net::TcpStream::connect("127.0.0.1:1") {
        Ok(_) => "connected".to_owned(),
        Err(e) => format!("denied: {e}"),
    };
    let count = |n: usize| Value::from(i64::try_from(n).unwrap_or(i64::MAX));
    let report: Map = [
        ("file", Value::from(file)),
        ("dir", Value::from(dir)),
        ("env", count(std::env::vars().count())),
        ("args", count(std::env::args().count())),
        ("net", Value::from(net)),
        ("http", Value::from(http_probe())),
    ]
    .into_iter()
    .collect();
    Value::Object(report)
}

/// Sends `GET http://127.0.0.1:9/` through `wasi:http/outgoing-handler` and
/// says how it ended: `sent` when a response came, else `denied: <error code>`.
#[cfg(target_arch = "wasm32")]
fn http_probe() -> String {
    use wasip2::http::outgoing_handler::handle;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

    let request = OutgoingRequest::new(Fields::new());
    let built = request
        .set_scheme(Some(&Scheme::Http))
        .and_then(|()| request.set_authority(Some("127.0.0.1:9")))
        .and_then(|()| request.set_path_with_query(Some("/")));
    if built.is_err() {
        return "cannot build the request".to_owned();
    }
    match handle(request, None) {
        Err(code) => format!("denied: {code:?}"),
        Ok(response) => {
            response.subscribe().block();
            match response.get() {
                Some(Ok(Ok(_))) => "sent".to_owned(),
                Some(Ok(Err(code))) => format!("denied: {code:?}"),
                Some(Err(())) | None => "no answer".to_owned(),
            }
        }
    }
}

/// Natively (the crate's unit tests) there is no `wasi:http` to ask.
#[cfg(not(target_arch = "wasm32"))]
fn http_probe() -> String {
    "not a component".to_owned()
}

dataflow_transform_sdk::export!(Hostile);
