//! The credentials a `wasm.image` pull presents: a user name and password, or
//! the entry for the image's registry in a Docker config (the
//! `.dockerconfigjson` of a `kubernetes.io/dockerconfigjson` Secret, or the
//! older `.dockercfg` map). No message here ever quotes a credential.

use base64::Engine;
use dataflow_api::WasmImageSpec;
use oci_client::secrets::RegistryAuth;
use serde_json::{Map, Value};

/// Largest Docker config read (a Kubernetes Secret holds at most 1 MiB).
const MAX_DOCKER_CONFIG_BYTES: usize = 1 << 20;

/// What to present to the registry, and, when that is nothing although a
/// Docker config was given, why, to add to a refusal.
#[derive(Debug)]
pub(super) struct Credentials {
    /// The authentication for the pull.
    pub auth: RegistryAuth,
    /// Why the pull is anonymous although a Docker config was given.
    pub anonymous_because: Option<String>,
}

/// The credentials for pulling `image` from `registry` (the reference's
/// registry host, `host[:port]`).
pub(super) fn credentials(image: &WasmImageSpec, registry: &str) -> Result<Credentials, String> {
    let password = match (&image.username, &image.password) {
        (Some(user), Some(password)) => Some(RegistryAuth::Basic(user.clone(), password.clone())),
        (None, None) => None,
        (Some(_), None) => {
            return Err("username is set without password (or passwordSecretRef)".into());
        }
        (None, Some(_)) => {
            return Err("password is set without username (or usernameSecretRef)".into());
        }
    };
    match (password, &image.docker_config) {
        (Some(_), Some(_)) => {
            Err("set username/password or dockerConfigSecretRef, not both".into())
        }
        (Some(auth), None) => Ok(Credentials {
            auth,
            anonymous_because: None,
        }),
        (None, Some(config)) => from_docker_config(config, registry),
        (None, None) => Ok(Credentials {
            auth: RegistryAuth::Anonymous,
            anonymous_because: None,
        }),
    }
}

/// The entry for `registry` in a Docker config; anonymous when it has none,
/// as a kubelet pulls when no pull secret matches.
fn from_docker_config(config: &str, registry: &str) -> Result<Credentials, String> {
    if config.len() > MAX_DOCKER_CONFIG_BYTES {
        return Err(format!(
            "dockerConfig is {} bytes; at most {MAX_DOCKER_CONFIG_BYTES} are read",
            config.len()
        ));
    }
    // Parsed as a plain value first: serde's syntax errors give a position,
    // never the text, so no credential reaches a log line.
    let parsed: Value =
        serde_json::from_str(config).map_err(|e| format!("dockerConfig is not JSON: {e}"))?;
    let Value::Object(top) = parsed else {
        return Err("dockerConfig must be a JSON object with `auths`".into());
    };
    let entries = match top.get("auths") {
        Some(Value::Object(auths)) => auths,
        Some(_) => return Err("dockerConfig: `auths` must be an object".into()),
        None => &top,
    };
    let wanted = canonical_host(registry);
    let Some((key, entry)) = entries
        .iter()
        .find(|(key, _)| canonical_host(key).eq_ignore_ascii_case(&wanted))
    else {
        let anonymous_because = format!(
            "dockerConfig has no entry for the registry {registry}, so the pull was anonymous"
        );
        tracing::info!(registry, "{anonymous_because}");
        return Ok(Credentials {
            auth: RegistryAuth::Anonymous,
            anonymous_because: Some(anonymous_because),
        });
    };
    let Value::Object(entry) = entry else {
        return Err(format!("dockerConfig: the entry {key:?} must be an object"));
    };
    entry_auth(key, entry).map(|auth| Credentials {
        auth,
        anonymous_because: None,
    })
}

/// The authentication one `auths` entry gives: `auth` (base64 of
/// `user:password`), or `username` and `password`, or a `registrytoken`.
fn entry_auth(key: &str, entry: &Map<String, Value>) -> Result<RegistryAuth, String> {
    let text = |field: &str| -> Result<Option<&str>, String> {
        match entry.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!(
                "dockerConfig: `{field}` of the entry {key:?} must be a string"
            )),
        }
    };
    if let Some(encoded) = text("auth")? {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                format!("dockerConfig: `auth` of the entry {key:?} is not base64 of user:password")
            })?;
        let Some((user, password)) = decoded.split_once(':') else {
            return Err(format!(
                "dockerConfig: `auth` of the entry {key:?} decodes to no user:password pair"
            ));
        };
        return Ok(RegistryAuth::Basic(user.to_owned(), password.to_owned()));
    }
    match (text("username")?, text("password")?) {
        (Some(user), Some(password)) => {
            return Ok(RegistryAuth::Basic(user.to_owned(), password.to_owned()));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(format!(
                "dockerConfig: the entry {key:?} has a username or a password, not both"
            ));
        }
        (None, None) => {}
    }
    if let Some(token) = text("registrytoken")? {
        return Ok(RegistryAuth::Bearer(token.to_owned()));
    }
    if text("identitytoken")?.is_some() {
        return Err(format!(
            "dockerConfig: the entry {key:?} holds only an identitytoken (an OAuth refresh token from a credential helper), which is not supported; give a username and password or token"
        ));
    }
    Err(format!(
        "dockerConfig: the entry {key:?} has no auth, username/password or registrytoken"
    ))
}

