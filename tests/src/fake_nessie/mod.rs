//! An in-process stand-in for Nessie's Iceberg REST catalog, for the Nessie
//! connector tests (no Nessie server can run on the build machine).
//!
//! The HTTP side follows the Iceberg REST catalog OpenAPI spec as Nessie serves
//! it: `GET /iceberg/<branch>/v1/config?warehouse=` answers with `overrides`
//! that point the client at `/iceberg/v1/<branch>|<warehouse>/...`; namespaces
//! (`GET`/`HEAD`/`POST`), tables (`POST` create, `GET`/`HEAD` load) and commits
//! (`POST` with `requirements` and `updates`, `409` when a requirement fails), and
//! errors shaped as the spec's `ErrorModel`. A bearer token or basic credentials
//! can be required (`401` otherwise).
//!
//! The table side is real Iceberg: requests and responses carry the spec's table
//! metadata, requirements are checked and updates applied by the `iceberg`
//! crate's metadata builder, and every version's metadata file is written to a
//! local warehouse directory, next to the Parquet and Avro files the client
//! writes. Each branch keeps its own catalog, as Nessie does. A test can read the
//! tables back independently with [`FakeNessie::read_rows`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use iceberg::io::FileIO;
use iceberg::spec::{Schema, TableMetadata, TableMetadataBuilder, UnboundPartitionSpec};
use iceberg::table::StaticTable;
use iceberg::{TableCreation, TableIdent, TableRequirement, TableUpdate};
use serde_json::{Value, json};

mod routes;
use routes::{
    commit, config, config_default, create_namespace, create_table, guard, list_namespaces,
    list_tables, load_table, namespace,
};

/// Namespace levels are joined by this byte in URLs (the spec's unit separator).
const NAMESPACE_SEPARATOR: char = '\u{1f}';

/// Failures to inject.
#[derive(Debug, Default)]
pub struct Script {
    /// The next this-many commits answer 503 without applying anything.
    pub unavailable_commits: usize,
    /// The next this-many commits are applied, but answered 502 (the client cannot
    /// know they landed).
    pub lost_commit_answers: usize,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path with its query.
    pub path: String,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Branch {
    namespaces: BTreeSet<Vec<String>>,
    /// Table -> (metadata version, metadata file location).
    tables: BTreeMap<(Vec<String>, String), (u32, String)>,
}

#[derive(Default)]
struct Inner {
    branches: BTreeMap<String, Branch>,
    seen: Vec<Seen>,
    commits: usize,
    script: Script,
}

struct Shared {
    base: String,
    warehouse_dir: PathBuf,
    authorization: Option<String>,
    file_io: FileIO,
    inner: Mutex<Inner>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeNessie {
    shared: Arc<Shared>,
}

/// An error answer in the spec's `ErrorModel` shape.
struct Failure {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message, "type": self.kind, "code": self.status.as_u16()
        }});
        (self.status, Json(body)).into_response()
    }
}

type Reply = Result<Response, Failure>;

fn error(status: StatusCode, kind: &'static str, message: &str) -> Failure {
    Failure {
        status,
        kind,
        message: message.to_owned(),
    }
}

impl FakeNessie {
    /// Starts the fake on a free port with its warehouse under `warehouse_dir`.
    /// With `authorization` (a whole header value, `Bearer t` or `Basic ...`),
    /// every request must carry it.
    pub async fn start(warehouse_dir: &FsPath, authorization: Option<&str>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake nessie");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let mut inner = Inner::default();
        inner.branches.insert("main".into(), Branch::default());
        let shared = Arc::new(Shared {
            base,
            warehouse_dir: warehouse_dir.to_owned(),
            authorization: authorization.map(str::to_owned),
            file_io: FileIO::new_with_fs(),
            inner: Mutex::new(inner),
        });
        let app = Router::new()
            .route("/iceberg/v1/config", get(config_default))
            .route("/iceberg/{reference}/v1/config", get(config))
            .route(
                "/iceberg/v1/{prefix}/namespaces",
                get(list_namespaces).post(create_namespace),
            )
            .route(
                "/iceberg/v1/{prefix}/namespaces/{namespace}",
                get(namespace),
            )
            .route(
                "/iceberg/v1/{prefix}/namespaces/{namespace}/tables",
                get(list_tables).post(create_table),
            )
            .route(
                "/iceberg/v1/{prefix}/namespaces/{namespace}/tables/{table}",
                get(load_table).post(commit),
            )
            .fallback(|method: Method, uri: axum::http::Uri| async move {
                error(
                    StatusCode::NOT_FOUND,
                    "NotFoundException",
                    &format!("no route for {method} {uri}"),
                )
            })
            .layer(axum::middleware::from_fn_with_state(shared.clone(), guard))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { shared }
    }

