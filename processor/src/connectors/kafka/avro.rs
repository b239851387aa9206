//! Avro payloads: a static schema, or Confluent Schema Registry framing
//! (magic byte 0, 4-byte big-endian schema id, Avro datum) with schemas fetched
//! over the registry's REST API and cached by id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use dataflow_api::connectors::{KafkaSourceSpec, KafkaTls, SchemaRegistry};

use crate::connectors::settings::{optional, required};
use crate::connectors::{ConnectorError, Health, Retry};

/// Why one payload could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Turns Avro payloads into JSON documents.
pub struct AvroDecoder {
    schemas: SchemaSource,
}

enum SchemaSource {
    Static(Arc<Schema>),
    Registry(Registry),
}

impl AvroDecoder {
    /// The decoder `spec` asks for (spec path `path`): the static schema from
    /// `avroSchema` or `avroSchemaFile`, else the Schema Registry.
    pub fn from_spec(
        path: &str,
        spec: &KafkaSourceSpec,
        health: Health,
    ) -> Result<Self, ConnectorError> {
        let inline = optional(
            spec.avro_schema.as_deref(),
            spec.avro_schema_secret_ref.as_ref(),
            path,
            "avroSchema",
        )?;
        let (text, field) = match (inline, spec.avro_schema_file.as_deref()) {
            (Some(text), _) => (Some(text.to_owned()), "avroSchema"),
            (None, Some(file)) => (
                Some(
                    std::fs::read_to_string(file).map_err(|e| ConnectorError::Config {
                        path: format!("{path}.avroSchemaFile"),
                        reason: format!("cannot read {file}: {e}"),
                    })?,
                ),
                "avroSchemaFile",
            ),
            (None, None) => (None, ""),
        };
        if let Some(text) = text {
            let schema = Schema::parse_str(&text).map_err(|e| ConnectorError::Config {
                path: format!("{path}.{field}"),
                reason: format!("not a valid Avro schema: {e}"),
            })?;
            return Ok(Self {
                schemas: SchemaSource::Static(Arc::new(schema)),
            });
        }
        match &spec.schema_registry {
            Some(registry) => Ok(Self {
                schemas: SchemaSource::Registry(Registry::new(
                    &format!("{path}.schemaRegistry"),
                    registry,
                    health,
                )?),
            }),
            None => Err(ConnectorError::Config {
                path: format!("{path}.format"),
                reason: "format avro needs avroSchema, avroSchemaFile or schemaRegistry".into(),
            }),
        }
    }

    /// Decodes one payload into JSON.
    pub async fn decode(&mut self, payload: &[u8]) -> Result<serde_json::Value, DecodeError> {
        let (schema, mut datum) = match &mut self.schemas {
            SchemaSource::Static(schema) => (schema.clone(), payload),
            SchemaSource::Registry(registry) => {
                let (id, datum) = split_framing(payload)?;
                (registry.schema(id).await?, datum)
            }
        };
        let reader = GenericDatumReader::builder(&schema)
            .build()
            .map_err(|e| DecodeError(format!("unusable Avro schema: {e}")))?;
        let value = reader
            .read_value(&mut datum)
            .map_err(|e| DecodeError(format!("invalid Avro data: {e}")))?;
        serde_json::Value::try_from(value)
            .map_err(|e| DecodeError(format!("Avro value has no JSON form: {e}")))
    }
}

