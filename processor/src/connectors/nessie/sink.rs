//! The Nessie (Iceberg) sink.
//!
//! Each batch becomes one Parquet data file and one Iceberg append commit on the
//! branch. The message (JSON text) goes into the table's `data` string column,
//! which is what `autoCreateTable` makes; other columns of an existing table must
//! be optional and are left null. Every commit carries the snapshot property
//! `dataflow.batch-id`, so when a commit's outcome was lost (the catalog answered
//! 5xx, or the connection dropped) the retry first looks for that batch in the
//! table's snapshots and does not append it twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use async_trait::async_trait;
use dataflow_api::connectors::{DEFAULT_FLUSH_INTERVAL_SECS, NessieSinkSpec};
use iceberg::spec::{
    DataFile, DataFileFormat, NestedField, PrimitiveType, Schema, TableMetadata, Type,
};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{Catalog, TableCreation};
use iceberg_catalog_rest::RestCatalog;
use parquet::file::properties::WriterProperties;

use super::catalog::{Connection, connect};
use super::errors::classify;
use crate::connectors::batching::{BatchWriter, BatchingSink};
use crate::connectors::retry::Failure;
use crate::connectors::{ConnectorError, Health, Rejected, Retry, Sink};
use dataflow_api::ErrorType;
use dataflow_core::Message;

/// The snapshot property naming the batch a commit appended.
pub const BATCH_PROPERTY: &str = "dataflow.batch-id";

/// The column messages are written to.
const DATA_COLUMN: &str = "data";

/// Default rows per commit.
const DEFAULT_BATCH_SIZE: u32 = 100;

/// Appends batches to one table.
struct TableWriter {
    retry: Retry,
    catalog: RestCatalog,
    ident: iceberg::TableIdent,
    /// The table as of our last commit; reloaded after a failure.
    table: Mutex<Option<Table>>,
}

/// Connects, creates the table when `autoCreateTable` asks, and checks its columns
/// (spec path `path`).
pub async fn open(
    path: &str,
    spec: &NessieSinkSpec,
    health: Health,
) -> Result<Box<dyn Sink>, ConnectorError> {
    let Connection {
        catalog,
        ident,
        label,
    } = connect(path, spec.into()).await?;
    let retry = Retry::new(format!("nessie sink {label}"), health);
    let name = retry.connector().to_owned();
    let fail = |what: &str| {
        let name = name.clone();
        let what = what.to_owned();
        move |(error_type, reason): (ErrorType, String)| ConnectorError::Failed {
            connector: name,
            error_type,
            reason: format!("{what}: {reason}"),
        }
    };
    let exists = retry
        .run("look up the table", classify, || {
            catalog.table_exists(&ident)
        })
        .await?
        .map_err(fail("look up the table"))?;
    if !exists {
        if spec.auto_create_table != Some(true) {
            return Err(ConnectorError::Config {
                path: format!("{path}.table"),
                reason: format!(
                    "table {label} does not exist (create it, or set autoCreateTable: true)"
                ),
            });
        }
        create_table(&retry, &catalog, &ident).await?;
    }
    let table = retry
        .run("load the table", classify, || catalog.load_table(&ident))
        .await?
        .map_err(fail("load the table"))?;
    check_columns(table.metadata()).map_err(|reason| ConnectorError::Config {
        path: format!("{path}.table"),
        reason: format!("table {label} {reason}"),
    })?;
    let writer = TableWriter {
        retry,
        catalog,
        ident,
        table: Mutex::new(Some(table)),
    };
    Ok(Box::new(BatchingSink::new(
        writer,
        spec.batch_size.unwrap_or(DEFAULT_BATCH_SIZE) as usize,
        spec.batch_flush_interval_seconds
            .unwrap_or(DEFAULT_FLUSH_INTERVAL_SECS),
    )))
}

