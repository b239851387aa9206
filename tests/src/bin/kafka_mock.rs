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
//! Usage: `dataflow-kafka-mock [--brokers N] [--address-file PATH]`. It prints the
//! bootstrap address on stdout (and writes it to `--address-file`), then serves
//! until SIGTERM or SIGINT.

use std::io::Write;

use anyhow::{Context, bail};
use rdkafka::mocking::MockCluster;

fn main() -> anyhow::Result<()> {
    let mut brokers = 1;
    let mut address_file = None;
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
            other => bail!(
                "unknown argument {other:?}; usage: dataflow-kafka-mock [--brokers N] [--address-file PATH]"
            ),
        }
    }
    let cluster = MockCluster::new(brokers).context("cannot start the mock Kafka cluster")?;
    let bootstrap = cluster.bootstrap_servers();
    if let Some(path) = &address_file {
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, &bootstrap).with_context(|| format!("cannot write {tmp}"))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {path}"))?;
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{bootstrap}")?;
    stdout.flush()?;

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
        anyhow::Ok(())
    })?;
    drop(cluster);
    Ok(())
}