/// Splits Confluent framing into schema id and datum.
fn split_framing(payload: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    match payload {
        [0, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        _ => Err(DecodeError(
            "not Schema Registry framing (expected magic byte 0 and a 4-byte schema id)".into(),
        )),
    }
}

/// `builder` set up to trust the CA and present the client certificate `tls`
/// (at spec path `path`) names; each may be a file path or PEM content.
fn with_tls(
    mut builder: reqwest::ClientBuilder,
    path: &str,
    tls: &KafkaTls,
) -> Result<reqwest::ClientBuilder, ConnectorError> {
    let pem = |value: Option<&str>, secret, field: &str| {
        let Some(value) = optional(value, secret, path, field)? else {
            return Ok(None);
        };
        if value.trim_start().starts_with("-----BEGIN") {
            return Ok(Some(value.as_bytes().to_vec()));
        }
        std::fs::read(value)
            .map(Some)
            .map_err(|e| ConnectorError::Config {
                path: format!("{path}.{field}"),
                reason: format!("cannot read {value}: {e}"),
            })
    };
    let bad = |field: &str, reason: String| ConnectorError::Config {
        path: format!("{path}.{field}"),
        reason,
    };
    if tls.insecure_skip_verify == Some(true) {
        builder = builder.danger_accept_invalid_certs(true);
    }
    if let Some(ca) = pem(tls.ca_file.as_deref(), tls.ca_secret_ref.as_ref(), "caFile")? {
        let certs = reqwest::Certificate::from_pem_bundle(&ca)
            .map_err(|e| bad("caFile", format!("not PEM certificates: {e}")))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let cert = pem(
        tls.cert_file.as_deref(),
        tls.cert_secret_ref.as_ref(),
        "certFile",
    )?;
    let key = pem(
        tls.key_file.as_deref(),
        tls.key_secret_ref.as_ref(),
        "keyFile",
    )?;
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let identity = reqwest::Identity::from_pkcs8_pem(&cert, &key).map_err(|e| {
                bad(
                    "certFile",
                    format!("not a PEM certificate and PKCS#8 key: {e}"),
                )
            })?;
            builder = builder.identity(identity);
        }
        (Some(_), None) => return Err(bad("keyFile", "required with certFile".into())),
        (None, Some(_)) => return Err(bad("certFile", "required with keyFile".into())),
        (None, None) => {}
    }
    Ok(builder)
}

/// A Confluent Schema Registry client with a schema cache.
struct Registry {
    retry: Retry,
    client: reqwest::Client,
    url: String,
    auth: Option<(String, String)>,
    cache: HashMap<u32, Arc<Schema>>,
}

#[derive(serde::Deserialize)]
struct SchemaResponse {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

impl Registry {
    fn new(path: &str, spec: &SchemaRegistry, health: Health) -> Result<Self, ConnectorError> {
        let url = required(
            spec.url.as_deref(),
            spec.url_secret_ref.as_ref(),
            path,
            "url",
        )?
        .trim_end_matches('/')
        .to_owned();
        let auth = match &spec.basic_auth {
            Some(auth) => {
                let auth_path = format!("{path}.basicAuth");
                Some((
                    required(
                        auth.username.as_deref(),
                        auth.username_secret_ref.as_ref(),
                        &auth_path,
                        "username",
                    )?
                    .to_owned(),
                    required(
                        auth.password.as_deref(),
                        auth.password_secret_ref.as_ref(),
                        &auth_path,
                        "password",
                    )?
                    .to_owned(),
                ))
            }
            None => None,
        };
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10));
        if let Some(tls) = &spec.tls {
            builder = with_tls(builder, &format!("{path}.tls"), tls)?;
        }
        let client = builder.build().map_err(|e| ConnectorError::Config {
            path: path.to_owned(),
            reason: format!("cannot build the HTTP client: {e}"),
        })?;
        Ok(Self {
            retry: Retry::new(format!("schema registry {url}"), health),
            client,
            url,
            auth,
            cache: HashMap::new(),
        })
    }

    /// The schema with `id`, from the cache or the registry. Network failures and
    /// server errors are retried with backoff; an unknown id fails the message.
    async fn schema(&mut self, id: u32) -> Result<Arc<Schema>, DecodeError> {
        if let Some(schema) = self.cache.get(&id) {
            return Ok(schema.clone());
        }
        let retry = self.retry.clone();
        let mut attempts = retry.attempts("fetch a schema");
        let response = loop {
            match self.fetch(id).await {
                Ok(response) => {
                    attempts.succeeded();
                    break response;
                }
                Err(Fetch::Permanent(reason)) => return Err(DecodeError(reason)),
                Err(Fetch::Retry(reason)) => {
                    attempts.transient(&format!("schema {id}: {reason}")).await;
                }
            }
        };
        if let Some(kind) = response.schema_type.as_deref().filter(|k| *k != "AVRO") {
            return Err(DecodeError(format!("schema {id} is {kind}, not AVRO")));
        }
        let schema = Schema::parse_str(&response.schema).map_err(|e| {
            DecodeError(format!(
                "schema {id} from the registry is not valid Avro: {e}"
            ))
        })?;
        let schema = Arc::new(schema);
        self.cache.insert(id, schema.clone());
        Ok(schema)
    }

    async fn fetch(&self, id: u32) -> Result<SchemaResponse, Fetch> {
        let mut request = self.client.get(format!("{}/schemas/ids/{id}", self.url));
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .map_err(|e| Fetch::Retry(e.to_string()))?;
        let status = response.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(Fetch::Retry(format!("registry answered {status}")));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(Fetch::Permanent(format!(
                "schema {id}: registry answered {status}: {body}"
            )));
        }
        response.json().await.map_err(|e| {
            Fetch::Permanent(format!("schema {id}: unexpected registry response: {e}"))
        })
    }
}