/// Creates the namespace when missing, then the table with one `data` column.
async fn create_table(
    retry: &Retry,
    catalog: &RestCatalog,
    ident: &iceberg::TableIdent,
) -> Result<(), ConnectorError> {
    let name = retry.connector();
    let failed = |what: &str, (error_type, reason): (ErrorType, String)| ConnectorError::Failed {
        connector: name.to_owned(),
        error_type,
        reason: format!("{what}: {reason}"),
    };
    let namespace = ident.namespace();
    let namespace_exists = retry
        .run("look up the namespace", classify, || {
            catalog.namespace_exists(namespace)
        })
        .await?
        .map_err(|e| failed("look up the namespace", e))?;
    if !namespace_exists {
        let created = catalog.create_namespace(namespace, HashMap::new()).await;
        if let Err(e) = created
            && e.kind() != iceberg::ErrorKind::NamespaceAlreadyExists
        {
            return Err(failed(
                "create the namespace",
                (ErrorType::Failed, e.to_string()),
            ));
        }
    }
    let schema = Schema::builder()
        .with_fields(vec![
            NestedField::required(1, DATA_COLUMN, Type::Primitive(PrimitiveType::String)).into(),
        ])
        .build()
        .map_err(|e| failed("create the table", (ErrorType::Failed, e.to_string())))?;
    let creation = TableCreation::builder()
        .name(ident.name().to_owned())
        .schema(schema)
        .build();
    match catalog.create_table(namespace, creation).await {
        Ok(_) => {
            tracing::info!(connector = %name, "created the table");
            Ok(())
        }
        // Another writer created it first: fine.
        Err(e) if e.kind() == iceberg::ErrorKind::TableAlreadyExists => Ok(()),
        Err(e) => Err(failed(
            "create the table",
            (ErrorType::Failed, e.to_string()),
        )),
    }
}

/// A `data` string column, and nothing else that must be filled.
fn check_columns(metadata: &TableMetadata) -> Result<(), String> {
    let schema = metadata.current_schema();
    let mut has_data = false;
    for field in schema.as_struct().fields() {
        if field.name == DATA_COLUMN {
            if *field.field_type != Type::Primitive(PrimitiveType::String) {
                return Err(format!(
                    "has a `data` column of type {}, not string",
                    field.field_type
                ));
            }
            has_data = true;
        } else if field.required {
            return Err(format!(
                "has the required column `{}`, which the sink cannot fill (only `data` is written)",
                field.name
            ));
        }
    }
    if has_data {
        Ok(())
    } else {
        Err("has no `data` string column for the messages".into())
    }
}

/// The messages as a record batch of the table's current schema.
fn record_batch(metadata: &TableMetadata, texts: &[&str]) -> iceberg::Result<RecordBatch> {
    let schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(
        metadata.current_schema(),
    )?);
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            if field.name() == DATA_COLUMN {
                Arc::new(StringArray::from_iter_values(texts.iter().copied()))
            } else {
                new_null_array(field.data_type(), texts.len())
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).map_err(|e| {
        iceberg::Error::new(iceberg::ErrorKind::DataInvalid, "cannot build the batch")
            .with_source(e)
    })
}

/// Writes `texts` as one Parquet data file (or more, for a very large batch) in
/// the table's data location.
async fn write_data_files(
    table: &Table,
    texts: &[&str],
    batch_id: &str,
) -> iceberg::Result<Vec<DataFile>> {
    let batch = record_batch(table.metadata(), texts)?;
    let parquet = ParquetWriterBuilder::new(
        WriterProperties::default(),
        table.metadata().current_schema().clone(),
    );
    let rolling = RollingFileWriterBuilder::new_with_default_file_size(
        parquet,
        table.file_io().clone(),
        DefaultLocationGenerator::new(table.metadata())?,
        DefaultFileNameGenerator::new(
            format!("dataflow-{batch_id}"),
            None,
            DataFileFormat::Parquet,
        ),
    );
    let mut writer = DataFileWriterBuilder::new(rolling).build(None).await?;
    writer.write(batch).await?;
    writer.close().await
}

/// Whether a snapshot of `table` appended the batch `batch_id`.
fn holds_batch(table: &Table, batch_id: &str) -> bool {
    table.metadata().snapshots().any(|snapshot| {
        snapshot
            .summary()
            .additional_properties
            .get(BATCH_PROPERTY)
            .is_some_and(|id| id == batch_id)
    })
}

impl TableWriter {
    fn cached(&self) -> Option<Table> {
        self.table.lock().ok().and_then(|t| t.clone())
    }

    fn remember(&self, table: Option<Table>) {
        if let Ok(mut cached) = self.table.lock() {
            *cached = table;
        }
    }

