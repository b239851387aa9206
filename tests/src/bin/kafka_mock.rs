//! `dataflow-kafka-mock`: a Kafka-protocol broker for tests and local runs.
//!
//! No Apache Kafka can be installed on the machines this project is built on, so
//! `make services` starts this process instead. It hosts librdkafka's mock cluster
//! (the one `rdkafka::mocking` exposes): real brokers listening on real TCP ports,
//! speaking the Kafka wire protocol, with topics, partitions, consumer groups,
//! committed offsets and idempotent producers, all kept in this process's memory.
//! Clients in other processes (the processor binary, tests) connect to it like to
//! any broker.
//!
//! Two differences from a real broker matter to tests: topics created on first use
//! get four partitions, and each partition keeps only its newest 5 MB (or 100,000
//! messages), dropping older ones. Tests that need more partitions, or that load
//! more than 5 MB per partition before reading, create the topic through the
//! control port first: a line `create-topic NAME PARTITIONS` answered by `ok` or
//! `error: ...` (the mock cluster does not serve the CreateTopics admin call).
//!
//! Usage: `dataflow-kafka-mock [--brokers N] [--address-file PATH]
//! [--control-file PATH]`. It prints the bootstrap address on stdout (and writes it
//! to `--address-file`, the control address to `--control-file`), then serves until
//! SIGTERM or SIGINT.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::ClientContext;
use rdkafka::mocking::MockCluster;

fn write_atomically(path: &str, text: &str) -> anyhow::Result<()> {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {tmp}"))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {path}"))
}

/// Serves one control connection: one command per line.
fn control<C: ClientContext>(
    cluster: &MockCluster<'_, C>,
    stream: TcpStream,
) -> anyhow::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["create-topic", name, partitions] => match partitions.parse::<i32>() {
                Ok(n) if n > 0 => match cluster.create_topic(name, n, 1) {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => format!("error: {e}"),
                },
                _ => format!("error: bad partition count {partitions:?}"),
            },
            _ => format!(
                "error: unknown command {:?}; use create-topic NAME PARTITIONS",
                line.trim()
            ),
        };
        writeln!(writer, "{answer}")?;
        line.clear();
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut brokers = 1;
    let mut address_file: Option<String> = None;
    let mut control_file: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--brokers" => {
                brokers = args
                    .next()
                    .context("--brokers needs a number")?
                    .parse()
                    .context("--brokers needs a number")?;
            }
            "--address-file" => {
                address_file = Some(args.next().context("--address-file needs a path")?)
            }
            "--control-file" => {
                control_file = Some(args.next().context("--control-file needs a path")?)
            }
            other => bail!(
                "unknown argument {other:?}; usage: dataflow-kafka-mock [--brokers N] [--address-file PATH] [--control-file PATH]"
            ),
        }
    }
    let cluster = MockCluster::new(brokers).context("cannot start the mock Kafka cluster")?;
    let bootstrap = cluster.bootstrap_servers();
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot open the control port")?;
    listener.set_nonblocking(true)?;
    if let Some(path) = &control_file {
        write_atomically(path, &listener.local_addr()?.to_string())?;
    }
    if let Some(path) = &address_file {
        write_atomically(path, &bootstrap)?;
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{bootstrap}")?;
    stdout.flush()?;

    let stop = Arc::new(AtomicBool::new(false));
    let signalled = stop.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            signalled.store(true, Ordering::SeqCst);
            anyhow::Ok(())
        })
    });
    // The cluster handle stays on this thread; control connections are served here.
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = control(&cluster, stream) {
                    eprintln!("control connection failed: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).context("control port"),
        }
    }
    drop(cluster);
    Ok(())
}
