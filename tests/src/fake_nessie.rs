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
use futures::TryStreamExt;
use iceberg::io::FileIO;
use iceberg::spec::{Schema, TableMetadata, TableMetadataBuilder, UnboundPartitionSpec};
use iceberg::table::StaticTable;
use iceberg::{TableCreation, TableIdent, TableRequirement, TableUpdate};
use serde_json::{Value, json};

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
        if table.metadata().current_snapshot().is_none() {
            return Vec::new();
        }
        let batches: Vec<arrow_array::RecordBatch> = table
            .scan()
            .build()
            .expect("plan the scan")
            .to_arrow()
            .await
            .expect("scan")
            .try_collect()
            .await
            .expect("read the batches");
        let mut text = Vec::new();
        let mut writer = arrow_json::LineDelimitedWriter::new(&mut text);
        for batch in &batches {
            writer.write(batch).expect("rows as JSON");
        }
        writer.finish().expect("rows as JSON");
        drop(writer);
        String::from_utf8(text)
            .expect("UTF-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("JSON row"))
            .collect()
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

/// Records the request and checks its credentials.
async fn guard(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    shared
        .inner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .seen
        .push(Seen {
            method: request.method().to_string(),
            path,
            authorization: authorization.clone(),
        });
    if let Some(required) = &shared.authorization
        && authorization.as_deref() != Some(required.as_str())
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "NotAuthorizedException",
            "missing or wrong credentials",
        )
        .into_response();
    }
    next.run(request).await
}

async fn config_default(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    config_for(&shared, "main", query.get("warehouse"))
}

async fn config(
    State(shared): State<Arc<Shared>>,
    Path(reference): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    config_for(&shared, &reference, query.get("warehouse"))
}

/// Nessie's answer: later calls go to `/iceberg/v1/<reference>|<warehouse>/...`.
fn config_for(shared: &Shared, reference: &str, warehouse: Option<&String>) -> Response {
    if !shared
        .inner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .branches
        .contains_key(reference)
    {
        return error(
            StatusCode::NOT_FOUND,
            "NoSuchReferenceException",
            &format!("Named reference '{reference}' not found"),
        )
        .into_response();
    }
    let prefix = match warehouse {
        Some(w) => format!("{reference}|{w}"),
        None => reference.to_owned(),
    };
    Json(json!({
        "defaults": {},
        "overrides": {"uri": format!("{}/iceberg", shared.base), "prefix": prefix},
    }))
    .into_response()
}

/// The branch a `<branch>|<warehouse>` prefix names, if it exists.
fn branch_of(shared: &Shared, prefix: &str) -> Result<String, Failure> {
    let branch = prefix.split('|').next().unwrap_or_default().to_owned();
    let inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    if inner.branches.contains_key(&branch) {
        Ok(branch)
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            "NoSuchReferenceException",
            &format!("Named reference '{branch}' not found"),
        ))
    }
}

fn levels(namespace: &str) -> Vec<String> {
    namespace
        .split(NAMESPACE_SEPARATOR)
        .map(str::to_owned)
        .collect()
}

async fn list_namespaces(State(shared): State<Arc<Shared>>, Path(prefix): Path<String>) -> Reply {
    let branch = branch_of(&shared, &prefix)?;
    let inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    let namespaces: Vec<&Vec<String>> = inner.branches[&branch].namespaces.iter().collect();
    Ok(Json(json!({"namespaces": namespaces})).into_response())
}

async fn create_namespace(
    State(shared): State<Arc<Shared>>,
    Path(prefix): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    let branch = branch_of(&shared, &prefix)?;
    let namespace: Vec<String> =
        serde_json::from_value(body["namespace"].clone()).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "BadRequestException",
                &format!("namespace: {e}"),
            )
        })?;
    let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    let branch = inner.branches.get_mut(&branch).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "NoSuchReferenceException",
            "branch gone",
        )
    })?;
    if !branch.namespaces.insert(namespace.clone()) {
        return Err(error(
            StatusCode::CONFLICT,
            "AlreadyExistsException",
            "Namespace already exists",
        ));
    }
    Ok(Json(json!({"namespace": namespace, "properties": body.get("properties").cloned().unwrap_or(json!({}))})).into_response())
}

