//! A fake Kubernetes API server for the operator's tests.
//!
//! The main paths run against the real kube-apiserver of `make services`
//! (`tests/tests/kubernetes.rs`, `operator/tests/leader.rs`); these scenarios
//! keep the fake for what a real server cannot be made to do on cue (a failing
//! answer, such as a 500, at a chosen write) and to assert exactly
//! which calls a reconcile makes. The client talks to this in-process fake
//! through `tower-test`'s mock service: every request the client
//! makes arrives here as a real HTTP request (method, path, query, content type
//! and JSON body as kube-rs sends them to a server) and gets a response shaped as
//! the API server shapes it: stored objects, `Status` errors with codes and
//! reasons, server-side apply, JSON merge patch, JSON patch and deletes. Every call
//! is recorded so a test can assert exactly what the operator asked for.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataflow_operator::rbac;
use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// One request the client made.
#[derive(Debug, Clone)]
pub struct Call {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query string.
    pub query: String,
    /// Content type of the body.
    pub content_type: String,
    /// What the client asked the answer to be (a metadata-only GET asks for
    /// `PartialObjectMetadata`).
    pub accept: String,
    /// Body as JSON (`Null` when empty).
    pub body: Value,
}

impl Call {
    /// `"METHOD path"`, handy for comparing call sequences.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The fake server's state: stored objects by API path, and the call log.
#[derive(Clone, Default)]
pub struct FakeApi {
    objects: Arc<Mutex<BTreeMap<String, Value>>>,
    calls: Arc<Mutex<Vec<Call>>>,
    /// Status code to answer every request whose `"METHOD path"` starts with a key.
    failures: Arc<Mutex<BTreeMap<String, (u16, String)>>>,
    /// Every change, in order, for LIST resource versions and WATCH streams.
    changes: Arc<Mutex<Vec<Change>>>,
    version: Arc<AtomicU64>,
}

/// One change to a stored object, as a watch event.
#[derive(Debug, Clone)]
struct Change {
    version: u64,
    path: String,
    kind: &'static str,
    object: Value,
}

/// Where a path points: a collection (`name` is `None`) or one object.
#[derive(Debug, PartialEq)]
struct Location {
    prefix: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
}

fn locate(path: &str) -> Option<Location> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let prefix_len = match segments.first() {
        Some(&"api") => 2,
        Some(&"apis") => 3,
        _ => return None,
    };
    let prefix = segments.get(..prefix_len)?.join("/");
    let location = |namespace: Option<&str>, resource: &str, name: Option<&str>| Location {
        prefix: prefix.clone(),
        namespace: namespace.map(str::to_owned),
        resource: resource.to_owned(),
        name: name.map(str::to_owned),
    };
    match segments.get(prefix_len..)? {
        [resource] => Some(location(None, resource, None)),
        ["namespaces", namespace, resource] => Some(location(Some(namespace), resource, None)),
        ["namespaces", namespace, resource, name, ..] => {
            Some(location(Some(namespace), resource, Some(name)))
        }
        _ => None,
    }
}

/// Whether the object at `path` belongs to the collection `list`, given the
/// request's field selector (only `metadata.name=...` is understood).
fn in_collection(list: &Location, path: &str, field_selector: &str) -> bool {
    let Some(object) = locate(path) else {
        return false;
    };
    let name_ok = match field_selector.strip_prefix("metadata.name=") {
        Some(wanted) => object.name.as_deref() == Some(wanted),
        None => true,
    };
    object.name.is_some()
        && object.prefix == list.prefix
        && object.resource == list.resource
        && (list.namespace.is_none() || list.namespace == object.namespace)
        && name_ok
}

impl FakeApi {
    /// Stores an object at its API path.
    pub fn put(&self, path: &str, mut object: Value) {
        let mut objects = self.objects.lock().unwrap();
        let kind = if objects.contains_key(path) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.record(path, kind, &mut object);
        objects.insert(path.to_owned(), object);
    }

    /// The object stored at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    /// Names of the objects stored under the collection path `collection`.
    pub fn names_in(&self, collection: &str) -> Vec<String> {
        let prefix = format!("{collection}/");
        self.objects
            .lock()
            .unwrap()
            .keys()
            .filter_map(|path| path.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_owned)
            .collect()
    }

    /// Makes requests matching `prefix` (`"METHOD path"`) fail with `code` and `reason`.
    pub fn fail(&self, prefix: &str, code: u16, reason: &str) {
        self.failures
            .lock()
            .unwrap()
            .insert(prefix.to_owned(), (code, reason.to_owned()));
    }

