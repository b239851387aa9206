//! An in-process stand-in for a Trino coordinator and a Keycloak realm, for the
//! Trino connector tests (neither server can run on the build machine).
//!
//! It speaks the real wire protocols: Trino's statement protocol (`POST
//! /v1/statement` answers QUEUED with a `nextUri`; each `GET` of it returns the next
//! page of `columns`/`data`, three rows a page, until a page has no `nextUri`;
//! failures come as Trino's `error` object with `errorName`/`errorType`; 401 without
//! a valid bearer token; 503 when told to be busy) and Keycloak's token endpoint
//! (`/realms/<realm>/protocol/openid-connect/token`, form-encoded password,
//! client-credentials and refresh-token grants, answers and `invalid_grant` errors
//! shaped as Keycloak's).
//!
//! Its SQL is only what the connector sends: `CREATE TABLE IF NOT EXISTS`, the
//! `information_schema.columns` lookup, `INSERT ... (data) VALUES (...)`, and
//! `SELECT * FROM <table> AS q [WHERE q."id" > n] [ORDER BY ...] LIMIT n`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use regex::Regex;
use serde_json::{Value, json};

/// A table: column `(name, type)`s and rows.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Columns.
    pub columns: Vec<(String, String)>,
    /// Rows, values in column order.
    pub rows: Vec<Vec<Value>>,
}

/// Failures to inject.
#[derive(Debug, Default)]
pub struct Script {
    /// The next INSERTs fail with these `(errorType, errorName)`s, one each.
    pub failing_inserts: Vec<(String, String)>,
    /// The next this-many protocol `GET`s answer 503.
    pub busy_pages: u32,
    /// After this many successful INSERTs, every issued access token stops working.
    pub revoke_after_inserts: Option<usize>,
}

#[derive(Default)]
struct Inner {
    tables: BTreeMap<String, Table>,
    pending: HashMap<String, Vec<Value>>,
    statements: Vec<String>,
    authorizations: Vec<String>,
    valid_tokens: HashMap<String, Instant>,
    unauthorized: usize,
    refresh_tokens: HashSet<String>,
    grants: Vec<String>,
    inserts: usize,
    script: Script,
}

struct Shared {
    base: String,
    users: Vec<(String, String)>,
    client: (String, String),
    token_lifetime: u64,
    auth_required: bool,
    next: AtomicU64,
    inner: Mutex<Inner>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeTrino {
    shared: Arc<Shared>,
}

impl FakeTrino {
    /// Starts the fake on a free port. With `auth_required`, Trino accepts only
    /// unexpired tokens its Keycloak issued (or `static-token`). Keycloak knows user `alice`
    /// (password `wonderland`) and client `dataflow` (secret `s3cret`); access tokens
    /// live `token_lifetime` seconds.
    pub async fn start(auth_required: bool, token_lifetime: u64) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake trino");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let mut inner = Inner::default();
        inner.valid_tokens.insert(
            "static-token".into(),
            Instant::now() + Duration::from_secs(86_400),
        );
        let shared = Arc::new(Shared {
            base,
            users: vec![("alice".into(), "wonderland".into())],
            client: ("dataflow".into(), "s3cret".into()),
            token_lifetime,
            auth_required,
            next: AtomicU64::new(1),
            inner: Mutex::new(inner),
        });
        let app = Router::new()
            .route("/v1/statement", post(statement))
            .route("/v1/statement/executing/{id}/{page}", get(page))
            .route("/realms/{realm}/protocol/openid-connect/token", post(token))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { shared }
    }

    /// `http://127.0.0.1:<port>`, both Trino and Keycloak.
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

    /// Creates (or replaces) `catalog.schema.table`.
    pub fn put_table(&self, name: &str, table: Table) {
        self.inner().tables.insert(name.to_owned(), table);
    }

    /// Appends rows to a table.
    pub fn add_rows(&self, name: &str, rows: Vec<Vec<Value>>) {
        self.inner()
            .tables
            .entry(name.to_owned())
            .or_default()
            .rows
            .extend(rows);
    }

    /// A table's contents.
    pub fn table(&self, name: &str) -> Option<Table> {
        self.inner().tables.get(name).cloned()
    }

    /// Every statement received, in order.
    pub fn statements(&self) -> Vec<String> {
        self.inner().statements.clone()
    }

    /// Every `Authorization` header Trino received.
    pub fn authorizations(&self) -> Vec<String> {
        self.inner().authorizations.clone()
    }

