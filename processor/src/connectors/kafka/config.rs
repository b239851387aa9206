//! Maps the spec's Kafka settings (brokers, TLS, SASL) onto librdkafka properties.

use std::path::Path;

use dataflow_api::SecretRef;
use dataflow_api::connectors::{KafkaSasl, KafkaSecurityProtocol, KafkaTls};
use rdkafka::ClientConfig;

use crate::connectors::ConnectorError;
use crate::connectors::settings::{optional, required};

/// Brokers, TLS and SASL as they appear in both the source and the sink.
pub(super) struct Connection<'a> {
    pub brokers: &'a [String],
    pub brokers_secret_ref: Option<&'a SecretRef>,
    pub tls: Option<&'a KafkaTls>,
    pub sasl: Option<&'a KafkaSasl>,
    pub security_protocol: Option<KafkaSecurityProtocol>,
}

/// librdkafka properties for `connection` (spec path `path`).
pub(super) fn client_config(
    path: &str,
    connection: &Connection<'_>,
) -> Result<ClientConfig, ConnectorError> {
    let mut config = ClientConfig::new();
    if let Some(secret) = connection.brokers_secret_ref {
        required(None, Some(secret), path, "brokers")?;
    }
    let brokers: Vec<&str> = connection
        .brokers
        .iter()
        .flat_map(|b| b.split(','))
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect();
    if brokers.is_empty() {
        return Err(ConnectorError::Config {
            path: format!("{path}.brokers"),
            reason: "at least one broker is required".into(),
        });
    }
    config.set("bootstrap.servers", brokers.join(","));
    // Broker states once a second: what the connector's health follows.
    config.set("statistics.interval.ms", "1000");
    if let Ok(contexts) = std::env::var("DATAFLOW_LIBRDKAFKA_DEBUG") {
        config.set("debug", contexts);
    }

    let mut tls_on = false;
    if let Some(tls) = connection.tls {
        tls_on = true;
        let tls_path = format!("{path}.tls");
        if let Some(ca) = optional(
            tls.ca_file.as_deref(),
            tls.ca_secret_ref.as_ref(),
            &tls_path,
            "caFile",
        )? {
            set_pem(&mut config, "ssl.ca", ca);
        }
        if let Some(cert) = optional(
            tls.cert_file.as_deref(),
            tls.cert_secret_ref.as_ref(),
            &tls_path,
            "certFile",
        )? {
            set_pem(&mut config, "ssl.certificate", cert);
        }
        if let Some(key) = optional(
            tls.key_file.as_deref(),
            tls.key_secret_ref.as_ref(),
            &tls_path,
            "keyFile",
        )? {
            set_pem(&mut config, "ssl.key", key);
        }
        if tls.insecure_skip_verify == Some(true) {
            config.set("enable.ssl.certificate.verification", "false");
            config.set("ssl.endpoint.identification.algorithm", "none");
        }
    }

    let mut sasl_on = false;
    if let Some(sasl) = connection.sasl {
        sasl_on = true;
        let sasl_path = format!("{path}.sasl");
        let mechanism = match sasl
            .mechanism
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("plain") => "PLAIN",
            Some("scram-sha-256") => "SCRAM-SHA-256",
            Some("scram-sha-512") => "SCRAM-SHA-512",
            Some(other) => {
                return Err(ConnectorError::Config {
                    path: format!("{sasl_path}.mechanism"),
                    reason: format!(
                        "unknown mechanism {other:?}; use plain, scram-sha-256 or scram-sha-512"
                    ),
                });
            }
        };
        config.set("sasl.mechanisms", mechanism);
        config.set(
            "sasl.username",
            required(
                sasl.username.as_deref(),
                sasl.username_secret_ref.as_ref(),
                &sasl_path,
                "username",
            )?,
        );
        config.set(
            "sasl.password",
            required(
                sasl.password.as_deref(),
                sasl.password_secret_ref.as_ref(),
                &sasl_path,
                "password",
            )?,
        );
    }
    let protocol = match connection.security_protocol {
        Some(given) => {
            given
                .agrees_with(tls_on, sasl_on)
                .map_err(|reason| ConnectorError::Config {
                    path: format!("{path}.securityProtocol"),
                    reason,
                })?;
            given
        }
        None => KafkaSecurityProtocol::implied(tls_on, sasl_on),
    };
    config.set("security.protocol", protocol.as_librdkafka());
    Ok(config)
}

