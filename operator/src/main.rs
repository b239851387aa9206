//! `dataflow-operator`: runs the DataFlow controller, or prints the CRD.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use dataflow_api::references::ObjectKey;
use dataflow_operator::desired::{NetworkPolicySettings, ProcessorSettings};
use dataflow_operator::grants::ReferencePolicy;
use dataflow_operator::hash_key::{self, HashKey};
use dataflow_operator::leader::{self, LeaseTiming};
use dataflow_operator::reconcile::Context;
use dataflow_operator::scope::Scope;
use dataflow_operator::telemetry::Metrics;
use dataflow_operator::webhook::Validator;
use dataflow_operator::{controller, crd};
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio_util::sync::CancellationToken;

/// Kubernetes operator for DataFlow resources.
#[derive(Parser)]
#[command(name = "dataflow-operator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (and, when configured, the webhook).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML: DataFlow and DataFlowCron
    /// (two documents), or the one `--kind` names.
    Crd {
        /// Only this kind's CRD.
        #[arg(long, value_parser = ["DataFlow", "DataFlowCron"])]
        kind: Option<String>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Processor image for DataFlow Deployments.
    #[arg(long, env = "PROCESSOR_IMAGE")]
    processor_image: String,
    /// LOG_LEVEL given to processors.
    #[arg(long, env = "PROCESSOR_LOG_LEVEL", default_value = "info")]
    processor_log_level: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// Elect a leader among replicas through a Lease (turn off only with one replica).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// This replica's identity in the election (the pod name in cluster).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Namespace of the operator: holds the Lease and its own Deployment.
    #[arg(long, env = "OPERATOR_NAMESPACE")]
    operator_namespace: Option<String>,
    /// The operator's own Deployment; when its image changes every DataFlow is
    /// reconciled.
    #[arg(long, env = "OPERATOR_DEPLOYMENT_NAME")]
    operator_deployment_name: Option<String>,
    /// Serve the validating webhook here (HTTPS); needs the cert and key.
    #[arg(long, env = "WEBHOOK_ADDR", requires_all = ["webhook_cert", "webhook_key"])]
    webhook_addr: Option<SocketAddr>,
    /// PEM certificate of the webhook.
    #[arg(long, env = "WEBHOOK_CERT_FILE")]
    webhook_cert: Option<PathBuf>,
    /// PEM private key of the webhook.
    #[arg(long, env = "WEBHOOK_KEY_FILE")]
    webhook_key: Option<PathBuf>,
    /// Watch only these namespaces (comma-separated; empty: every namespace).
    #[arg(long, env = "WATCH_NAMESPACES", default_value = "")]
    watch_namespaces: String,
    /// Follow `*SecretRef`s into other namespaces without the Secret's grant
    /// (annotation `dataflow.dataflow.io/allowed-namespaces`).
    #[arg(long, env = "ALLOW_CROSS_NAMESPACE_REFERENCES", default_value_t = false, action = clap::ArgAction::Set)]
    allow_cross_namespace_references: bool,
    /// The Secret (in the operator's namespace) holding the key of the pod
    /// template's spec hash; made when missing.
    #[arg(long, env = "HASH_KEY_SECRET", default_value = hash_key::DEFAULT_SECRET_NAME)]
    hash_key_secret: String,
    /// Put a NetworkPolicy beside each processor that lets only pods of these
    /// namespaces (comma-separated) reach its port; empty: no NetworkPolicy.
    #[arg(long, env = "PROCESSOR_NETWORK_POLICY_NAMESPACES", default_value = "")]
    processor_network_policy_namespaces: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { kind } => match crds_yaml(kind.as_deref()) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            init_logging();
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The CRD of `kind`, or both as two YAML documents.
fn crds_yaml(kind: Option<&str>) -> Result<String, serde_norway::Error> {
    match kind {
        Some("DataFlow") => crd::crd_yaml(),
        Some(_) => crd::cron_crd_yaml(),
        None => Ok(format!(
            "{}---\n{}",
            crd::crd_yaml()?,
            crd::cron_crd_yaml()?
        )),
    }
}

/// `LOG_LEVEL` (debug|info|warn|error|trace; the chatty client libraries stay at
/// warn) or `RUST_LOG` directives (exactly as given); JSON lines unless on a
/// terminal.
fn init_logging() {
    use std::io::IsTerminal;
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| {
        let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".into());
        format!("{level},kube_lease_manager=warn,kube_runtime=warn,hyper=warn")
    });
    let filter = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a TLS crypto provider is already installed"))?;
    let client = Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in cluster config or KUBECONFIG)")?;
    let metrics = Metrics::new()?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));

    let metrics_server = tokio::spawn(metrics.clone().serve(args.metrics_addr));
    let references = ReferencePolicy {
        allow_cross_namespace: args.allow_cross_namespace_references,
    };
    let scope = Scope::parse(&args.watch_namespaces);
    let operator_namespace = args
        .operator_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let hash_key =
        HashKey::load_or_create(client.clone(), &operator_namespace, &args.hash_key_secret)
            .await
            .context("cannot have the spec hash key")?;

    if let Some(addr) = args.webhook_addr {
        let (Some(cert), Some(key)) = (args.webhook_cert.clone(), args.webhook_key.clone()) else {
            anyhow::bail!("--webhook-addr needs --webhook-cert and --webhook-key");
        };
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr} for the webhook"))?;
        listener.set_nonblocking(true)?;
        let validator = Arc::new(Validator::new(client.clone(), metrics.clone(), references));
        tokio::spawn(async move {
            if let Err(e) = validator.serve(listener, &cert, &key).await {
                tracing::error!("{e}");
            }
        });
    }

    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("dataflow-operator-{}", std::process::id()));
    let reporter = Reporter {
        controller: dataflow_operator::FIELD_MANAGER.into(),
        instance: Some(identity.clone()),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        ProcessorSettings {
            image: args.processor_image.clone(),
            log_level: args.processor_log_level.clone(),
            network_policy: network_policy(&args.processor_network_policy_namespaces),
        },
        Recorder::new(client.clone(), reporter),
        metrics.clone(),
        hash_key,
        references,
    ));
    let own_deployment = match (&args.operator_namespace, &args.operator_deployment_name) {
        (Some(namespace), Some(name)) => Some(ObjectKey::new(namespace.clone(), name.clone())),
        _ => None,
    };
    metrics.set_ready(true);

    tracing::info!(?scope, "watching");
    if args.leader_election {
        let namespace = operator_namespace;
        let election = leader::join(
            client.clone(),
            &namespace,
            &identity,
            LeaseTiming::default(),
        )
        .await
        .context("cannot join the leader election")?;
        tracing::info!(%identity, %namespace, lease = leader::LEASE_NAME, "waiting for the lease");
        leader::while_leading(
            election.leading,
            shutdown.clone(),
            metrics.clone(),
            |lost| {
                controller::run(
                    client.clone(),
                    ctx.clone(),
                    scope.clone(),
                    own_deployment.clone(),
                    lost.wait(),
                )
            },
        )
        .await;
        // Dropping the receiver makes the election task release the lease.
        match election.task.await {
            Ok(Ok(_)) => tracing::info!("lease released"),
            Ok(Err(e)) => tracing::warn!(error = %e, "lease release failed"),
            Err(e) => tracing::warn!(error = %e, "election task failed"),
        }
    } else {
        let stop = shutdown.clone();
        controller::run(client, ctx, scope, own_deployment, async move {
            stop.cancelled().await
        })
        .await;
    }
    metrics_server.abort();
    Ok(())
}

/// The NetworkPolicy settings for a comma-separated namespace list (none when
/// the list is empty).
fn network_policy(namespaces: &str) -> Option<NetworkPolicySettings> {
    let from_namespaces: Vec<String> = namespaces
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    (!from_namespaces.is_empty()).then_some(NetworkPolicySettings { from_namespaces })
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
