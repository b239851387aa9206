//! `dataflow-processor`: run, validate or try out a DataFlow spec.

mod run_command;

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dataflow_api::ScriptLanguage;
use dataflow_api::manifest::LoadedSpec;
use dataflow_core::Message;
use dataflow_processor::builtins::BUILTINS_COMPONENT;
use dataflow_processor::pipeline::PipelineConfig;
use dataflow_processor::{component_image, local_components, spec_file};
use dataflow_wasm_host::{ScriptRuntimes, TransformChain, WasmRuntime};

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
    /// Compile the built-ins and the script runtimes for this machine into DIR,
    /// where later starts take them without compiling (the image ships this set).
    Precompile {
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Args)]
pub(crate) struct SpecArg {
    /// The spec: YAML or JSON, a DataFlow manifest or a bare spec.
    #[arg(
        long,
        visible_alias = "spec-path",
        default_value = "/etc/dataflow/spec.json"
    )]
    spec: PathBuf,
    /// Where components named by `wasm.configMapRef` are read outside a cluster:
    /// `<dir>/<configmap>/<key>` or `<dir>/<key>`.
    #[arg(long, value_name = "DIR")]
    transform_dir: Option<PathBuf>,
    /// Where components named by `wasm.image` are kept once pulled (default:
    /// `components` under DATAFLOW_CACHE_DIR, the pod's emptyDir, or ~/.cache/dataflow).
    #[arg(long, value_name = "DIR")]
    component_cache: Option<PathBuf>,
}

impl SpecArg {
    /// The spec with its ConfigMap components found locally and its image
    /// components pulled; the ConfigMap steps that could not be found.
    fn resolve(&self) -> anyhow::Result<(LoadedSpec, Vec<local_components::MissingComponent>)> {
        let mut loaded = spec_file::load(&self.spec)?;
        // From here on, no log line or error shows a credential of this spec.
        dataflow_api::redact::install(dataflow_api::redact::Redactor::from_spec(
            &serde_json::to_value(&loaded.spec)?,
        ));
        let missing = local_components::locate(&mut loaded.spec, self.transform_dir.as_deref());
        let cache = self
            .component_cache
            .clone()
            .unwrap_or_else(component_image::default_cache_dir);
        component_image::pull_images(&mut loaded.spec, &cache)?;
        Ok((loaded, missing))
    }
}

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    spec: SpecArg,
    /// DataFlow name (for logs); defaults to the manifest's.
    #[arg(long)]
    name: Option<String>,
    /// DataFlow namespace (for logs); defaults to the manifest's.
    #[arg(long)]
    namespace: Option<String>,
    /// Most messages per batch.
    #[arg(long, default_value_t = PipelineConfig::default().batch_size)]
    batch_size: usize,
    /// Most payload bytes per batch (a batch holds at least one message).
    #[arg(long, default_value_t = PipelineConfig::default().batch_bytes)]
    batch_bytes: usize,
    /// Publish processed/error counts in the DataFlow's status through the
    /// Kubernetes API (default: on inside a cluster, off elsewhere).
    #[arg(long, env = "DATAFLOW_REPORT_STATUS", action = clap::ArgAction::Set)]
    report_status: Option<bool>,
    /// Seconds between status reports.
    #[arg(long, default_value_t = 10)]
    status_interval_seconds: u64,
    /// `/livez` fails when input has waited this many seconds with no batch handled
    /// (a stuck flow, restarted by Kubernetes' liveness probe); default: the
    /// spec's `progressDeadlineSeconds` (600 when unset).
    #[arg(long, env = "DATAFLOW_STALL_SECONDS")]
    stall_seconds: Option<u64>,
    /// Serve /metrics (Prometheus), /healthz, /livez and /readyz here (default: 0.0.0.0:9090
    /// inside a cluster, none elsewhere).
    #[arg(long, env = "METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Move the source's position before reading: earliest, latest,
    /// timestamp:<RFC 3339 or epoch ms>, offsets:<p>=<o>,... (Kafka); beginning,
    /// cursor:<value> (PostgreSQL, ClickHouse); snapshot (PostgreSQL CDC). In a
    /// cluster the operator passes the DataFlow's reset annotation here, and a
    /// value the status shows as applied is not applied again.
    #[arg(long, value_name = "POSITION")]
    reset_position: Option<String>,
    /// After SIGTERM or SIGINT, seconds to drain before giving up (uncommitted
    /// messages are read again on the next start); below Kubernetes' 30 s grace.
    #[arg(long, env = "DATAFLOW_SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    shutdown_grace_seconds: u64,
    /// The file holding the token every `/api/v1` request must present (in a
    /// cluster the operator mounts the flow's `dataflow-<name>-tap` Secret);
    /// `DATAFLOW_TAP_TOKEN` gives the token itself.
    #[arg(long, env = "DATAFLOW_TAP_TOKEN_FILE", value_name = "FILE")]
    tap_token_file: Option<PathBuf>,
    /// Serve the flow's page here (with `/api/v1`); a token is made for it when
    /// none is given, and the page's address with it is printed.
    #[arg(long, value_name = "ADDR")]
    ui: Option<SocketAddr>,
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
        Some(Command::Precompile { out }) => (Command::Precompile { out }, "info"),
        None => (Command::Run(cli.run), "info"),
    };
    dataflow_processor::logging::init(default_level);
    let result = match command {
        Command::Run(args) => run_command::run(args),
        Command::Validate(args) => validate(&args),
        Command::Precompile { out } => precompile(&out),
        Command::Transform(args) => transform(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let reason = format!("{err:#}");
            eprintln!("error: {}", dataflow_api::redact::redact(&reason));
            ExitCode::FAILURE
        }
    }
}

