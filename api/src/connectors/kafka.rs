//! Kafka source and sink settings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SecretRef;

/// A list of strings, or one string of comma-separated items.
fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<String>),
        Text(String),
    }
    Ok(match ListOrText::deserialize(deserializer)? {
        ListOrText::List(items) => items,
        ListOrText::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// TLS settings for Kafka brokers and the Schema Registry. Each of `caFile`, `certFile` and `keyFile` may hold a
/// file path or PEM content (text starting with `-----BEGIN`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaTls {
    /// Skip server certificate verification (testing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// CA certificate: path or PEM content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// CA certificate from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretRef>,
    /// Client certificate: path or PEM content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// Client certificate from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<SecretRef>,
    /// Client private key: path or PEM content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Client private key from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretRef>,
}

/// SASL authentication for Kafka.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaSasl {
    /// `plain`, `scram-sha-256` or `scram-sha-512` (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// User name from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretRef>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Password from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretRef>,
}

/// Basic authentication for the Schema Registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// User name from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretRef>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Password from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretRef>,
}

/// Confluent Schema Registry (messages carry magic byte + schema id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchemaRegistry {
    /// Registry URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Registry URL from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretRef>,
    /// Basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// TLS settings: the same block as the brokers' (CA, client certificate and
    /// key as paths, PEM content or Secret references).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,
}

/// How a Kafka client talks to the brokers (librdkafka's `security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum KafkaSecurityProtocol {
    /// No TLS, no SASL.
    #[serde(rename = "PLAINTEXT", alias = "plaintext")]
    Plaintext,
    /// TLS (with a client certificate when `tls` has one).
    #[serde(rename = "SSL", alias = "ssl")]
    Ssl,
    /// SASL without TLS.
    #[serde(rename = "SASL_PLAINTEXT", alias = "sasl_plaintext")]
    SaslPlaintext,
    /// SASL over TLS.
    #[serde(rename = "SASL_SSL", alias = "sasl_ssl")]
    SaslSsl,
}

impl KafkaSecurityProtocol {
    /// The protocol `tls` and `sasl` blocks imply.
    pub fn implied(tls: bool, sasl: bool) -> Self {
        match (tls, sasl) {
            (false, false) => Self::Plaintext,
            (true, false) => Self::Ssl,
            (false, true) => Self::SaslPlaintext,
            (true, true) => Self::SaslSsl,
        }
    }

    /// librdkafka's name for it.
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    /// Checks an explicit protocol against the `tls` and `sasl` blocks given. A
    /// TLS protocol without a `tls` block is fine (the system's CAs are used).
    pub fn agrees_with(self, tls: bool, sasl: bool) -> Result<(), String> {
        let uses_sasl = matches!(self, Self::SaslPlaintext | Self::SaslSsl);
        let uses_tls = matches!(self, Self::Ssl | Self::SaslSsl);
        if uses_sasl && !sasl {
            return Err("needs a sasl block (mechanism, username, password)".into());
        }
        if !uses_sasl && sasl {
            return Err("does not use SASL, but a sasl block is given".into());
        }
        if !uses_tls && tls {
            return Err("does not use TLS, but a tls block is given".into());
        }
        Ok(())
    }
}

/// The consumer group of a DataFlow's Kafka source without `consumerGroup`: one
/// per DataFlow (`flow` is `namespace/name`), the same across restarts, as Kafka
/// Connect names a connector's group after the connector.
pub fn default_consumer_group(flow: &str) -> String {
    format!("dataflow-{}", flow.replacen('/', "-", 1))
}

/// Kafka source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaSourceSpec {
    /// Bootstrap brokers (`host:port`); a comma-separated string is read as a
    /// list (that is how `brokersSecretRef` fills it).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "list_or_comma_separated"
    )]
    pub brokers: Vec<String>,
    /// Brokers from a Secret (comma-separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brokers_secret_ref: Option<SecretRef>,
    /// Topic to consume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Topic from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_secret_ref: Option<SecretRef>,
    /// Consumer group; default `dataflow-<namespace>-<name>` of the DataFlow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<String>,
    /// Consumer group from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group_secret_ref: Option<SecretRef>,
    /// `json` (default) or `avro`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Wrap each message as `{value, _metadata: {topic, partition, offset, timestamp, key}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_mode: Option<bool>,
    /// Static Avro schema (JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avro_schema: Option<String>,
    /// Static Avro schema from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avro_schema_secret_ref: Option<SecretRef>,
    /// Path of a static Avro schema file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avro_schema_file: Option<String>,
    /// Confluent Schema Registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry: Option<SchemaRegistry>,
    /// TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,
    /// SASL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSasl>,
    /// The Go original's explicit protocol; by default it follows from `tls` and
    /// `sasl`. When given it must agree with them (`SASL_*` needs `sasl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_protocol: Option<KafkaSecurityProtocol>,
}

/// Kafka sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaSinkSpec {
    /// Bootstrap brokers (`host:port`); a comma-separated string is read as a
    /// list (that is how `brokersSecretRef` fills it).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "list_or_comma_separated"
    )]
    pub brokers: Vec<String>,
    /// Brokers from a Secret (comma-separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brokers_secret_ref: Option<SecretRef>,
    /// Topic to produce to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Topic from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_secret_ref: Option<SecretRef>,
    /// Path of a message field whose value becomes the Kafka message key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_field: Option<String>,
    /// Record headers to write: header name to a message field path, or to
    /// `metadata.<key>` (`metadata.headers.trace-id` passes a source header on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,
    /// SASL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSasl>,
    /// The Go original's explicit protocol; by default it follows from `tls` and
    /// `sasl`. When given it must agree with them (`SASL_*` needs `sasl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_protocol: Option<KafkaSecurityProtocol>,
}
