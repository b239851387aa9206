//! Keeping secret values out of everything a flow shows: logs, error records,
//! status messages, events and pages.
//!
//! Two tools:
//! - [`mask_connection_string`] shows a connection string with its password as
//!   `***` (`postgres://app:***@db:5432/orders`, `password=***`), for every place
//!   that names a connection, whether the password came from a Secret or was
//!   written inline;
//! - a [`Redactor`] knows the secret values of one spec (every credential field
//!   and every password inside a connection string) and replaces each of them,
//!   and its base64 form, by `***` in any text. A process installs one with
//!   [`install`] as soon as it has read its spec; [`redact`] then applies it.

use std::borrow::Cow;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

/// What a secret value is replaced by.
pub const MASK: &str = "***";

/// Values shorter than this are not searched for in text: replacing every `a`
/// or `12` of a log line would make it unreadable while hiding nothing a guess
/// would not find. Credential fields still show as `***` where they are named.
pub const MIN_REDACTED_LEN: usize = 3;

/// Fields whose whole value is a credential, wherever they appear in a spec.
const CREDENTIAL_FIELDS: &[&str] = &[
    "password",
    "token",
    "bearerToken",
    "clientSecret",
    "keyFile",
    "secretAccessKey",
    "dockerConfig",
];

/// Whether a spec field named `field` holds a credential.
pub fn is_credential_field(field: &str) -> bool {
    CREDENTIAL_FIELDS.contains(&field)
        || field.ends_with("Password")
        || field.ends_with("Secret")
        || field.ends_with("Token")
}

/// `text` with the password of every connection string in it shown as `***`:
/// the password of a URL's user information (`scheme://user:pass@host`) and
/// the value of every `password=` parameter (URL query or libpq key/value).
pub fn mask_connection_string(text: &str) -> Cow<'_, str> {
    let spans = password_spans(text);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        out.push_str(&text[at..start]);
        out.push_str(MASK);
        at = end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// Byte ranges of the passwords inside `text`, in order and not overlapping.
fn password_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut search = 0;
    while let Some(found) = text[search..].find("://") {
        let authority_start = search + found + 3;
        let authority_end = text[authority_start..]
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .map_or(text.len(), |i| authority_start + i);
        let authority = &text[authority_start..authority_end];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
            && colon + 1 < at
        {
            spans.push((authority_start + colon + 1, authority_start + at));
        }
        search = authority_end.max(authority_start);
    }
    let lower = text.to_ascii_lowercase();
    let mut search = 0;
    while let Some(found) = lower[search..].find("password=") {
        let start = search + found + "password=".len();
        let boundary_ok =
            search + found == 0 || !lower.as_bytes()[search + found - 1].is_ascii_alphanumeric();
        let end = value_end(text, start);
        if boundary_ok && end > start {
            spans.push((start, end));
        }
        search = end.max(start);
    }
    spans.sort_unstable();
    spans.dedup_by(|later, earlier| later.0 < earlier.1);
    spans
}

/// Where a `key=value` parameter's value starting at `start` ends: at a quote's
/// close for a quoted value, else at whitespace, `&`, `;` or a closing quote.
fn value_end(text: &str, start: usize) -> usize {
    let rest = &text[start..];
    if let Some(quoted) = rest.strip_prefix('\'') {
        return quoted.find('\'').map_or(text.len(), |i| start + i + 2);
    }
    rest.find(|c: char| c.is_whitespace() || matches!(c, '&' | ';' | '"' | '\'' | ','))
        .map_or(text.len(), |i| start + i)
}

/// The secret values of one spec, to be replaced by `***` in any text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a value containing another is replaced whole.
    needles: Vec<String>,
}

impl Redactor {
    /// Every credential in `spec` (the spec as JSON, secrets already
    /// substituted): the values of credential fields ([`is_credential_field`])
    /// and the passwords inside any connection string, each also in base64.
    pub fn from_spec(spec: &Value) -> Self {
        let mut redactor = Self::default();
        redactor.collect(spec, None);
        redactor.finish();
        redactor
    }

