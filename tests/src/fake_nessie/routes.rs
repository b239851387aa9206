//! The catalog's HTTP handlers: configuration, namespaces, tables and commits.

use super::*;

/// Records the request and checks its credentials.
pub(super) async fn guard(
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

pub(super) async fn config_default(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    config_for(&shared, "main", query.get("warehouse"))
}

pub(super) async fn config(
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

pub(super) async fn list_namespaces(
    State(shared): State<Arc<Shared>>,
    Path(prefix): Path<String>,
) -> Reply {
    let branch = branch_of(&shared, &prefix)?;
    let inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    let namespaces: Vec<&Vec<String>> = inner.branches[&branch].namespaces.iter().collect();
    Ok(Json(json!({"namespaces": namespaces})).into_response())
}

pub(super) async fn create_namespace(
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

pub(super) async fn namespace(
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

pub(super) async fn list_tables(
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

pub(super) async fn create_table(
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

pub(super) async fn load_table(
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

pub(super) async fn commit(
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