/// The registry host a config key or reference names: scheme and path
/// dropped, Docker Hub's several names made one.
fn canonical_host(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> WasmImageSpec {
        WasmImageSpec {
            reference: "r.io/a/b:1".into(),
            ..WasmImageSpec::default()
        }
    }

    fn basic(credentials: Result<Credentials, String>) -> (String, String) {
        match credentials.map(|c| c.auth) {
            Ok(RegistryAuth::Basic(user, password)) => (user, password),
            other => panic!("not basic: {other:?}"),
        }
    }

    #[test]
    fn credentials_come_in_pairs() {
        let mut image = image();
        image.username = Some("u".into());
        assert!(
            credentials(&image, "r.io")
                .unwrap_err()
                .contains("without password")
        );
        image.password = Some("p".into());
        assert_eq!(basic(credentials(&image, "r.io")), ("u".into(), "p".into()));
        image.username = None;
        assert!(
            credentials(&image, "r.io")
                .unwrap_err()
                .contains("without username")
        );
    }

    #[test]
    fn a_docker_config_entry_for_the_registry_gives_the_credentials() {
        let mut image = image();
        let auth = base64::engine::general_purpose::STANDARD.encode("robot:s3cr:et");
        image.docker_config = Some(format!(
            r#"{{"auths": {{"https://other.io/v1/": {{"auth": "b3RoZXI6eA=="}},
                "https://R.io/v2/": {{"auth": "{auth}"}},
                "localhost:5000": {{"username": "u", "password": "p"}},
                "https://index.docker.io/v1/": {{"registrytoken": "tok"}}}}}}"#
        ));
        assert_eq!(
            basic(credentials(&image, "r.io")),
            ("robot".into(), "s3cr:et".into()),
            "scheme, path and case do not matter; the password may hold a colon"
        );
        assert_eq!(
            basic(credentials(&image, "localhost:5000")),
            ("u".into(), "p".into())
        );
        assert!(matches!(
            credentials(&image, "docker.io").map(|c| c.auth),
            Ok(RegistryAuth::Bearer(t)) if t == "tok"
        ));
        let none = credentials(&image, "ghcr.io").unwrap();
        assert!(matches!(none.auth, RegistryAuth::Anonymous));
        assert!(
            none.anonymous_because
                .unwrap()
                .contains("no entry for the registry ghcr.io")
        );
    }

    #[test]
    fn the_old_dockercfg_map_is_read_too() {
        let mut image = image();
        image.docker_config = Some(r#"{"r.io": {"auth": "dTpw"}}"#.into());
        assert_eq!(basic(credentials(&image, "r.io")), ("u".into(), "p".into()));
    }

    #[test]
    fn a_bad_docker_config_is_refused_without_quoting_it() {
        let mut image = image();
        for (config, expected) in [
            (
                "{\"auths\": {\"r.io\": {\"auth\": \"hunter2!!\"}}}",
                "not base64",
            ),
            (
                "{\"auths\": {\"r.io\": {\"auth\": \"aHVudGVyMg==\"}}}",
                "no user:password",
            ),
            (
                "{\"auths\": {\"r.io\": {\"username\": \"hunter2\"}}}",
                "not both",
            ),
            (
                "{\"auths\": {\"r.io\": {\"identitytoken\": \"hunter2\"}}}",
                "identitytoken",
            ),
            (
                "{\"auths\": {\"r.io\": {\"password\": 7}}}",
                "must be a string",
            ),
            ("{\"auths\": [\"hunter2\"]}", "must be an object"),
            ("hunter2", "not JSON"),
        ] {
            image.docker_config = Some(config.into());
            let err = credentials(&image, "r.io").unwrap_err();
            assert!(err.contains(expected), "{config}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        image.docker_config = Some(" ".repeat(MAX_DOCKER_CONFIG_BYTES + 1));
        assert!(credentials(&image, "r.io").unwrap_err().contains("at most"));
        image.docker_config = Some("{}".into());
        image.username = Some("u".into());
        image.password = Some("p".into());
        assert!(
            credentials(&image, "r.io")
                .unwrap_err()
                .contains("not both")
        );
    }
}
