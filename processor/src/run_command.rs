//! The `run` command: one DataFlow until its source ends or a stop signal, with
//! metrics, status reports and a bounded shutdown.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dataflow_api::ResetRequest;
use dataflow_inspect::Token;
use dataflow_processor::flow::{self, FlowOptions, ResetOrder};
use dataflow_processor::inspect::FlowInspect;
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
    let (loaded, mut chain) = crate::load(&args.spec)?;
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
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let metrics_addr = args
        .metrics_addr
        .or_else(|| in_cluster.then_some(IN_CLUSTER_METRICS_ADDR));
    let token = tap_token(args.tap_token_file.as_deref(), args.ui.is_some())?;
    let inspect = if metrics_addr.is_some() || args.ui.is_some() {
        // Off by default in a cluster, on for a local run.
        let shows = loaded
            .spec
            .observability
            .as_ref()
            .map_or(!in_cluster, |o| o.shows_messages(!in_cluster));
        let inspect = FlowInspect::new(&loaded.spec, &name, &namespace, &chain, shows)?;
        inspect.watch_chain(&mut chain);
        Some(inspect)
    } else {
        None
    };
    let span =
        tracing::info_span!("dataflow", dataflow_name = %name, dataflow_namespace = %namespace);
    let summary = runtime.block_on(
        async {
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            let api = inspect.as_ref().map(|i| i.router(token.clone()));
            let exporter = match metrics_addr {
                Some(addr) => Some(start_metrics(addr, api.clone()).await?),
                None => None,
            };
            let _history = inspect.as_ref().map(FlowInspect::keep_history);
            if let Some(inspect) = &inspect {
                hold_until_watched(inspect).await;
            }
            if let (Some(addr), Some(api), Some(token)) = (args.ui, api, &token) {
                start_page(addr, api, token).await?;
            }
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
                inspect,
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

/// Binds the metrics address (a taken port fails the start) and serves it, with
/// the `/api/v1` endpoints when given, in the background.
async fn start_metrics(addr: SocketAddr, api: Option<axum::Router>) -> anyhow::Result<Exporter> {
    let exporter = Exporter::new()?;
    let listener = Exporter::bind(addr).await?;
    let serving = exporter.clone();
    tokio::spawn(
        async move {
            if let Err(error) = serving.serve_with(listener, api.unwrap_or_default()).await {
                tracing::error!(%error, "the metrics endpoint stopped");
            }
        }
        .in_current_span(),
    );
    Ok(exporter)
}

/// Serves the flow's page and its `/api/v1` on `addr`; prints the page's
/// address with its token (after `#`, so it never reaches a server's log).
async fn start_page(addr: SocketAddr, api: axum::Router, token: &Token) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the page"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    let app = dataflow_web::router().merge(api);
    tokio::spawn(
        async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the page stopped");
            }
        }
        .in_current_span(),
    );
    eprintln!("the flow's page: http://{bound}/#token={}", token.reveal());
    Ok(())
}

/// With `DATAFLOW_TAP_HOLD_SECONDS` (set by `dataflow tap --spec`), waits up to
/// that long for a tap client before the source is read, so a short flow's
/// first messages are seen too.
async fn hold_until_watched(inspect: &FlowInspect) {
    let Some(seconds) = std::env::var("DATAFLOW_TAP_HOLD_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return;
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds.min(300));
    while inspect.clients() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The token of `/api/v1`: `DATAFLOW_TAP_TOKEN`, or the file's content, or a
/// new random one when the page is served without either.
fn tap_token(file: Option<&std::path::Path>, page: bool) -> anyhow::Result<Option<Token>> {
    let text = match (std::env::var("DATAFLOW_TAP_TOKEN").ok(), file) {
        (Some(text), _) => Some(text),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the tap token {}", file.display()))?,
        ),
        (None, None) if page => {
            let mut bytes = [0u8; 24];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("cannot draw a token: {e}"))?;
            Some(hex::encode(bytes))
        }
        (None, None) => None,
    };
    match text {
        None => Ok(None),
        Some(text) => Token::new(&text)
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("the tap token must have at least 16 characters")),
    }
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