    /// `http://127.0.0.1:<port>`, the `baseURL` to give the connector.
    pub fn url(&self) -> String {
        self.shared.base.clone()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets up failures to inject.
    pub fn script(&self, script: Script) {
        self.inner().script = script;
    }

    /// Creates a branch as a copy of `from` (Nessie's `create reference`).
    pub fn create_branch(&self, name: &str, from: &str) {
        let mut inner = self.inner();
        let copy = inner.branches.get(from).map(|b| Branch {
            namespaces: b.namespaces.clone(),
            tables: b.tables.clone(),
        });
        inner
            .branches
            .insert(name.to_owned(), copy.unwrap_or_default());
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner().seen.clone()
    }

    /// Commits that landed so far.
    pub fn commits(&self) -> usize {
        self.inner().commits
    }

    /// The metadata of `namespace.table` on `branch`, if the table exists.
    pub async fn metadata(
        &self,
        branch: &str,
        namespace: &str,
        table: &str,
    ) -> Option<TableMetadata> {
        let location = self.metadata_location(branch, namespace, table)?;
        TableMetadata::read_from(&self.shared.file_io, &location)
            .await
            .ok()
    }

    fn metadata_location(&self, branch: &str, namespace: &str, table: &str) -> Option<String> {
        let key = (
            namespace.split('.').map(str::to_owned).collect::<Vec<_>>(),
            table.to_owned(),
        );
        let inner = self.inner();
        inner
            .branches
            .get(branch)?
            .tables
            .get(&key)
            .map(|(_, l)| l.clone())
    }

    /// Reads every row of the table on `branch` with the `iceberg` crate's own
    /// scan (no catalog, straight from the metadata file), each row as a JSON
    /// object of its columns.
    pub async fn read_rows(&self, branch: &str, namespace: &str, table: &str) -> Vec<Value> {
        let Some(location) = self.metadata_location(branch, namespace, table) else {
            return Vec::new();
        };
        let ident = TableIdent::from_strs(namespace.split('.').chain([table])).expect("ident");
        let table = StaticTable::from_metadata_file(&location, ident, self.shared.file_io.clone())
            .await
            .expect("open the table");
        crate::nessie_server::rows_of(&table).await
    }

    /// Appends rows to a table the way another engine would: its own REST client,
    /// one Parquet file per call and an `append` commit. Returns the new
    /// snapshot's id.
    pub async fn append_rows(
        &self,
        branch: &str,
        namespace: &str,
        table: &str,
        rows: &[&str],
    ) -> i64 {
        self.append_rows_then(branch, namespace, table, rows, |_| {})
            .await
    }

    /// [`FakeNessie::append_rows`], calling `before_commit` with the new data
    /// files' locations once they are written and before the commit.
    pub async fn append_rows_then(
        &self,
        branch: &str,
        namespace: &str,
        table: &str,
        rows: &[&str],
        before_commit: impl FnOnce(&[String]),
    ) -> i64 {
        use iceberg::transaction::{ApplyTransactionAction, Transaction};
        use iceberg::{Catalog, CatalogBuilder};
        let mut props = std::collections::HashMap::from([(
            "uri".to_owned(),
            format!("{}/iceberg/{branch}", self.shared.base),
        )]);
        if let Some(authorization) = &self.shared.authorization {
            props.insert("header.Authorization".to_owned(), authorization.clone());
        }
        let catalog = iceberg_catalog_rest::RestCatalogBuilder::default()
            .with_storage_factory(Arc::new(iceberg::io::LocalFsStorageFactory))
            .load("other-engine", props)
            .await
            .expect("catalog client");
        let ident = TableIdent::from_strs(namespace.split('.').chain([table])).expect("ident");
        let loaded = catalog.load_table(&ident).await.expect("load the table");
        let files = write_strings(&loaded, rows).await;
        let paths: Vec<String> = files.iter().map(|f| f.file_path().to_owned()).collect();
        before_commit(&paths);
        let tx = Transaction::new(&loaded);
        let tx = tx
            .fast_append()
            .add_data_files(files)
            .apply(tx)
            .expect("append");
        let committed = tx.commit(&catalog).await.expect("commit");
        committed
            .metadata()
            .current_snapshot_id()
            .expect("a snapshot")
    }
}

/// Writes `rows` into the table's single string column as one Parquet file.
async fn write_strings(
    table: &iceberg::table::Table,
    rows: &[&str],
) -> Vec<iceberg::spec::DataFile> {
    use iceberg::spec::DataFileFormat;
    use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
    use iceberg::writer::file_writer::ParquetWriterBuilder;
    use iceberg::writer::file_writer::location_generator::{
        DefaultFileNameGenerator, DefaultLocationGenerator,
    };
    use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
    use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
    let schema = table.metadata().current_schema().clone();
    let arrow_schema =
        Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).expect("arrow schema"));
    let column: arrow_array::ArrayRef = Arc::new(arrow_array::StringArray::from_iter_values(
        rows.iter().copied(),
    ));
    let batch = arrow_array::RecordBatch::try_new(arrow_schema, vec![column]).expect("batch");
    let rolling = RollingFileWriterBuilder::new_with_default_file_size(
        ParquetWriterBuilder::new(
            parquet::file::properties::WriterProperties::default(),
            schema,
        ),
        table.file_io().clone(),
        DefaultLocationGenerator::new(table.metadata()).expect("locations"),
        DefaultFileNameGenerator::new("other-engine".into(), None, DataFileFormat::Parquet),
    );
    let mut writer = DataFileWriterBuilder::new(rolling)
        .build(None)
        .await
        .expect("writer");
    writer.write(batch).await.expect("write");
    writer.close().await.expect("close")
}
