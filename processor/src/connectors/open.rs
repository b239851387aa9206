//! Opening the connector a spec names.

use dataflow_api::{PositionReset, SinkSpec, SourceSpec};
use tokio::sync::watch;

use super::{
    ConnectorError, FileSink, FileSource, GeneratorSource, Health, Sink, Source, StdinSource,
    StdoutSink, clickhouse, kafka, nessie, postgres, trino,
};
use crate::connectors::polling::PollingSource;

/// How a source is opened, beyond its spec.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceOptions<'a> {
    /// Keep positions the source stores itself across restarts (else in memory).
    pub persist: bool,
    /// End once the input present at start is read (`execution.mode: job`):
    /// Kafka up to the high watermarks at start, polling sources at the first
    /// poll that finds less than a full batch.
    pub to_completion: bool,
    /// Move the source's position here before reading (checked against the
    /// source with `ResetRequest::check_fits` beforehand).
    pub reset: Option<&'a PositionReset>,
    /// Turns `true` once another replica has applied `reset`: a source whose
    /// reset waits for the others (Kafka's, for an empty group) skips it then.
    pub reset_applied_elsewhere: Option<&'a watch::Receiver<bool>>,
}

/// An open source, and what a position reset did to it.
pub struct OpenedSource {
    /// The source, ready to read.
    pub source: Box<dyn Source>,
    /// Where a reset moved it (partitions and offsets, a cursor, a snapshot).
    pub reset: Option<String>,
}

/// Opens the source described by `spec` (at spec path `path`) for the DataFlow
/// `flow` (`namespace/name`); its reachability goes to `health`.
pub async fn open_source(
    path: &str,
    spec: &SourceSpec,
    flow: &str,
    options: SourceOptions<'_>,
    health: Health,
) -> Result<OpenedSource, ConnectorError> {
    let at = |block: &str| format!("{path}.{block}");
    let SourceOptions {
        persist,
        to_completion,
        reset,
        ..
    } = options;
    let kept = |source: Box<dyn Source>| {
        Ok(OpenedSource {
            source,
            reset: None,
        })
    };
    let refused = |what: &PositionReset| {
        Err(ConnectorError::Config {
            path: path.to_owned(),
            reason: format!("a {} source cannot move to {what}", spec.kind().as_str()),
        })
    };
    match (spec, reset) {
        (SourceSpec::File(file), None) => {
            health.up();
            kept(Box::new(FileSource::open(&file.path).await?))
        }
        (SourceSpec::Stdin, None) => {
            health.up();
            kept(Box::<StdinSource>::default())
        }
        (SourceSpec::Generator(generator), None) => {
            health.up();
            kept(Box::new(GeneratorSource::new(generator)))
        }
        (SourceSpec::Kafka(kafka), _) => {
            let (source, reset) =
                kafka::KafkaSource::open(&at("kafka"), kafka, flow, health, options).await?;
            Ok(OpenedSource {
                source: Box::new(source),
                reset,
            })
        }
        (SourceSpec::Postgresql(pg), _) => {
            let source =
                postgres::open_source(&at("postgresql"), pg, flow, persist, health).await?;
            polling(source.ending_after_one_pass(to_completion), reset).await
        }
        (SourceSpec::PostgresqlCdc(cdc), None | Some(PositionReset::Snapshot)) => {
            let snapshot_again = reset.is_some();
            let source = postgres::cdc::open_source(
                &at("postgresqlCdc"),
                cdc,
                flow,
                persist,
                snapshot_again,
                health,
            )
            .await?;
            Ok(OpenedSource {
                source: Box::new(source),
                reset: snapshot_again.then(|| {
                    format!(
                        "a new snapshot of {} before the stream continues",
                        cdc.tables.join(", ")
                    )
                }),
            })
        }
        (SourceSpec::Clickhouse(ch), _) => {
            let source =
                clickhouse::open_source(&at("clickhouse"), ch, flow, persist, health).await?;
            polling(source.ending_after_one_pass(to_completion), reset).await
        }
        (SourceSpec::Trino(trino), None) => {
            let source = trino::open_source(&at("trino"), trino, health).await?;
            kept(Box::new(source.ending_after_one_pass(to_completion)))
        }
        (SourceSpec::Nessie(nessie), None) => kept(Box::new(
            nessie::NessieSource::open(&at("nessie"), nessie, health).await?,
        )),
        (_, Some(other)) => refused(other),
    }
}

/// A polling source, moved first when `reset` says so.
async fn polling(
    mut source: PollingSource,
    reset: Option<&PositionReset>,
) -> Result<OpenedSource, ConnectorError> {
    let detail = match reset {
        None => None,
        Some(PositionReset::Beginning) => Some(source.reset_to(None).await?),
        Some(PositionReset::Cursor(cursor)) => Some(source.reset_to(Some(cursor)).await?),
        Some(other) => {
            return Err(ConnectorError::Config {
                path: "spec.source".into(),
                reason: format!("a polling source cannot move to {other}"),
            });
        }
    };
    Ok(OpenedSource {
        source: Box::new(source),
        reset: detail,
    })
}

/// Opens the sink described by `spec` (at spec path `path`); its reachability
/// goes to `health`.
pub async fn open_sink(
    path: &str,
    spec: &SinkSpec,
    health: Health,
) -> Result<Box<dyn Sink>, ConnectorError> {
    let at = |block: &str| format!("{path}.{block}");
    Ok(match spec {
        SinkSpec::File(file) => {
            health.up();
            Box::new(FileSink::open(&file.path).await?)
        }
        SinkSpec::Stdout => {
            health.up();
            Box::new(StdoutSink::default())
        }
        SinkSpec::Kafka(kafka) => Box::new(kafka::KafkaSink::open(&at("kafka"), kafka, health)?),
        SinkSpec::Postgresql(pg) => postgres::open_sink(&at("postgresql"), pg, health).await?,
        SinkSpec::Clickhouse(ch) => clickhouse::open_sink(&at("clickhouse"), ch, health).await?,
        SinkSpec::Trino(trino) => trino::open_sink(&at("trino"), trino, health).await?,
        SinkSpec::Nessie(nessie) => nessie::open_sink(&at("nessie"), nessie, health).await?,
    })
}
