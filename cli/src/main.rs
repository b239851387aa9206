//! `dataflow`: the authors' tool. `dataflow transform init` makes a project,
//! `test` runs it in the processor's own sandbox over a sample, `build` makes a
//! Rust component, `package` prints what ships it to a cluster; `dataflow tap`
//! shows the messages at a point of a running flow; `dataflow test` runs a
//! flow's tests.

mod flow_test;
mod init;
mod package;
mod project;
mod rust_build;
mod sample_run;
mod step;
mod tap;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::init::SdkSource;
use crate::project::{Language, Project, SAMPLE_EXPECTED, SAMPLE_INPUT};

/// Write, test and ship dataflow transforms; watch and test flows.
#[derive(Parser)]
#[command(name = "dataflow", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Transforms: init, test, build, package.
    #[command(subcommand)]
    Transform(TransformCommand),
    /// The messages passing a point of a flow, live.
    Tap(Box<tap::TapArgs>),
    /// Run a flow's transformations over the tests of a YAML file and compare
    /// what reaches each sink, route and the error sink (exit 1 on a difference).
    Test {
        /// The flow (a DataFlow manifest or a bare spec).
        flow: PathBuf,
        /// Its tests.
        tests: PathBuf,
    },
}

#[derive(Subcommand)]
enum TransformCommand {
    /// Make a working project: the transform, a sample input, the expected output.
    Init(InitArgs),
    /// Run the transform in the real host over the sample and diff against the expected output.
    Test(TestArgs),
    /// Build the component (Rust); check the source loads (Python, TypeScript).
    Build(DirArg),
    /// Print the ConfigMap and the DataFlow step, sha256 pinned.
    Package(PackageArgs),
}

#[derive(Args)]
struct DirArg {
    /// The project directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
}

#[derive(Args)]
struct InitArgs {
    /// The new project's directory.
    dir: PathBuf,
    /// The transform's language.
    #[arg(long, value_enum)]
    lang: Language,
    /// Its name (a Kubernetes name); defaults to the directory's.
    #[arg(long)]
    name: Option<String>,
    /// Rust: the SDK as a path dependency (`<checkout>/transforms-wasm/sdk`);
    /// defaults to the checkout this binary was built in.
    #[arg(long, conflicts_with = "sdk_git")]
    sdk_path: Option<PathBuf>,
    /// Rust: the SDK as a git dependency (the repository's URL).
    #[arg(long)]
    sdk_git: Option<String>,
}

#[derive(Args)]
struct TestArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Write what the transform gave to sample/expected.jsonl instead of comparing.
    #[arg(long)]
    update: bool,
}

#[derive(Args)]
struct PackageArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The ConfigMap's name; defaults to the project's.
    #[arg(long)]
    name: Option<String>,
    /// The ConfigMap's namespace (the DataFlow's); none: kubectl's current one.
    #[arg(long)]
    namespace: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".to_owned()),
        ))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let result = match cli.command {
        Command::Transform(TransformCommand::Init(args)) => init_command(args),
        Command::Transform(TransformCommand::Test(args)) => {
            test_command(&args.dir.dir, args.update)
        }
        Command::Transform(TransformCommand::Build(args)) => build_command(&args.dir),
        Command::Transform(TransformCommand::Package(args)) => package_command(args),
        Command::Tap(args) => tap::run(*args),
        Command::Test { flow, tests } => flow_test::run(&flow, &tests),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_command(args: InitArgs) -> anyhow::Result<ExitCode> {
    let sdk = match (args.sdk_path, args.sdk_git) {
        (Some(path), _) => Some(SdkSource::Path(
            path.canonicalize()
                .with_context(|| format!("--sdk-path {}", path.display()))?,
        )),
        (None, Some(url)) => Some(SdkSource::Git(url)),
        (None, None) => SdkSource::beside_executable(),
    };
    let project = init::init(&args.dir, args.lang, args.name, sdk)?;
    println!(
        "made {} ({} transform {}); next: dataflow transform test {}",
        args.dir.display(),
        project.language,
        project.name,
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The project and, for Rust, its freshly built component.
fn load(dir: &Path) -> anyhow::Result<(Project, Option<PathBuf>)> {
    let project = Project::load(dir)?;
    let component = match project.language {
        Language::Rust => Some(rust_build::build(dir)?),
        Language::Python | Language::Typescript => None,
    };
    Ok((project, component))
}

fn test_command(dir: &Path, update: bool) -> anyhow::Result<ExitCode> {
    let (project, component) = load(dir)?;
    let mut chain = step::chain(step::inline_step(dir, &project, component.as_deref())?)?;
    let actual = sample_run::run_sample(&mut chain, &dir.join(SAMPLE_INPUT))?;
    let expected_path = dir.join(SAMPLE_EXPECTED);
    if update {
        let mut text = actual.join("\n");
        text.push('\n');
        std::fs::write(&expected_path, text)
            .with_context(|| format!("cannot write {}", expected_path.display()))?;
        println!("wrote {} lines to {SAMPLE_EXPECTED}", actual.len());
        return Ok(ExitCode::SUCCESS);
    }
    let expected = sample_run::expected_lines(&expected_path)?;
    match sample_run::diff(&expected, &actual) {
        None => {
            println!(
                "ok: {} output lines as {SAMPLE_EXPECTED} expects",
                actual.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(shown) => {
            println!(
                "--- {SAMPLE_EXPECTED}\n+++ what {} gave\n{shown}",
                project.name
            );
            println!("FAILED: the output differs (`--update` takes it as the new expectation)");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn build_command(dir: &Path) -> anyhow::Result<ExitCode> {
    let (project, component) = load(dir)?;
    // Loading it as the processor would checks it links and takes its config.
    step::chain(step::inline_step(dir, &project, component.as_deref())?)?;
    match component {
        Some(path) => {
            let payload = package::Payload::component(&path)?;
            println!(
                "built {} ({} bytes, sha256 {})",
                path.display(),
                payload.bytes.len(),
                payload.sha256()
            );
            if payload.bytes.len() > package::CONFIG_MAP_LIMIT {
                println!(
                    "warning: larger than a ConfigMap holds ({} bytes)",
                    package::CONFIG_MAP_LIMIT
                );
            }
        }
        None => println!(
            "nothing to build for {}: the source is the transform; it loads in the runtime",
            project.language
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn package_command(args: PackageArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir.dir;
    let (mut project, component) = load(dir)?;
    step::chain(step::inline_step(dir, &project, component.as_deref())?)?;
    if let Some(name) = args.name {
        anyhow::ensure!(
            project::is_dns_label(&name),
            "--name {name:?}: must be a Kubernetes name"
        );
        project.name = name;
    }
    let payload = match &component {
        Some(path) => package::Payload::component(path)?,
        None => package::Payload::source(dir, &project)?,
    };
    print!(
        "{}",
        package::manifests(&project, &payload, args.namespace.as_deref())?
    );
    Ok(ExitCode::SUCCESS)
}