/// Reads the spec, finds its ConfigMap components locally and builds the chain.
pub(crate) fn load(args: &SpecArg) -> anyhow::Result<(LoadedSpec, TransformChain)> {
    let (loaded, missing) = args.resolve()?;
    if let Some(missing) = missing.first() {
        anyhow::bail!("{missing}");
    }
    let runtime = WasmRuntime::new()?;
    let chain = TransformChain::build(
        &runtime,
        &loaded.spec,
        BUILTINS_COMPONENT,
        &ScriptRuntimes::installed(),
    )?;
    Ok((loaded, chain))
}

/// Checks the spec and loads every transform it can; a component that only the
/// operator can fetch (a ConfigMap not given with `--transform-dir`) is named,
/// and the rest is still checked. Image components are pulled (or taken from
/// the cache), so they are checked against their pin here too.
fn validate(args: &SpecArg) -> anyhow::Result<ExitCode> {
    let (loaded, missing) = args.resolve()?;
    let runtime = WasmRuntime::new()?;
    TransformChain::build(
        &runtime,
        &local_components::without(&loaded.spec, &missing),
        BUILTINS_COMPONENT,
        &ScriptRuntimes::installed(),
    )?;
    for step in &missing {
        println!(
            "note: spec.transformations[{}]: the {} in ConfigMap {}/{} was not loaded; the operator's webhook checks it in the cluster, or pass --transform-dir to check it here",
            step.index, step.what, step.name, step.key
        );
    }
    println!("ok");
    Ok(ExitCode::SUCCESS)
}

/// Compiles the fused built-ins and every installed script runtime into `out`.
fn precompile(out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let runtime = WasmRuntime::new()?;
    let path = runtime.precompile_builtins(BUILTINS_COMPONENT, out)?;
    println!("{}", path.display());
    let runtimes = ScriptRuntimes::installed();
    for language in [ScriptLanguage::Python, ScriptLanguage::Javascript] {
        let file = runtimes.runtime(language)?;
        let bytes =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let path = runtime.precompile(&bytes, out)?;
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn transform(args: TransformArgs) -> anyhow::Result<ExitCode> {
    const BATCH: usize = 256;
    let (loaded, mut chain) = load(&args.spec)?;
    let input: Box<dyn BufRead> = match &args.input {
        Some(path) => Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    let mut stderr = std::io::stderr().lock();
    let original_sink = loaded.spec.sink.kind();
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
            let output = chain.run(&mut batch);
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