    /// Every call so far, and clears the log.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    /// A client whose requests this fake answers.
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = self.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let call = Call {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().unwrap_or_default().to_owned(),
                    content_type: parts
                        .headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    accept: parts
                        .headers
                        .get("accept")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    body,
                };
                fake.calls.lock().unwrap().push(call.clone());
                let fake = fake.clone();
                // Answer concurrently: a WATCH waits for changes while others go on.
                tokio::spawn(async move {
                    let forbidden = rbac::request_attributes(&call.method, &call.path, &call.query)
                        .filter(|request| !request.is_required());
                    let (code, bytes) = if let Some(request) = forbidden {
                        // As the API server would answer with the chart's RBAC,
                        // which grants exactly `rbac::REQUIRED`.
                        let (code, answer) = status(
                            403,
                            "Forbidden",
                            &format!(
                                "{} {} in group {:?} is not in rbac::REQUIRED",
                                request.verb, request.resource, request.group
                            ),
                        );
                        (code, serde_json::to_vec(&answer).unwrap_or_default())
                    } else if is_watch(&call) {
                        (StatusCode::OK, fake.watch(&call).await)
                    } else {
                        let (code, answer) = fake.answer(&call);
                        (code, serde_json::to_vec(&answer).unwrap_or_default())
                    };
                    let response = Response::builder()
                        .status(code)
                        .header("content-type", "application/json")
                        .body(Body::from(bytes))
                        .unwrap_or_else(|_| Response::new(Body::empty()));
                    respond.send_response(response);
                });
            }
        });
        Client::new(service, "default")
    }

    /// Stamps `object` with the next resource version and logs the change.
    fn record(&self, path: &str, kind: &'static str, object: &mut Value) {
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        if object.is_object() {
            object["metadata"]["resourceVersion"] = Value::String(version.to_string());
        }
        self.changes.lock().unwrap().push(Change {
            version,
            path: path.to_owned(),
            kind,
            object: object.clone(),
        });
    }

    /// A WATCH: the changes in the collection after the requested version, as
    /// newline-delimited events. With none, it waits a little and ends the stream
    /// empty, as a server's watch timeout does; the client then watches again.
    async fn watch(&self, call: &Call) -> Vec<u8> {
        let Some(list) = locate(&call.path) else {
            return Vec::new();
        };
        let since: u64 = query_value(&call.query, "resourceVersion")
            .parse()
            .unwrap_or(0);
        let selector = decode(&query_value(&call.query, "fieldSelector"));
        for _ in 0..15 {
            let events: Vec<Value> = self
                .changes
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.version > since && in_collection(&list, &c.path, &selector))
                .map(|c| json!({"type": c.kind, "object": c.object}))
                .collect();
            if !events.is_empty() {
                let mut out = Vec::new();
                for event in events {
                    out.extend(serde_json::to_vec(&event).unwrap_or_default());
                    out.push(b'\n');
                }
                return out;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Vec::new()
    }

    fn list(&self, objects: &BTreeMap<String, Value>, list: &Location, call: &Call) -> Value {
        let selector = decode(&query_value(&call.query, "fieldSelector"));
        let items: Vec<Value> = objects
            .iter()
            .filter(|(path, _)| in_collection(list, path, &selector))
            .map(|(_, object)| object.clone())
            .collect();
        json!({"apiVersion": "v1", "kind": "List",
               "metadata": {"resourceVersion": self.version.load(Ordering::SeqCst).to_string()},
               "items": items})
    }

    fn answer(&self, call: &Call) -> (StatusCode, Value) {
        let line = call.line();
        if let Some((code, reason)) = self
            .failures
            .lock()
            .unwrap()
            .iter()
            .find(|(prefix, _)| line.starts_with(prefix.as_str()))
            .map(|(_, v)| v.clone())
        {
            return status(code, &reason, &format!("injected failure for {line}"));
        }
        let mut objects = self.objects.lock().unwrap();
        match call.method.as_str() {
            "GET" if locate(&call.path).is_some_and(|l| l.name.is_none()) => {
                let list = locate(&call.path).expect("checked above");
                (StatusCode::OK, self.list(&objects, &list, call))
            }
            "GET" => match objects.get(&call.path) {
                Some(object) => (StatusCode::OK, object.clone()),
                None => not_found(&call.path),
            },
            "POST" => {
                let name = call.body["metadata"]["name"]
                    .as_str()
                    .unwrap_or("generated")
                    .to_owned();
                let path = format!("{}/{name}", call.path);
                if objects.contains_key(&path) {
                    return status(409, "AlreadyExists", &format!("{path} already exists"));
                }
                let mut created = call.body.clone();
                self.record(&path, "ADDED", &mut created);
                objects.insert(path, created.clone());
                (StatusCode::CREATED, created)
            }
            "DELETE" => match objects.remove(&call.path) {
                Some(mut object) => {
                    self.record(&call.path, "DELETED", &mut object);
                    (StatusCode::OK, object)
                }
                None => not_found(&call.path),
            },
            "PATCH" => {
                let (target, subresource) = match call.path.strip_suffix("/status") {
                    Some(base) => (base.to_owned(), true),
                    None => (call.path.clone(), false),
                };
                let existing = objects.get(&target).cloned();
                let patched = if call.content_type.starts_with("application/apply-patch") {
                    let mut applied = call.body.clone();
                    // The server keeps fields the applier does not own.
                    if let Some(old) = &existing {
                        for keep in ["status"] {
                            if let Some(v) = old.get(keep) {
                                applied[keep] = v.clone();
                            }
                        }
                        if let Some(uid) = old["metadata"].get("uid") {
                            applied["metadata"]["uid"] = uid.clone();
                        }
                    }
                    applied
                } else {
                    let Some(mut object) = existing else {
                        return not_found(&call.path);
                    };
                    if call.content_type.starts_with("application/json-patch") {
                        json_patch(&mut object, &call.body);
                    } else {
                        let patch = if subresource {
                            json!({"status": call.body["status"].clone()})
                        } else {
                            call.body.clone()
                        };
                        merge(&mut object, &patch);
                    }
                    object
                };
                let mut patched = patched;
                // Like the API server, a patch that changes nothing keeps the
                // resource version and sends no watch event.
                if let Some(old) = objects.get(&target)
                    && without_version(old) == without_version(&patched)
                {
                    return (StatusCode::OK, old.clone());
                }
                let kind = if objects.contains_key(&target) {
                    "MODIFIED"
                } else {
                    "ADDED"
                };
                self.record(&target, kind, &mut patched);
                objects.insert(target, patched.clone());
                (StatusCode::OK, patched)
            }
            _ => status(405, "MethodNotAllowed", "unsupported"),
        }
    }
}