    /// How many statements Trino refused for a missing, expired or revoked token.
    pub fn unauthorized(&self) -> usize {
        self.inner().unauthorized
    }

    /// The grant types Keycloak served, in order.
    pub fn grants(&self) -> Vec<String> {
        self.inner().grants.clone()
    }
}

fn trino_error(id: &str, error_type: &str, error_name: &str, message: &str) -> Value {
    json!({
        "id": id,
        "stats": {"state": "FAILED"},
        "error": {
            "message": message,
            "errorCode": 1,
            "errorName": error_name,
            "errorType": error_type,
            "failureInfo": {"type": "io.trino.spi.TrinoException", "message": message},
        },
    })
}

/// `"c"."s"."t"` -> `c.s.t`.
fn unquote(name: &str) -> String {
    name.split('.')
        .map(|p| p.trim().trim_matches('"').replace("\"\"", "\""))
        .collect::<Vec<_>>()
        .join(".")
}

/// The string literals of a VALUES list, `''` unescaped.
fn literals(values: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = values.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut text = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    text.push('\'');
                } else {
                    break;
                }
            } else {
                text.push(c);
            }
        }
        out.push(text);
    }
    out
}

async fn statement(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let sql = String::from_utf8_lossy(&body).into_owned();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let id = format!(
        "20261123_{:06}_fake",
        shared.next.fetch_add(1, Ordering::Relaxed)
    );
    let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    inner.authorizations.push(authorization.clone());
    if shared.auth_required {
        let token = authorization.strip_prefix("Bearer ").unwrap_or_default();
        if inner
            .valid_tokens
            .get(token)
            .is_none_or(|until| *until < Instant::now())
        {
            inner.unauthorized += 1;
            return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        }
    }
    inner.statements.push(sql.clone());
    let pages = run(&mut inner, &id, &sql);
    inner.pending.insert(id.clone(), pages);
    Json(json!({
        "id": id,
        "infoUri": format!("{}/ui/query.html?{id}", shared.base),
        "nextUri": format!("{}/v1/statement/executing/{id}/0", shared.base),
        "stats": {"state": "QUEUED"},
    }))
    .into_response()
}