enum Fetch {
    Retry(String),
    Permanent(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Record;

    const SCHEMA: &str = r#"{"type":"record","name":"Order","fields":[
        {"name":"id","type":"long"},{"name":"name","type":"string"},
        {"name":"tags","type":{"type":"array","items":"string"}},
        {"name":"note","type":["null","string"],"default":null}]}"#;

    fn encode() -> Vec<u8> {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let mut record = Record::new(&schema).unwrap();
        record.put("id", 7i64);
        record.put("name", "Ann");
        record.put(
            "tags",
            apache_avro::types::Value::Array(vec![apache_avro::types::Value::String("a".into())]),
        );
        record.put(
            "note",
            apache_avro::types::Value::Union(
                1,
                Box::new(apache_avro::types::Value::String("hi".into())),
            ),
        );
        #[allow(deprecated)]
        apache_avro::to_avro_datum(&schema, record).unwrap()
    }

    #[tokio::test]
    async fn static_schema_decodes_to_json() {
        let spec = KafkaSourceSpec {
            avro_schema: Some(SCHEMA.into()),
            ..Default::default()
        };
        let mut decoder =
            AvroDecoder::from_spec("spec.source.kafka", &spec, Health::new()).unwrap();
        let value = decoder.decode(&encode()).await.unwrap();
        assert_eq!(
            value,
            serde_json::json!({"id": 7, "name": "Ann", "tags": ["a"], "note": "hi"})
        );
        let err = decoder.decode(&[0xff]).await.unwrap_err();
        assert!(err.0.starts_with("invalid Avro data"), "{err}");
    }

    #[test]
    fn config_errors_name_the_field() {
        let spec = KafkaSourceSpec {
            avro_schema: Some("{not json".into()),
            ..Default::default()
        };
        let err = AvroDecoder::from_spec("spec.source.kafka", &spec, Health::new())
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("spec.source.kafka.avroSchema: not a valid Avro schema"),
            "{err}"
        );
        let err = AvroDecoder::from_spec(
            "spec.source.kafka",
            &KafkaSourceSpec::default(),
            Health::new(),
        )
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .starts_with("spec.source.kafka.format: format avro needs"),
            "{err}"
        );
    }

    #[test]
    fn framing() {
        assert_eq!(
            split_framing(&[0, 0, 0, 1, 2, 9]).unwrap(),
            (258, &[9u8][..])
        );
        assert!(split_framing(&[1, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn registry_tls_problems_name_their_field() {
        let error = |tls: KafkaTls| {
            with_tls(
                reqwest::Client::builder(),
                "spec.source.kafka.schemaRegistry.tls",
                &tls,
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
        };
        let garbage = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
        let cert_only = error(KafkaTls {
            cert_file: Some(garbage.into()),
            ..KafkaTls::default()
        });
        assert!(cert_only.contains("tls.keyFile"), "{cert_only}");
        let bad_ca = error(KafkaTls {
            ca_file: Some(garbage.into()),
            ..KafkaTls::default()
        });
        assert!(bad_ca.contains("tls.caFile"), "{bad_ca}");
        let missing = error(KafkaTls {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..KafkaTls::default()
        });
        assert!(
            missing.contains("tls.caFile") && missing.contains("cannot read"),
            "{missing}"
        );
    }
}
