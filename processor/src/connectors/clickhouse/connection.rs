//! From a connection string to an HTTP client.
//!
//! Two forms are accepted, as in the Go original:
//! - `http://host:8123/db?username=u&password=p` (or `https://`): used as given;
//! - `clickhouse://u:p@host:9000/db?...` (also `tcp://`), the native-protocol form.
//!   The client speaks HTTP only, so the host is kept and the port becomes
//!   ClickHouse's HTTP port: 8123, or 8443 over TLS (`secure=true`), or the one in
//!   `http_port=`.
//!
//! In both forms the user, password and database come from the URL's user info
//! and path, or from `username`/`user`, `password` and `database`. Options of the
//! Go driver that mean nothing over HTTP (`dial_timeout`, `compress`, ...) are
//! ignored, and the log says which.

use clickhouse::Client;
use percent_encoding::percent_decode_str;
use reqwest::Url;

use crate::connectors::ConnectorError;

/// A client for one server and database.
pub(super) struct Connection {
    /// The HTTP client, with every setting the connectors rely on.
    pub client: Client,
    /// The database unqualified table names live in.
    pub database: String,
    /// The HTTP endpoint, for logs (no credentials).
    pub endpoint: String,
}

/// Settings every query runs with: 64-bit integers as JSON numbers, so `id` is
/// a number in messages and cursors.
const SETTINGS: &[(&str, &str)] = &[("output_format_json_quote_64bit_integers", "0")];

/// Builds the client for `connection_string` (spec path `path`); does not connect.
pub(super) fn connect(path: &str, connection_string: &str) -> Result<Connection, ConnectorError> {
    let bad = |reason: String| ConnectorError::Config {
        path: format!("{path}.connectionString"),
        reason,
    };
    let url = Url::parse(connection_string.trim()).map_err(|e| bad(format!("not a URL: {e}")))?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let secure = param("secure").is_some_and(|v| v == "true" || v == "1");
    let (scheme, port) = match url.scheme() {
        "http" | "https" => (url.scheme(), url.port_or_known_default().unwrap_or(8123)),
        "clickhouse" | "tcp" => {
            let scheme = if secure { "https" } else { "http" };
            let port = match param("http_port") {
                Some(port) => port
                    .parse()
                    .map_err(|_| bad(format!("http_port {port:?} is not a port number")))?,
                None if secure => 8443,
                None => 8123,
            };
            (scheme, port)
        }
        other => {
            return Err(bad(format!(
                "scheme {other:?}: use clickhouse://, tcp://, http:// or https://"
            )));
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("has no host".into()))?;
    let decode = |text: &str| {
        percent_decode_str(text)
            .decode_utf8()
            .map(|t| t.into_owned())
            .map_err(|_| bad("user info is not valid percent-encoded UTF-8".into()))
    };
    let user = match url.username() {
        "" => param("username").or_else(|| param("user")),
        name => Some(decode(name)?),
    };
    let password = match url.password() {
        Some(secret) => Some(decode(secret)?),
        None => param("password"),
    };
    let database = param("database")
        .or_else(|| {
            url.path_segments()
                .and_then(|mut s| s.next().map(str::to_owned))
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "default".to_owned());
    let ignored: Vec<String> = url
        .query_pairs()
        .map(|(k, _)| k.into_owned())
        .filter(|k| {
            !matches!(
                k.as_str(),
                "username" | "user" | "password" | "database" | "secure" | "http_port"
            )
        })
        .collect();
    if !ignored.is_empty() {
        tracing::info!(options = ?ignored, "ClickHouse connection options without meaning over HTTP are ignored");
    }
    let endpoint = format!("{scheme}://{host}:{port}");
    let mut client = Client::default()
        .with_url(&endpoint)
        .with_database(&database);
    if let Some(user) = user {
        client = client.with_user(user);
    }
    if let Some(password) = password {
        client = client.with_password(password);
    }
    for (name, value) in SETTINGS {
        client = client.with_setting(*name, *value);
    }
    Ok(Connection {
        client,
        database,
        endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint_and_database(text: &str) -> (String, String) {
        let c = connect("spec.source.clickhouse", text).unwrap();
        (c.endpoint, c.database)
    }

    #[test]
    fn maps_native_form_onto_the_http_port() {
        assert_eq!(
            endpoint_and_database(
                "clickhouse://default@clickhouse:9000/analytics?dial_timeout=10s"
            ),
            ("http://clickhouse:8123".into(), "analytics".into())
        );
        assert_eq!(
            endpoint_and_database("clickhouse://ch:9440?secure=true&database=x"),
            ("https://ch:8443".into(), "x".into())
        );
        assert_eq!(
            endpoint_and_database("tcp://127.0.0.1:19000?http_port=18123"),
            ("http://127.0.0.1:18123".into(), "default".into())
        );
    }

    #[test]
    fn keeps_the_http_form() {
        assert_eq!(
            endpoint_and_database("http://host:8123/db?username=u&password=p"),
            ("http://host:8123".into(), "db".into())
        );
        assert_eq!(
            endpoint_and_database("http://us%40er:p%40ss@host:8123/db"),
            ("http://host:8123".into(), "db".into())
        );
        assert_eq!(
            endpoint_and_database("https://host/"),
            ("https://host:443".into(), "default".into())
        );
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for (bad, why) in [
            ("host:9000", "scheme"),
            ("postgres://h/db", "scheme"),
            ("clickhouse://h?http_port=x", "http_port"),
            ("not a url", "not a URL"),
            ("clickhouse://u:%ff@h", "percent-encoded"),
        ] {
            let Err(ConnectorError::Config { path, reason }) = connect("spec.sink.clickhouse", bad)
            else {
                panic!("{bad} accepted");
            };
            assert_eq!(path, "spec.sink.clickhouse.connectionString");
            assert!(reason.contains(why), "{bad}: {reason}");
        }
    }
}