/// Executes `sql`; returns the pages the client will GET.
fn run(inner: &mut Inner, id: &str, sql: &str) -> Vec<Value> {
    let create = Regex::new(r"(?is)^CREATE TABLE IF NOT EXISTS (\S+) \(data VARCHAR\)$").unwrap();
    let columns = Regex::new(
        r"(?is)^SELECT column_name, data_type FROM (\S+)\.information_schema\.columns WHERE table_schema = '([^']*)' AND table_name = '([^']*)'$",
    )
    .unwrap();
    let insert = Regex::new(r"(?is)^INSERT INTO (\S+) \(data\) VALUES (.*)$").unwrap();
    let select = Regex::new(
        r#"(?is)^SELECT \* FROM (\S+) AS q(?: WHERE q\."id" > (\d+))?(?: ORDER BY q\."id")?(?: LIMIT (\d+))?$"#,
    )
    .unwrap();
    let done = |columns: Option<Value>, rows: Vec<Value>| {
        let mut pages: Vec<Value> = rows
            .chunks(3)
            .map(|chunk| json!({"id": id, "data": chunk, "stats": {"state": "RUNNING"}}))
            .collect();
        if pages.is_empty() {
            pages.push(json!({"id": id, "stats": {"state": "RUNNING"}}));
        }
        if let Some(columns) = columns {
            pages[0]["columns"] = columns;
        }
        pages.push(json!({"id": id, "stats": {"state": "FINISHED"}}));
        pages
    };
    if let Some(c) = create.captures(sql) {
        let name = unquote(&c[1]);
        inner.tables.entry(name).or_insert_with(|| Table {
            columns: vec![("data".into(), "varchar".into())],
            rows: Vec::new(),
        });
        return done(None, Vec::new());
    }
    if let Some(c) = columns.captures(sql) {
        let name = format!("{}.{}.{}", unquote(&c[1]), &c[2], &c[3]);
        let rows = inner
            .tables
            .get(&name)
            .map(|t| t.columns.iter().map(|(n, ty)| json!([n, ty])).collect())
            .unwrap_or_default();
        let columns = json!([{"name": "column_name", "type": "varchar"}, {"name": "data_type", "type": "varchar"}]);
        return done(Some(columns), rows);
    }
    if let Some(c) = insert.captures(sql) {
        if !inner.script.failing_inserts.is_empty() {
            let (error_type, error_name) = inner.script.failing_inserts.remove(0);
            return vec![trino_error(
                id,
                &error_type,
                &error_name,
                "injected failure",
            )];
        }
        let name = unquote(&c[1]);
        let Some(table) = inner.tables.get_mut(&name) else {
            return vec![trino_error(
                id,
                "USER_ERROR",
                "TABLE_NOT_FOUND",
                &format!("Table '{name}' does not exist"),
            )];
        };
        let values = literals(&c[2]);
        let count = values.len();
        table
            .rows
            .extend(values.into_iter().map(|v| vec![Value::String(v)]));
        inner.inserts += 1;
        if inner.script.revoke_after_inserts == Some(inner.inserts) {
            inner.valid_tokens.retain(|t, _| t == "static-token");
        }
        return done(
            Some(json!([{"name": "rows", "type": "bigint"}])),
            vec![json!([count])],
        );
    }
    if let Some(c) = select.captures(sql) {
        let name = unquote(&c[1]);
        let Some(table) = inner.tables.get(&name) else {
            return vec![trino_error(
                id,
                "USER_ERROR",
                "TABLE_NOT_FOUND",
                &format!("Table '{name}' does not exist"),
            )];
        };
        let after: Option<i64> = c.get(2).and_then(|m| m.as_str().parse().ok());
        let limit: usize = c
            .get(3)
            .and_then(|m| m.as_str().parse().ok())
            .unwrap_or(usize::MAX);
        let id_at = table.columns.iter().position(|(n, _)| n == "id");
        let mut rows: Vec<&Vec<Value>> = table
            .rows
            .iter()
            .filter(|r| match (after, id_at) {
                (Some(after), Some(i)) => r[i].as_i64().is_some_and(|v| v > after),
                _ => true,
            })
            .collect();
        if let Some(i) = id_at {
            rows.sort_by_key(|r| r[i].as_i64());
        }
        let rows: Vec<Value> = rows.into_iter().take(limit).map(|r| json!(r)).collect();
        let columns: Vec<Value> = table
            .columns
            .iter()
            .map(|(n, t)| json!({"name": n, "type": t}))
            .collect();
        return done(Some(Value::Array(columns)), rows);
    }
    vec![trino_error(
        id,
        "USER_ERROR",
        "SYNTAX_ERROR",
        &format!("the fake does not know: {sql}"),
    )]
}

async fn page(State(shared): State<Arc<Shared>>, Path((id, n)): Path<(String, usize)>) -> Response {
    let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    if inner.script.busy_pages > 0 {
        inner.script.busy_pages -= 1;
        return (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response();
    }
    let Some(pages) = inner.pending.get(&id) else {
        return (StatusCode::NOT_FOUND, "no such query").into_response();
    };
    let Some(mut body) = pages.get(n).cloned() else {
        return (StatusCode::GONE, "query is gone").into_response();
    };
    if n + 1 < pages.len() {
        body["nextUri"] = json!(format!(
            "{}/v1/statement/executing/{id}/{}",
            shared.base,
            n + 1
        ));
    } else {
        inner.pending.remove(&id);
    }
    Json(body).into_response()
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Path(_realm): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    let grant = field("grant_type");
    let client_ok =
        field("client_id") == shared.client.0 && field("client_secret") == shared.client.1;
    let ok = client_ok
        && match grant.as_str() {
            "password" => shared
                .users
                .iter()
                .any(|(u, p)| *u == field("username") && *p == field("password")),
            "client_credentials" => true,
            "refresh_token" => inner.refresh_tokens.contains(&field("refresh_token")),
            _ => false,
        };
    inner.grants.push(grant.clone());
    if !ok {
        let description = if grant == "password" {
            "Invalid user credentials"
        } else {
            "Invalid client or Invalid client credentials"
        };
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": if client_ok { "invalid_grant" } else { "invalid_client" }, "error_description": description})),
        )
            .into_response();
    }
    let n = shared.next.fetch_add(1, Ordering::Relaxed);
    let access = format!("access-{n}");
    let refresh = format!("refresh-{n}");
    inner.valid_tokens.insert(
        access.clone(),
        Instant::now() + Duration::from_secs(shared.token_lifetime),
    );
    inner.refresh_tokens.insert(refresh.clone());
    Json(json!({
        "access_token": access,
        "expires_in": shared.token_lifetime,
        "refresh_expires_in": 1800,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "session_state": format!("session-{n}"),
        "scope": "profile email",
    }))
    .into_response()
}
