//! Opening the connector a spec names.

use dataflow_api::{SinkSpec, SourceSpec};

use super::{
    ConnectorError, FileSink, FileSource, GeneratorSource, Health, Sink, Source, StdinSource,
    StdoutSink, clickhouse, kafka, nessie, postgres, trino,
};

/// How a source is opened, beyond its spec.
#[derive(Debug, Clone, Copy)]
pub struct SourceOptions {
    /// Keep positions the source stores itself across restarts (else in memory).
    pub persist: bool,
    /// End once the input present at start is read (`execution.mode: job`):
    /// Kafka up to the high watermarks at start, polling sources at the first
    /// poll that finds less than a full batch.
    pub to_completion: bool,
}

/// Opens the source described by `spec` (at spec path `path`) for the DataFlow
/// `flow` (`namespace/name`); its reachability goes to `health`.
pub async fn open_source(
    path: &str,
    spec: &SourceSpec,
    flow: &str,
    options: SourceOptions,
    health: Health,
) -> Result<Box<dyn Source>, ConnectorError> {
    let at = |block: &str| format!("{path}.{block}");
    let SourceOptions {
        persist,
        to_completion,
    } = options;
    Ok(match spec {
        SourceSpec::File(file) => {
            health.up();
            Box::new(FileSource::open(&file.path).await?)
        }
        SourceSpec::Stdin => {
            health.up();
            Box::new(StdinSource::default())
        }
        SourceSpec::Generator(generator) => {
            health.up();
            Box::new(GeneratorSource::new(generator))
        }
        SourceSpec::Kafka(kafka) => Box::new(
            kafka::KafkaSource::open(&at("kafka"), kafka, flow, health, to_completion).await?,
        ),
        SourceSpec::Postgresql(pg) => Box::new(
            postgres::open_source(&at("postgresql"), pg, flow, persist, health)
                .await?
                .ending_after_one_pass(to_completion),
        ),
        SourceSpec::PostgresqlCdc(cdc) => Box::new(
            postgres::cdc::open_source(&at("postgresqlCdc"), cdc, flow, persist, health).await?,
        ),
        SourceSpec::Clickhouse(ch) => Box::new(
            clickhouse::open_source(&at("clickhouse"), ch, flow, persist, health)
                .await?
                .ending_after_one_pass(to_completion),
        ),
        SourceSpec::Trino(trino) => Box::new(
            trino::open_source(&at("trino"), trino, health)
                .await?
                .ending_after_one_pass(to_completion),
        ),
        SourceSpec::Nessie(nessie) => {
            Box::new(nessie::NessieSource::open(&at("nessie"), nessie, health).await?)
        }
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