/// Polls `check` every 20 ms until it holds or `timeout` passes; the last answer.
pub async fn until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

fn without_version(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    copy
}

fn is_watch(call: &Call) -> bool {
    call.method == "GET" && matches!(query_value(&call.query, "watch").as_str(), "true" | "1")
}

/// Percent-decoding of the few characters selectors use.
fn decode(text: &str) -> String {
    text.replace("%3D", "=")
        .replace("%3d", "=")
        .replace("%2C", ",")
        .replace("%2F", "/")
}

fn query_value(query: &str, key: &str) -> String {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

fn status(code: u16, reason: &str, message: &str) -> (StatusCode, Value) {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn not_found(path: &str) -> (StatusCode, Value) {
    status(404, "NotFound", &format!("{path} not found"))
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (key, value) in fields {
                if value.is_null() {
                    if let Some(map) = target.as_object_mut() {
                        map.remove(key);
                    }
                } else {
                    merge(&mut target[key], value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The subset of RFC 6902 the finalizer helper uses: test, add, remove.
fn json_patch(target: &mut Value, ops: &Value) {
    for op in ops.as_array().into_iter().flatten() {
        let path = op["path"].as_str().unwrap_or_default();
        let pointer: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (last, parent) = pointer.split_last().unwrap_or((&"", &[]));
        let parent_path = if parent.is_empty() {
            String::new()
        } else {
            format!("/{}", parent.join("/"))
        };
        match op["op"].as_str() {
            Some("add") => {
                if let Some(container) = target.pointer_mut(&parent_path) {
                    match container {
                        Value::Array(items) if *last == "-" => items.push(op["value"].clone()),
                        Value::Array(items) => {
                            let i: usize = last.parse().unwrap_or(items.len());
                            items.insert(i.min(items.len()), op["value"].clone());
                        }
                        Value::Object(map) => {
                            map.insert((*last).to_owned(), op["value"].clone());
                        }
                        _ => {}
                    }
                }
            }
            Some("remove") => {
                if let Some(container) = target.pointer_mut(&parent_path) {
                    match container {
                        Value::Array(items) => {
                            if let Ok(i) = last.parse::<usize>()
                                && i < items.len()
                            {
                                items.remove(i);
                            }
                        }
                        Value::Object(map) => {
                            map.remove(*last);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}