/// `value` is PEM content when it starts with `-----BEGIN`, a file path when such a
/// file exists, and content otherwise (the seeds' rule).
fn set_pem(config: &mut ClientConfig, prefix: &str, value: &str) {
    let is_path = !value.trim_start().starts_with("-----BEGIN") && Path::new(value).is_file();
    if is_path {
        config.set(format!("{prefix}.location"), value);
    } else {
        config.set(format!("{prefix}.pem"), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(config: &'a ClientConfig, key: &str) -> Option<&'a str> {
        config.get(key)
    }

    #[test]
    fn plaintext_by_default() {
        let brokers = vec!["a:9092".to_owned(), "b:9092, c:9092".to_owned()];
        let config = client_config(
            "spec.source.kafka",
            &Connection {
                brokers: &brokers,
                brokers_secret_ref: None,
                tls: None,
                sasl: None,
                security_protocol: None,
            },
        )
        .unwrap();
        assert_eq!(
            get(&config, "bootstrap.servers"),
            Some("a:9092,b:9092,c:9092")
        );
        assert_eq!(get(&config, "security.protocol"), Some("plaintext"));
    }

    #[test]
    fn an_explicit_security_protocol_is_used_and_checked() {
        let brokers = vec!["a:9092".to_owned()];
        let with = |protocol| Connection {
            brokers: &brokers,
            brokers_secret_ref: None,
            tls: None,
            sasl: None,
            security_protocol: Some(protocol),
        };
        let config = client_config("k", &with(KafkaSecurityProtocol::Ssl)).unwrap();
        assert_eq!(
            get(&config, "security.protocol"),
            Some("ssl"),
            "TLS with the system's CAs"
        );
        let err = client_config("k", &with(KafkaSecurityProtocol::SaslPlaintext))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("k.securityProtocol: needs a sasl block"),
            "{err}"
        );
    }

    #[test]
    fn tls_content_and_paths_and_scram() {
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.crt");
        std::fs::write(&ca_path, "x").unwrap();
        let tls = KafkaTls {
            insecure_skip_verify: Some(true),
            ca_file: Some(ca_path.to_string_lossy().into_owned()),
            cert_file: Some("-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----".into()),
            key_file: Some("/does/not/exist.key".into()),
            ..Default::default()
        };
        let sasl = KafkaSasl {
            mechanism: Some("SCRAM-SHA-512".into()),
            username: Some("u".into()),
            password: Some("p".into()),
            ..Default::default()
        };
        let brokers = vec!["k:9093".to_owned()];
        let config = client_config(
            "spec.sink.kafka",
            &Connection {
                brokers: &brokers,
                brokers_secret_ref: None,
                tls: Some(&tls),
                sasl: Some(&sasl),
                security_protocol: None,
            },
        )
        .unwrap();
        assert_eq!(get(&config, "security.protocol"), Some("sasl_ssl"));
        assert_eq!(get(&config, "ssl.ca.location"), ca_path.to_str());
        assert!(
            get(&config, "ssl.certificate.pem")
                .unwrap()
                .starts_with("-----BEGIN")
        );
        // Neither PEM nor an existing file: treated as content.
        assert_eq!(get(&config, "ssl.key.pem"), Some("/does/not/exist.key"));
        assert_eq!(
            get(&config, "enable.ssl.certificate.verification"),
            Some("false")
        );
        assert_eq!(get(&config, "sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(get(&config, "sasl.username"), Some("u"));
    }

    #[test]
    fn errors_name_the_field() {
        let sasl = KafkaSasl {
            mechanism: Some("gssapi".into()),
            ..Default::default()
        };
        let brokers = vec!["k:1".to_owned()];
        let err = client_config(
            "spec.source.kafka",
            &Connection {
                brokers: &brokers,
                brokers_secret_ref: None,
                tls: None,
                sasl: Some(&sasl),
                security_protocol: None,
            },
        )
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .starts_with("spec.source.kafka.sasl.mechanism: unknown mechanism"),
            "{err}"
        );
        let err = client_config(
            "spec.source.kafka",
            &Connection {
                brokers: &[],
                brokers_secret_ref: None,
                tls: None,
                sasl: None,
                security_protocol: None,
            },
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "spec.source.kafka.brokers: at least one broker is required"
        );
    }
}