async fn namespace(
    State(shared): State<Arc<Shared>>,
    Path((prefix, namespace)): Path<(String, String)>,
) -> Reply {
    let branch = branch_of(&shared, &prefix)?;
    let namespace = levels(&namespace);
    let inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    if inner.branches[&branch].namespaces.contains(&namespace) {
        Ok(Json(json!({"namespace": namespace, "properties": {}})).into_response())
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            "NoSuchNamespaceException",
            &format!("Namespace does not exist: {}", namespace.join(".")),
        ))
    }
}

async fn list_tables(
    State(shared): State<Arc<Shared>>,
    Path((prefix, namespace)): Path<(String, String)>,
) -> Reply {
    let branch = branch_of(&shared, &prefix)?;
    let namespace = levels(&namespace);
    let inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    let identifiers: Vec<Value> = inner.branches[&branch]
        .tables
        .keys()
        .filter(|(ns, _)| *ns == namespace)
        .map(|(ns, name)| json!({"namespace": ns, "name": name}))
        .collect();
    Ok(Json(json!({"identifiers": identifiers})).into_response())
}

fn bad_request(what: &str, e: impl std::fmt::Display) -> Failure {
    error(
        StatusCode::BAD_REQUEST,
        "BadRequestException",
        &format!("{what}: {e}"),
    )
}

async fn create_table(
    State(shared): State<Arc<Shared>>,
    Path((prefix, namespace)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Reply {
    let branch = branch_of(&shared, &prefix)?;
    let namespace = levels(&namespace);
    let name = body["name"]
        .as_str()
        .ok_or_else(|| bad_request("name", "required"))?
        .to_owned();
    let schema: Schema =
        serde_json::from_value(body["schema"].clone()).map_err(|e| bad_request("schema", e))?;
    let partition_spec: Option<UnboundPartitionSpec> = match body.get("partition-spec") {
        Some(v) if !v.is_null() => {
            Some(serde_json::from_value(v.clone()).map_err(|e| bad_request("partition-spec", e))?)
        }
        _ => None,
    };
    let properties: std::collections::HashMap<String, String> =
        serde_json::from_value(body.get("properties").cloned().unwrap_or(json!({})))
            .map_err(|e| bad_request("properties", e))?;
    {
        let inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        let b = &inner.branches[&branch];
        if !b.namespaces.contains(&namespace) {
            return Err(error(
                StatusCode::NOT_FOUND,
                "NoSuchNamespaceException",
                &format!("Namespace does not exist: {}", namespace.join(".")),
            ));
        }
        if b.tables.contains_key(&(namespace.clone(), name.clone())) {
            return Err(error(
                StatusCode::CONFLICT,
                "AlreadyExistsException",
                &format!("Table already exists: {name}"),
            ));
        }
    }
    let location = body["location"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "file://{}/{branch}/{}/{name}",
                shared.warehouse_dir.display(),
                namespace.join("/")
            )
        });
    let creation = TableCreation::builder()
        .name(name.clone())
        .location(location.clone())
        .schema(schema)
        .partition_spec_opt(partition_spec)
        .properties(properties)
        .build();
    let metadata = TableMetadataBuilder::from_table_creation(creation)
        .and_then(|b| b.build())
        .map_err(|e| bad_request("table", e))?
        .metadata;
    let file = write_metadata(&shared, &location, 0, &metadata).await?;
    let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = inner.branches.get_mut(&branch) {
        b.tables.insert((namespace, name), (0, file.clone()));
    }
    Ok(
        Json(json!({"metadata-location": file, "metadata": metadata, "config": {}}))
            .into_response(),
    )
}

