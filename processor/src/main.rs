//! `dataflow-processor`: run, validate or try out a DataFlow spec.

use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dataflow_processor::chain::TransformChain;
use dataflow_processor::pipeline::{self, PipelineConfig};
use dataflow_processor::progress::Progress;
use dataflow_processor::spec::{self, LoadedSpec};
use dataflow_processor::status_report::StatusReporter;
use dataflow_processor::telemetry::Exporter;
use dataflow_processor::wasm::{Message, WasmRuntime};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Where `/metrics`, `/healthz` and `/readyz` are served inside a cluster when
/// `--metrics-addr` is not given.
const IN_CLUSTER_METRICS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9090);

/// Runs one DataFlow: source -> WebAssembly transforms -> sinks.
#[derive(Parser)]
#[command(
    name = "dataflow-processor",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand: `run` (the form the operator's pods use).
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the flow until the source ends or SIGTERM/SIGINT.
    Run(RunArgs),
    /// Parse and validate the spec and load every transform, without connecting.
    Validate(SpecArg),
    /// Run only the transformation chain over JSON lines.
    Transform(TransformArgs),
}

#[derive(Args)]
struct SpecArg {
    /// The spec: YAML or JSON, a DataFlow manifest or a bare spec.
    #[arg(
        long,
        visible_alias = "spec-path",
        default_value = "/etc/dataflow/spec.json"
    )]
    spec: PathBuf,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    spec: SpecArg,
    /// DataFlow name (for logs); defaults to the manifest's.
    #[arg(long)]
    name: Option<String>,
    /// DataFlow namespace (for logs); defaults to the manifest's.
    #[arg(long)]
    namespace: Option<String>,
    /// Messages per batch.
    #[arg(long, default_value_t = PipelineConfig::default().batch_size)]
    batch_size: usize,
    /// Publish processed/error counts in the DataFlow's status through the
    /// Kubernetes API (default: on inside a cluster, off elsewhere).
    #[arg(long, env = "DATAFLOW_REPORT_STATUS", action = clap::ArgAction::Set)]
    report_status: Option<bool>,
    /// Seconds between status reports.
    #[arg(long, default_value_t = 10)]
    status_interval_seconds: u64,
    /// Serve /metrics (Prometheus), /healthz and /readyz here (default: 0.0.0.0:9090
    /// inside a cluster, none elsewhere).
    #[arg(long, env = "METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
}