    /// A redactor for the given values (and their base64 forms).
    pub fn of_values<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut redactor = Self::default();
        for value in values {
            redactor.add(value);
        }
        redactor.finish();
        redactor
    }

    fn collect(&mut self, value: &Value, field: Option<&str>) {
        match value {
            Value::String(text) => {
                if field.is_some_and(is_credential_field) {
                    self.add(text);
                }
                for (start, end) in password_spans(text) {
                    self.add(&text[start..end]);
                }
            }
            Value::Object(map) => {
                for (key, child) in map {
                    self.collect(child, Some(key));
                }
            }
            Value::Array(items) => {
                for child in items {
                    self.collect(child, field);
                }
            }
            _ => {}
        }
    }

    fn add(&mut self, value: &str) {
        let value = value.trim();
        if value.len() < MIN_REDACTED_LEN {
            return;
        }
        self.needles.push(value.to_owned());
        self.needles.push(BASE64.encode(value.as_bytes()));
        // As a JSON log line or record quotes it.
        let quoted = serde_json::to_string(value).unwrap_or_default();
        if let Some(escaped) = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'))
            && escaped != value
        {
            self.needles.push(escaped.to_owned());
        }
        // A PEM key is also found by any one of its lines.
        if value.contains("-----BEGIN") {
            for line in value.lines().map(str::trim) {
                if line.len() >= 16 && !line.starts_with("-----") {
                    self.needles.push(line.to_owned());
                }
            }
        }
    }

    fn finish(&mut self) {
        self.needles
            .sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.needles.dedup();
    }

    /// Whether there is nothing to hide.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every known secret value, and every connection string's
    /// password, replaced by `***`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = mask_connection_string(text);
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = Cow::Owned(out.replace(needle.as_str(), MASK));
            }
        }
        out
    }
}

static INSTALLED: OnceLock<Redactor> = OnceLock::new();

/// Makes `redactor` the one [`redact`] uses in this process. Only the first
/// call takes effect (a process runs one flow); later ones return false.
pub fn install(redactor: Redactor) -> bool {
    INSTALLED.set(redactor).is_ok()
}

/// `text` through the installed [`Redactor`] (connection-string passwords are
/// masked even before one is installed).
pub fn redact(text: &str) -> Cow<'_, str> {
    match INSTALLED.get() {
        Some(redactor) => redactor.redact(text),
        None => mask_connection_string(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connection_strings_show_their_password_as_stars() {
        let cases = [
            (
                "postgres://app:s3cret@db:5432/orders",
                "postgres://app:***@db:5432/orders",
            ),
            (
                "cannot connect to clickhouse://u:p%40ss@ch:9000/db?secure=true: refused",
                "cannot connect to clickhouse://u:***@ch:9000/db?secure=true: refused",
            ),
            (
                "host=db user=app password=hunter22 dbname=x",
                "host=db user=app password=*** dbname=x",
            ),
            (
                "host=db password='with space' dbname=x",
                "host=db password=*** dbname=x",
            ),
            (
                "https://ch:8443/?user=u&password=abc&database=d",
                "https://ch:8443/?user=u&password=***&database=d",
            ),
            ("postgres://app@db/x", "postgres://app@db/x"),
            ("http://user:@host/", "http://user:@host/"),
            ("no url here: a:b@c", "no url here: a:b@c"),
            ("mypassword=visible", "mypassword=visible"),
        ];
        for (input, expected) in cases {
            assert_eq!(mask_connection_string(input), expected, "{input}");
        }
    }

    #[test]
    fn a_spec_redactor_hides_credentials_and_their_base64_and_nothing_else() {
        let spec = json!({
            "source": {"type": "kafka", "kafka": {
                "brokers": ["k:9092"], "topic": "orders",
                "sasl": {"mechanism": "scram-sha-512", "username": "app", "password": "sasl-marker-1"},
                "tls": {"keyFile": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"}
            }},
            "sink": {"type": "postgresql", "postgresql": {
                "connectionString": "postgres://app:pg-marker-2@db/x", "table": "t"}},
            "errors": {"type": "trino", "trino": {"keycloak": {"clientSecret": "kc-marker-3"}}}
        });
        let redactor = Redactor::from_spec(&spec);
        let line = format!(
            "sasl-marker-1 {} pg-marker-2 kc-marker-3 MIIEvQIBADANBgkqhkiG9w0BAQEFAASC orders app",
            BASE64.encode("sasl-marker-1")
        );
        assert_eq!(redactor.redact(&line), "*** *** *** *** *** orders app");
        assert!(matches!(
            redactor.redact("topic orders"),
            Cow::Borrowed("topic orders")
        ));
    }

    #[test]
    fn json_escaped_forms_are_hidden_too() {
        let redactor = Redactor::of_values(["p\"q\\r"]);
        let line = serde_json::json!({"message": "p\"q\\r"}).to_string();
        assert_eq!(redactor.redact(&line), r#"{"message":"***"}"#);
    }

    #[test]
    fn short_values_are_not_searched_for() {
        let redactor = Redactor::of_values(["ab", "abc"]);
        assert_eq!(redactor.redact("ab abc"), "ab ***");
        assert!(Redactor::of_values(["x"]).is_empty());
    }

    #[test]
    fn credential_field_names() {
        for field in [
            "password",
            "clientSecret",
            "token",
            "bearerToken",
            "keyFile",
        ] {
            assert!(is_credential_field(field), "{field}");
        }
        for field in ["username", "topic", "brokers", "caFile", "certFile", "key"] {
            assert!(!is_credential_field(field), "{field}");
        }
    }
}
