//! The `run` command: one DataFlow until its source ends or a stop signal, with
//! metrics, status reports and a bounded shutdown.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dataflow_api::ResetRequest;
use dataflow_processor::flow::{self, FlowOptions, ResetOrder};
use dataflow_processor::pipeline::PipelineConfig;
use dataflow_processor::progress::Progress;
use dataflow_processor::status_report::StatusReporter;
use dataflow_telemetry::{Exporter, LivenessCheck};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::RunArgs;

/// Where `/metrics`, `/healthz` and `/readyz` are served inside a cluster when
/// `--metrics-addr` is not given.
const IN_CLUSTER_METRICS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9090);

/// `run`: the flow until its source ends or a stop signal.
pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (loaded, chain) = crate::load(&args.spec)?;
    let reset_request = match args.reset_position.as_deref() {
        Some(text) => Some(ResetRequest::for_spec(text, &loaded.spec)?),
        None => None,
    };
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
    let grace = Duration::from_secs(args.shutdown_grace_seconds);
    let stall = Duration::from_secs(
        args.stall_seconds
            .unwrap_or_else(|| u64::from(loaded.spec.progress_deadline_seconds()))
            .max(1),
    );
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
            if let Some(exporter) = &exporter {
                exporter.set_liveness_check(stall_check(progress.clone(), stall));
            }
            let stop_reporting = CancellationToken::new();
            let mut reporter = if report_status {
                status_reporter(&namespace, &name, progress.clone()).await
            } else {
                None
            };
            let reset = match reset_request {
                Some(request) => reset_order(request, report_status, reporter.as_mut())?,
                None => None,
            };
            let reporter =
                reporter.map(|r| tokio::spawn(r.run(interval, stop_reporting.clone())));
            let options = FlowOptions {
                pipeline: PipelineConfig::for_spec(&loaded.spec, args.batch_size, args.batch_bytes),
                progress: Some(progress),
                metrics: exporter,
                reset,
            };
            let flow = format!("{namespace}/{name}");
            let running = flow::run(&loaded.spec, &flow, chain, shutdown.clone(), options);
            let result = tokio::select! {
                result = running => result.map_err(anyhow::Error::from),
                () = grace_over(&shutdown, grace) => Err(anyhow::anyhow!(
                    "the flow did not stop within {} s of the stop signal (a server it waits for does not answer); exiting without committing what was in flight, which is read again on the next start",
                    grace.as_secs()
                )),
            };
            if let Err(error) = &result {
                tracing::error!(error = %format!("{error:#}"), "the flow stopped on an error");
            }
            stop_reporting.cancel();
            if let Some(reporter) = reporter {
                match reporter.await {
                    Ok(mut reporter) => {
                        if let Err(error) = &result {
                            reporter.report_failure(&format!("{error:#}")).await;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "status reporter failed"),
                }
            }
            result
        }
        .instrument(span),
    );
    // Tasks still blocked on a server must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    eprintln!("{}", summary?);
    Ok(ExitCode::SUCCESS)
}

/// Returns `grace` after `shutdown` is cancelled.
async fn grace_over(shutdown: &CancellationToken, grace: Duration) {
    shutdown.cancelled().await;
    tokio::time::sleep(grace).await;
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

/// `/livez`: fails once input has waited longer than `limit` with no batch handled.
fn stall_check(progress: Arc<Progress>, limit: Duration) -> LivenessCheck {
    Arc::new(move || match progress.stalled(limit) {
        None => Ok(()),
        Some(waited) => Err(format!(
            "stalled: input has waited {} s with no batch handled (limit {} s)",
            waited.as_secs(),
            limit.as_secs()
        )),
    })
}

/// A reporter of counts to the DataFlow's status; without a reachable API
/// server the flow runs on and says so.
async fn status_reporter(
    namespace: &str,
    name: &str,
    progress: Arc<Progress>,
) -> Option<StatusReporter> {
    // kube's TLS is rustls; pick its crypto once for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match kube::Client::try_default().await {
        Ok(client) => Some(StatusReporter::new(client, namespace, name, progress).await),
        Err(error) => {
            tracing::warn!(%error, "no Kubernetes API: the DataFlow status will not show counts");
            None
        }
    }
}

/// The reset to apply, unless the status shows this very request applied by an
/// earlier start (the operator keeps passing it while the annotation stays).
/// While it waits to be applied, the status is watched for another replica
/// applying it first. When the status is to be reported but cannot be read,
/// whether the request was applied is unknown: the start fails (and is retried)
/// rather than move the position a second time.
fn reset_order(
    request: ResetRequest,
    report_status: bool,
    reporter: Option<&mut StatusReporter>,
) -> anyhow::Result<Option<ResetOrder>> {
    let (done, outcome) = oneshot::channel();
    let mut applied_elsewhere = None;
    if report_status {
        let unknown = || {
            anyhow::anyhow!(
                "position reset {:?}: the DataFlow status cannot be read, so whether an earlier start applied it is unknown; not starting rather than moving the position twice (the next start tries again)",
                request.text
            )
        };
        let reporter = reporter.ok_or_else(unknown)?;
        let applied = reporter
            .applied_reset()
            .ok_or_else(unknown)?
            .map(str::to_owned);
        if applied.as_deref() == Some(request.text.as_str()) {
            tracing::info!(reset = %request.text, "this position reset was applied by an earlier start; reading on from where the flow is");
            return Ok(None);
        }
        reporter.expect_reset(request.text.clone(), outcome);
        applied_elsewhere = Some(reporter.watch_applied_elsewhere(request.text.clone()));
    }
    tracing::info!(reset = %request.text, "moving the source's position before reading");
    Ok(Some(ResetOrder {
        position: request.position,
        done: Some(done),
        applied_elsewhere,
    }))
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