async fn write_metadata(
    shared: &Shared,
    location: &str,
    version: u32,
    metadata: &TableMetadata,
) -> Result<String, Failure> {
    let file = format!(
        "{location}/metadata/{version:05}-{}.metadata.json",
        uuid::Uuid::new_v4()
    );
    let bytes = serde_json::to_vec(metadata).map_err(|e| bad_request("metadata", e))?;
    let output = shared.file_io.new_output(&file).map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceFailureException",
            &e.to_string(),
        )
    })?;
    output.write(Bytes::from(bytes)).await.map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceFailureException",
            &e.to_string(),
        )
    })?;
    Ok(file)
}

async fn load_table(
    State(shared): State<Arc<Shared>>,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
) -> Reply {
    let branch = branch_of(&shared, &prefix)?;
    let key = (levels(&namespace), table);
    let location = {
        let inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.branches[&branch]
            .tables
            .get(&key)
            .map(|(_, l)| l.clone())
    };
    let Some(location) = location else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "NoSuchTableException",
            &format!("Table does not exist: {}", key.1),
        ));
    };
    let metadata = TableMetadata::read_from(&shared.file_io, &location)
        .await
        .map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceFailureException",
                &e.to_string(),
            )
        })?;
    Ok(
        Json(json!({"metadata-location": location, "metadata": metadata, "config": {}}))
            .into_response(),
    )
}

async fn commit(
    State(shared): State<Arc<Shared>>,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Reply {
    let branch = branch_of(&shared, &prefix)?;
    let requirements: Vec<TableRequirement> = serde_json::from_value(body["requirements"].clone())
        .map_err(|e| bad_request("requirements", e))?;
    let updates: Vec<TableUpdate> =
        serde_json::from_value(body["updates"].clone()).map_err(|e| bad_request("updates", e))?;
    {
        let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.script.unavailable_commits > 0 {
            inner.script.unavailable_commits -= 1;
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                "catalog is restarting",
            ));
        }
    }
    let key = (levels(&namespace), table);
    let (location, metadata) = apply_commit(&shared, &branch, key, requirements, updates)
        .await
        .map_err(|(status, message)| {
            error(
                status,
                if status == StatusCode::CONFLICT {
                    "CommitFailedException"
                } else {
                    "NoSuchTableException"
                },
                &message,
            )
        })?;
    let lost = {
        let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        let lost = inner.script.lost_commit_answers > 0;
        if lost {
            inner.script.lost_commit_answers -= 1;
        }
        lost
    };
    if lost {
        return Err(error(
            StatusCode::BAD_GATEWAY,
            "ServiceFailureException",
            "upstream went away",
        ));
    }
    Ok(Json(json!({"metadata-location": location, "metadata": metadata})).into_response())
}

/// Checks the requirements against the current metadata and applies the updates,
/// writing the next metadata version. Commits on one fake are serialised.
async fn apply_commit(
    shared: &Shared,
    branch: &str,
    key: (Vec<String>, String),
    requirements: Vec<TableRequirement>,
    updates: Vec<TableUpdate>,
) -> Result<(String, TableMetadata), (StatusCode, String)> {
    static COMMITS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _serial = COMMITS.lock().await;
    let current = {
        let inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .branches
            .get(branch)
            .and_then(|b| b.tables.get(&key).cloned())
    };
    let Some((version, location)) = current else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("Table does not exist: {}", key.1),
        ));
    };
    let metadata = TableMetadata::read_from(&shared.file_io, &location)
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    for requirement in &requirements {
        requirement
            .check(Some(&metadata))
            .map_err(|e| (StatusCode::CONFLICT, e.to_string()))?;
    }
    let table_location = metadata.location().to_owned();
    let mut builder = TableMetadataBuilder::new_from_metadata(metadata, Some(location));
    for update in updates {
        builder = update
            .apply(builder)
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    }
    let metadata = builder
        .build()
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?
        .metadata;
    let file = write_metadata(shared, &table_location, version + 1, &metadata)
        .await
        .map_err(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot write metadata".to_owned(),
            )
        })?;
    let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = inner.branches.get_mut(branch) {
        b.tables.insert(key, (version + 1, file.clone()));
    }
    inner.commits += 1;
    Ok((file, metadata))
}
