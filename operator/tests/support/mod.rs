//! A fake Kubernetes API server for the operator's tests.
//!
//! No real API server can run on the test machine, so the client talks to this
//! in-process fake through `tower-test`'s mock service: every request the client
//! makes arrives here as a real HTTP request (method, path, query, content type
//! and JSON body as kube-rs sends them to a server) and gets a response shaped as
//! the API server shapes it: stored objects, `Status` errors with codes and
//! reasons, server-side apply, JSON merge patch, JSON patch and deletes. Every call
//! is recorded so a test can assert exactly what the operator asked for.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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
}

impl FakeApi {
    /// Stores an object at its API path.
    pub fn put(&self, path: &str, object: Value) {
        self.objects.lock().unwrap().insert(path.to_owned(), object);
    }

    /// The object stored at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
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
                    body,
                };
                let (code, answer) = fake.answer(&call);
                fake.calls.lock().unwrap().push(call);
                let response = Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).unwrap_or_default()))
                    .unwrap_or_else(|_| Response::new(Body::empty()));
                respond.send_response(response);
            }
        });
        Client::new(service, "default")
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
                objects.insert(path, call.body.clone());
                (StatusCode::CREATED, call.body.clone())
            }
            "DELETE" => match objects.remove(&call.path) {
                Some(object) => (StatusCode::OK, object),
                None => not_found(&call.path),
            },
            "PATCH" => {
                let (target, subresource) = match call.path.strip_suffix("/status") {
                    Some(base) => (base.to_owned(), true),
                    None => (call.path.clone(), false),
                };
                let existing = objects.get(&target).cloned();
                let manager = query_value(&call.query, "fieldManager");
                if call.path.contains("/leases/") {
                    return self.patch_lease(&mut objects, &target, call, &manager, existing);
                }
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
                objects.insert(target, patched.clone());
                (StatusCode::OK, patched)
            }
            _ => status(405, "MethodNotAllowed", "unsupported"),
        }
    }
}

impl FakeApi {
    /// Leases follow server-side apply's ownership rule for `holderIdentity`: an
    /// apply without `force` that would change a value another field manager set
    /// is refused with 409 Conflict, which is how lease holders detect each other.
    fn patch_lease(
        &self,
        objects: &mut BTreeMap<String, Value>,
        target: &str,
        call: &Call,
        manager: &str,
        existing: Option<Value>,
    ) -> (StatusCode, Value) {
        let Some(mut lease) = existing else {
            return not_found(target);
        };
        let owner_key = format!("{target}#holderIdentity");
        let owner = objects
            .get(&owner_key)
            .and_then(Value::as_str)
            .map(str::to_owned);
        let wanted = &call.body["spec"]["holderIdentity"];
        let current = &lease["spec"]["holderIdentity"];
        let apply = call.content_type.starts_with("application/apply-patch");
        let forced = query_value(&call.query, "force") == "true";
        if apply
            && !forced
            && !wanted.is_null()
            && !current.is_null()
            && wanted != current
            && owner.as_deref().is_some_and(|o| o != manager)
        {
            return status(
                409,
                "Conflict",
                "Apply failed with 1 conflict: conflict with another manager: .spec.holderIdentity",
            );
        }
        merge(&mut lease, &json!({"spec": call.body["spec"].clone()}));
        if call.body["spec"].get("holderIdentity").is_some() {
            if wanted.is_null() {
                objects.remove(&owner_key);
            } else {
                objects.insert(owner_key, Value::String(manager.to_owned()));
            }
        }
        objects.insert(target.to_owned(), lease.clone());
        (StatusCode::OK, lease)
    }
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