#[derive(Args)]
struct TransformArgs {
    #[command(flatten)]
    spec: SpecArg,
    /// JSON-lines input; standard input when omitted.
    #[arg(long)]
    input: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (command, default_level) = match cli.command {
        Some(Command::Transform(args)) => (Command::Transform(args), "warn"),
        Some(Command::Validate(args)) => (Command::Validate(args), "warn"),
        Some(Command::Run(args)) => (Command::Run(args), "info"),
        None => (Command::Run(cli.run), "info"),
    };
    init_logging(default_level);
    let result = match command {
        Command::Run(args) => run(args),
        Command::Validate(args) => validate(&args),
        Command::Transform(args) => transform(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `LOG_LEVEL` (debug|info|warn|error) or `RUST_LOG` directives; logs go to stderr,
/// as JSON lines inside a cluster (or with `LOG_FORMAT=json`), readable text elsewhere.
fn init_logging(default_level: &str) {
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
        .with_writer(std::io::stderr)
        .with_target(false);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn load(path: &Path) -> anyhow::Result<(LoadedSpec, TransformChain)> {
    let loaded = spec::load(path)?;
    let runtime = WasmRuntime::new()?;
    let chain = TransformChain::build(&runtime, &loaded.spec)?;
    Ok((loaded, chain))
}

fn validate(args: &SpecArg) -> anyhow::Result<ExitCode> {
    load(&args.spec)?;
    println!("ok");
    Ok(ExitCode::SUCCESS)
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (loaded, chain) = load(&args.spec.spec)?;
    let name = args.name.or(loaded.name).unwrap_or_else(|| "local".into());
    let namespace = args
        .namespace
        .or(loaded.namespace)
        .unwrap_or_else(|| "default".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report_status = args
        .report_status
        .unwrap_or_else(|| std::env::var_os("KUBERNETES_SERVICE_HOST").is_some());
    let interval = Duration::from_secs(args.status_interval_seconds.max(1));
    let metrics_addr = args
        .metrics_addr
        .or_else(|| std::env::var_os("KUBERNETES_SERVICE_HOST").map(|_| IN_CLUSTER_METRICS_ADDR));
    let span =
        tracing::info_span!("dataflow", dataflow_name = %name, dataflow_namespace = %namespace);
    let summary = runtime.block_on(
        async {
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            let exporter = match metrics_addr {
                Some(addr) => Some(start_metrics(addr).await?),
                None => None,
            };
            tracing::info!("processor started");
            let progress = Arc::new(Progress::default());
            let stop_reporting = CancellationToken::new();
            let reporter = if report_status {
                start_status_reporter(
                    &namespace,
                    &name,
                    progress.clone(),
                    interval,
                    &stop_reporting,
                )
                .await
            } else {
                None
            };
            let config = PipelineConfig {
                batch_size: args.batch_size,
                progress: Some(progress),
                metrics: exporter,
                ..PipelineConfig::default()
            };
            let flow = format!("{namespace}/{name}");
            let result = pipeline::run(&loaded.spec, &flow, chain, shutdown, config).await;
            stop_reporting.cancel();
            if let Some(reporter) = reporter
                && let Err(error) = reporter.await
            {
                tracing::warn!(%error, "status reporter failed");
            }
            anyhow::Ok(result?)
        }
        .instrument(span),
    )?;
    eprintln!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// Binds the metrics address (a taken port fails the start) and serves it in the
/// background.
async fn start_metrics(addr: SocketAddr) -> anyhow::Result<Exporter> {
    let exporter = Exporter::new()?;
    let listener = Exporter::bind(addr).await?;
    let serving = exporter.clone();
    tokio::spawn(
        async move {
            if let Err(error) = serving.serve(listener).await {
                tracing::error!(%error, "the metrics endpoint stopped");
            }
        }
        .in_current_span(),
    );
    Ok(exporter)
}

/// Starts publishing counts to the DataFlow's status; without a reachable API
/// server the flow runs on and says so.
async fn start_status_reporter(
    namespace: &str,
    name: &str,
    progress: Arc<Progress>,
    interval: Duration,
    stop: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    // kube's TLS is rustls; pick its crypto once for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match kube::Client::try_default().await {
        Ok(client) => {
            let reporter = StatusReporter::new(client, namespace, name, progress).await;
            Some(tokio::spawn(reporter.run(interval, stop.clone())))
        }
        Err(error) => {
            tracing::warn!(%error, "no Kubernetes API: the DataFlow status will not show counts");
            None
        }
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT: the pipeline stops reading, drains and
/// flushes, and the process exits 0.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the processor with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining and stopping"),
        _ = int.recv() => tracing::info!("SIGINT: draining and stopping"),
    }
    shutdown.cancel();
}

fn transform(args: TransformArgs) -> anyhow::Result<ExitCode> {
    const BATCH: usize = 256;
    let (loaded, mut chain) = load(&args.spec.spec)?;
    let input: Box<dyn BufRead> = match &args.input {
        Some(path) => Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    let mut stderr = std::io::stderr().lock();
    let original_sink = loaded.spec.sink.kind.as_str();
    let mut batch = Vec::with_capacity(BATCH);
    // Lines are read as bytes: a line that is not UTF-8 becomes an error record.
    let mut lines = input.split(b'\n');
    loop {
        let line = lines.next().transpose().context("cannot read input")?;
        let end = line.is_none();
        if let Some(line) = line
            .as_deref()
            .map(<[u8]>::trim_ascii)
            .filter(|l| !l.is_empty())
        {
            batch.push(Message {
                payload: line.to_vec(),
                metadata: Vec::new(),
            });
        }
        if batch.len() == BATCH || (end && !batch.is_empty()) {
            let output = chain.run(&batch);
            for message in &output.outputs {
                stdout.write_all(&message.payload)?;
                stdout.write_all(b"\n")?;
            }
            for failure in &output.failures {
                stderr.write_all(&failure.record(&batch, original_sink).to_json())?;
                stderr.write_all(b"\n")?;
            }
            batch.clear();
        }
        if end {
            break;
        }
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
