//! `dataflow tap`: the messages passing a point of a flow, from a processor's
//! `/api/v1/tap` (Server-Sent Events), printed as JSON lines or a table.
//!
//! Three ways to reach a processor: run the flow here (`--spec`: the processor
//! is started with a token of ours and holds its source until we watch, so the
//! first messages are seen too), a URL with a token file (`--url`, e.g. through
//! `kubectl port-forward`), or a DataFlow in the cluster (`--dataflow`: the pod
//! and the flow's tap Secret are found with the current kubeconfig, and the
//! stream goes through the API server's pod proxy as the user, so Kubernetes
//! RBAC decides).

mod cluster;
mod events;
mod local;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

pub use events::SseParser;

/// `dataflow tap` arguments.
#[derive(Args)]
pub struct TapArgs {
    /// Run this flow here and watch it.
    #[arg(long, conflicts_with_all = ["url", "dataflow"])]
    spec: Option<PathBuf>,
    /// A processor's address (`http://127.0.0.1:9090`).
    #[arg(long, requires = "token_file", conflicts_with = "dataflow")]
    url: Option<String>,
    /// The file holding the flow's tap token (with `--url`).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// A DataFlow of the current kubeconfig's cluster.
    #[arg(long)]
    dataflow: Option<String>,
    /// Its namespace (default: the kubeconfig's).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// Where: source, step:N, sink, route:N or errors.
    #[arg(long, default_value = "sink")]
    at: String,
    /// Messages a second (1 to 1000).
    #[arg(long, default_value_t = 10)]
    rate: u32,
    /// Most payload bytes a message shows.
    #[arg(long)]
    max_bytes: Option<u64>,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// A readable table instead of JSON lines.
    #[arg(long, conflicts_with = "json")]
    table: bool,
    /// JSON lines (the default).
    #[arg(long)]
    json: bool,
}

impl TapArgs {
    fn query(&self) -> String {
        let mut query = format!("at={}&rate={}", self.at, self.rate);
        if let Some(bytes) = self.max_bytes {
            query.push_str(&format!("&maxBytes={bytes}"));
        }
        query
    }
}

/// Where samples come from, one chunk of the stream at a time.
pub enum Stream {
    /// Straight from the processor.
    Direct(reqwest::Response),
    /// Through the API server's pod proxy.
    Proxy(kube::client::Body),
}

impl Stream {
    /// The next chunk; `None` at the end. A processor that stops (its flow
    /// ended, or it was stopped) closes the stream without ending it
    /// properly: that is the end of the tap, not an error of the user's.
    async fn chunk(&mut self) -> anyhow::Result<Option<bytes::Bytes>> {
        match self {
            Self::Direct(response) => match response.chunk().await {
                Ok(chunk) => Ok(chunk),
                Err(error) if error.is_body() || error.is_decode() => {
                    eprintln!("note: the processor closed the stream");
                    Ok(None)
                }
                Err(error) => Err(error.into()),
            },
            Self::Proxy(body) => {
                use http_body_util::BodyExt as _;
                loop {
                    match body.frame().await {
                        None => return Ok(None),
                        Some(frame) => {
                            if let Ok(data) = frame?.into_data() {
                                return Ok(Some(data));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Runs `dataflow tap`.
pub fn run(args: TapArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let query = args.query();
        let mut local = None;
        let stream = if let Some(spec) = &args.spec {
            let (processor, stream) = local::start(spec, &query).await?;
            local = Some(processor);
            stream
        } else if let Some(url) = &args.url {
            let file = args
                .token_file
                .as_ref()
                .context("--url needs --token-file")?;
            let token = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            Stream::Direct(open_direct(url, token.trim(), &query).await?)
        } else if let Some(dataflow) = &args.dataflow {
            cluster::open(dataflow, args.namespace.as_deref(), &query).await?
        } else {
            anyhow::bail!(
                "say which flow: --spec FILE, --url URL --token-file F, or --dataflow NAME"
            );
        };
        let printed = print_samples(stream, &args).await;
        if let Some(mut processor) = local {
            processor.finish().await;
        }
        printed
    })
}

/// Opens `url`'s tap with `token`.
pub async fn open_direct(url: &str, token: &str, query: &str) -> anyhow::Result<reqwest::Response> {
    let address = format!("{}/api/v1/tap?{query}", url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .get(&address)
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(refusal(status, &response.text().await.unwrap_or_default()));
    }
    Ok(response)
}

/// The error of a tap that answered `status`, naming the processor's reason.
fn refusal(status: u16, text: &str) -> anyhow::Error {
    let reason = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.to_owned());
    anyhow::anyhow!("the tap refused ({status}): {reason}")
}

async fn print_samples(mut stream: Stream, args: &TapArgs) -> anyhow::Result<ExitCode> {
    let mut parser = SseParser::default();
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    while let Some(chunk) = stream.chunk().await? {
        for (event, data) in parser.push(&chunk) {
            match event.as_str() {
                "sample" => {
                    let sample: Value =
                        serde_json::from_str(&data).context("a sample that is not JSON")?;
                    let mut out = stdout.lock();
                    if args.table {
                        writeln!(out, "{}", events::table_row(&sample))?;
                    } else {
                        writeln!(out, "{sample}")?;
                    }
                    out.flush()?;
                    printed += 1;
                    if args.count.is_some_and(|n| printed >= n) {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                "dropped" => {
                    eprintln!("note: samples skipped ({data}): this terminal read too slowly")
                }
                _ => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
