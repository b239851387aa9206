//! An in-process stand-in for a Trino coordinator, for the Trino connector tests:
//! a real Trino server does not fit the test budget here (README, "Test servers").
//!
//! It speaks the real wire protocol: Trino's statement protocol (`POST
//! /v1/statement` answers QUEUED with a `nextUri`; each `GET` of it returns the next
//! page of `columns`/`data`, three rows a page, until a page has no `nextUri`;
//! failures come as Trino's `error` object with `errorName`/`errorType`; 401 without
//! a valid bearer token; 503 when told to be busy). Bearer tokens are checked as a
//! Trino behind Keycloak would: against the real Keycloak of `make services`, by
//! token introspection, until they expire.
//!
//! Its SQL is only what the connector sends: `CREATE TABLE IF NOT EXISTS`, the
//! `information_schema.columns` lookup, `INSERT ... (data) VALUES (...)`, and
//! `SELECT * FROM <table> AS q [WHERE q."id" > n] [ORDER BY ...] LIMIT n`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
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
    /// After this many successful INSERTs, every token seen so far stops working.
    pub revoke_after_inserts: Option<usize>,
}

#[derive(Default)]
struct Inner {
    tables: BTreeMap<String, Table>,
    pending: HashMap<String, Vec<Value>>,
    statements: Vec<String>,
    authorizations: Vec<String>,
    /// Tokens Keycloak called active, with their expiry (seconds since the epoch).
    active_tokens: HashMap<String, u64>,
    revoked_tokens: HashSet<String>,
    unauthorized: usize,
    inserts: usize,
    script: Script,
}

struct Shared {
    base: String,
    auth_required: bool,
    http: reqwest::Client,
    next: AtomicU64,
    inner: Mutex<Inner>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeTrino {
    shared: Arc<Shared>,
}

impl FakeTrino {
    /// Starts the fake on a free port. With `auth_required`, it accepts only
    /// bearer tokens the test Keycloak calls active, until they expire.
    pub async fn start(auth_required: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake trino");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let shared = Arc::new(Shared {
            base,
            auth_required,
            http: reqwest::Client::new(),
            next: AtomicU64::new(1),
            inner: Mutex::new(Inner::default()),
        });
        let app = Router::new()
            .route("/v1/statement", post(statement))
            .route("/v1/statement/executing/{id}/{page}", get(page))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { shared }
    }

    /// `http://127.0.0.1:<port>`.
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
    if shared.auth_required && !authorized(&shared, &authorization).await {
        let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.authorizations.push(authorization);
        inner.unauthorized += 1;
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    inner.authorizations.push(authorization);
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
            let seen: Vec<String> = inner.active_tokens.drain().map(|(t, _)| t).collect();
            inner.revoked_tokens.extend(seen);
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

/// Whether `authorization` carries a bearer token Keycloak called active, not
/// revoked by the script and not expired.
async fn authorized(shared: &Shared, authorization: &str) -> bool {
    let Some(token) = authorization.strip_prefix("Bearer ") else {
        return false;
    };
    let now = crate::keycloak::now_ms() / 1000;
    let known = {
        let inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.revoked_tokens.contains(token) {
            return false;
        }
        inner.active_tokens.get(token).copied()
    };
    let expiry = match known {
        Some(expiry) => expiry,
        None => match crate::keycloak::introspect(&shared.http, token).await {
            Some(expiry) => {
                let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
                inner.active_tokens.insert(token.to_owned(), expiry);
                expiry
            }
            None => return false,
        },
    };
    now < expiry
}