    /// One try at landing the batch: write its files unless an earlier try did,
    /// then commit unless an earlier try's commit already landed.
    async fn attempt(
        &self,
        texts: &[&str],
        batch_id: &str,
        files: &mut Option<Vec<DataFile>>,
        after_failure: bool,
    ) -> iceberg::Result<()> {
        let table = match self.cached() {
            Some(table) if !after_failure => table,
            _ => self.catalog.load_table(&self.ident).await?,
        };
        if after_failure && holds_batch(&table, batch_id) {
            self.remember(Some(table));
            return Ok(());
        }
        let data_files = match files {
            Some(data_files) => data_files.clone(),
            None => {
                let written = write_data_files(&table, texts, batch_id).await?;
                *files = Some(written.clone());
                written
            }
        };
        let mut properties = HashMap::new();
        properties.insert(BATCH_PROPERTY.to_owned(), batch_id.to_owned());
        let tx = Transaction::new(&table);
        let tx = tx
            .fast_append()
            .add_data_files(data_files)
            .set_snapshot_properties(properties)
            .apply(tx)?;
        let committed = tx.commit(&self.catalog).await?;
        self.remember(Some(committed));
        Ok(())
    }
}

#[async_trait]
impl BatchWriter for TableWriter {
    fn name(&self) -> &str {
        self.retry.connector()
    }

    async fn write_batch(&self, batch: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError> {
        let (texts, refused): (Vec<Message>, Vec<Message>) = batch
            .into_iter()
            .partition(|m| std::str::from_utf8(&m.payload).is_ok());
        let rejected: Vec<Rejected> = refused
            .into_iter()
            .map(|message| Rejected {
                message,
                error_type: ErrorType::InvalidData,
                reason: "not UTF-8 text".into(),
            })
            .collect();
        if texts.is_empty() {
            return Ok(rejected);
        }
        let strs: Vec<&str> = texts
            .iter()
            .filter_map(|m| std::str::from_utf8(&m.payload).ok())
            .collect();
        let batch_id = uuid::Uuid::new_v4().to_string();
        let mut files = None;
        let retry = self.retry.clone();
        let mut attempts = retry.attempts("append");
        let mut after_failure = false;
        loop {
            match self
                .attempt(&strs, &batch_id, &mut files, after_failure)
                .await
            {
                Ok(()) => {
                    attempts.succeeded();
                    return Ok(rejected);
                }
                Err(e) => match classify(&e) {
                    Failure::Transient(reason) => {
                        self.remember(None);
                        after_failure = true;
                        attempts.transient(&reason).await;
                    }
                    // A commit is whole or nothing: no row can be singled out.
                    Failure::Rows(error_type, reason) | Failure::Fatal(error_type, reason) => {
                        return Err(ConnectorError::Failed {
                            connector: self.retry.connector().to_owned(),
                            error_type,
                            reason: format!("append: {reason}"),
                        });
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::TableMetadataBuilder;

    fn metadata(fields: Vec<NestedField>) -> TableMetadata {
        let schema = Schema::builder()
            .with_fields(fields.into_iter().map(Arc::new).collect::<Vec<_>>())
            .build()
            .unwrap();
        let creation = TableCreation::builder()
            .name("t".into())
            .location("file:///tmp/t".into())
            .schema(schema)
            .build();
        TableMetadataBuilder::from_table_creation(creation)
            .unwrap()
            .build()
            .unwrap()
            .metadata
    }

    #[test]
    fn columns_must_leave_only_data_to_fill() {
        let string = || Type::Primitive(PrimitiveType::String);
        assert!(check_columns(&metadata(vec![NestedField::required(1, "data", string())])).is_ok());
        assert!(
            check_columns(&metadata(vec![
                NestedField::optional(1, "data", string()),
                NestedField::optional(2, "note", string()),
            ]))
            .is_ok()
        );
        let err = check_columns(&metadata(vec![
            NestedField::required(1, "data", string()),
            NestedField::required(2, "id", Type::Primitive(PrimitiveType::Long)),
        ]))
        .unwrap_err();
        assert!(err.contains("required column `id`"), "{err}");
        let err = check_columns(&metadata(vec![NestedField::required(
            1,
            "data",
            Type::Primitive(PrimitiveType::Long),
        )]))
        .unwrap_err();
        assert!(err.contains("not string"), "{err}");
        assert!(check_columns(&metadata(vec![NestedField::required(1, "x", string())])).is_err());
    }

    #[test]
    fn batch_fills_data_and_nulls_the_rest() {
        let m = metadata(vec![
            NestedField::required(1, "data", Type::Primitive(PrimitiveType::String)),
            NestedField::optional(2, "n", Type::Primitive(PrimitiveType::Long)),
        ]);
        let batch = record_batch(&m, &["{\"a\":1}", "{}"]).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(1).null_count(), 2);
    }
}
