//! The Kafka sink.

use std::time::Duration;

use async_trait::async_trait;
use dataflow_api::ErrorType;
use dataflow_api::connectors::KafkaSinkSpec;
use dataflow_core::Message;
use dataflow_core::json::Value;
use dataflow_core::path::FieldPath;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::config::{Connection, client_config};
use super::context::{KafkaContext, fatal_type};
use super::headers::HeaderWriter;
use crate::connectors::settings::required;
use crate::connectors::{ConnectorError, Health, Rejected, Sink};

/// Produces to one topic with an idempotent producer. `write` returns once every
/// message is acknowledged by the brokers (`acks=all`); librdkafka retries
/// transient failures itself, with no delivery time limit, so a broker outage
/// stalls the flow instead of dropping messages.
pub struct KafkaSink {
    name: String,
    topic: String,
    producer: FutureProducer<KafkaContext>,
    context: KafkaContext,
    key: Option<FieldPath>,
    headers: HeaderWriter,
}

impl KafkaSink {
    /// Creates the producer `spec` describes (spec path `path`).
    pub fn open(path: &str, spec: &KafkaSinkSpec, health: Health) -> Result<Self, ConnectorError> {
        let topic = required(
            spec.topic.as_deref(),
            spec.topic_secret_ref.as_ref(),
            path,
            "topic",
        )?
        .to_owned();
        let key = match spec.key_field.as_deref().filter(|k| !k.is_empty()) {
            Some(text) => Some(FieldPath::parse(text).map_err(|e| ConnectorError::Config {
                path: format!("{path}.keyField"),
                reason: e.to_string(),
            })?),
            None => None,
        };
        let headers = HeaderWriter::new(path, spec.headers.iter().flatten())?;
        let mut config = client_config(
            path,
            &Connection {
                brokers: &spec.brokers,
                brokers_secret_ref: spec.brokers_secret_ref.as_ref(),
                tls: spec.tls.as_ref(),
                sasl: spec.sasl.as_ref(),
                security_protocol: spec.security_protocol,
            },
        )?;
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "0")
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("compression.type", "lz4");
        let name = format!("kafka sink {topic}");
        let context = KafkaContext::new(&name, health);
        let producer =
            config
                .create_with_context(context.clone())
                .map_err(|e| ConnectorError::Config {
                    path: path.to_owned(),
                    reason: format!("cannot create the Kafka producer: {e}"),
                })?;
        Ok(Self {
            name,
            context,
            topic,
            producer,
            key,
            headers,
        })
    }

    /// The record key and headers of `message`; the document is parsed once,
    /// and only when a key or a header reads it.
    fn key_and_headers(&self, message: &Message) -> (Option<Vec<u8>>, Option<OwnedHeaders>) {
        let document = (self.key.is_some() || self.headers.reads_document())
            .then(|| Value::parse(&message.payload).ok())
            .flatten();
        let key = self
            .key
            .as_ref()
            .and_then(|path| match path.get(document.as_ref()?)? {
                Value::Null => None,
                Value::String(s) => Some(s.as_bytes().to_vec()),
                other => Some(other.to_json()),
            });
        let headers = (!self.headers.is_empty())
            .then(|| self.headers.headers(document.as_ref(), &message.metadata));
        (key, headers)
    }
}

/// A delivery failure the message itself causes (it goes to the error sink);
/// `None` for failures of the connection or the account, which end the flow.
fn message_fault(error: &KafkaError) -> Option<ErrorType> {
    match error.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidRecord,
        ) => Some(ErrorType::InvalidData),
        _ => None,
    }
}

impl KafkaSink {
    /// The failure that ends the flow: what librdkafka reported as fatal, else `error`.
    fn failed(&self, error: &KafkaError) -> ConnectorError {
        let context = &self.context;
        let (error_type, reason) = match context.fatal() {
            Some(fatal) => (fatal.error_type, fatal.reason),
            None => (
                fatal_type(error).unwrap_or(ErrorType::Failed),
                error.to_string(),
            ),
        };
        ConnectorError::Failed {
            connector: self.name.clone(),
            error_type,
            reason,
        }
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn write(&mut self, messages: Vec<Message>) -> Result<Vec<Rejected>, ConnectorError> {
        let mut pending = Vec::with_capacity(messages.len());
        let mut rejected = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            let (key, headers) = self.key_and_headers(message);
            loop {
                let mut record =
                    FutureRecord::<[u8], [u8]>::to(&self.topic).payload(&message.payload);
                if let Some(key) = &key {
                    record = record.key(key.as_slice());
                }
                if let Some(headers) = &headers {
                    record = record.headers(headers.clone());
                }
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push((index, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // The local queue is full: let deliveries drain, then retry.
                        self.producer.poll(Duration::from_millis(10));
                        tokio::task::yield_now().await;
                    }
                    Err((e, _)) => match message_fault(&e) {
                        Some(error_type) => {
                            rejected.push((index, error_type, e.to_string()));
                            break;
                        }
                        None => return Err(self.failed(&e)),
                    },
                }
            }
        }
        for (index, delivery) in pending {
            let delivered = tokio::select! {
                delivered = delivery => delivered,
                () = self.context.until_fatal() => {
                    return Err(self.failed(&KafkaError::Canceled));
                }
            };
            match delivered {
                Ok(Ok(_)) => self.context.reachable(),
                Ok(Err((e, _))) => match message_fault(&e) {
                    Some(error_type) => rejected.push((index, error_type, e.to_string())),
                    None => return Err(self.failed(&e)),
                },
                Err(_) => {
                    return Err(ConnectorError::Failed {
                        connector: self.name.clone(),
                        error_type: ErrorType::Failed,
                        reason: "the producer dropped a delivery report".into(),
                    });
                }
            }
        }
        rejected.sort_by_key(|r| r.0);
        let mut messages: Vec<Option<Message>> = messages.into_iter().map(Some).collect();
        Ok(rejected
            .into_iter()
            .filter_map(|(index, error_type, reason)| {
                Some(Rejected {
                    message: messages[index].take()?,
                    error_type,
                    reason,
                })
            })
            .collect())
    }

    async fn flush(&mut self) -> Result<Vec<Rejected>, ConnectorError> {
        // `write` waits for every delivery, so nothing is ever outstanding here.
        Ok(Vec::new())
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        if let Err(e) = self.producer.flush(Duration::from_secs(10)) {
            tracing::warn!(connector = %self.name, error = %e, "kafka producer flush on close failed");
        }
    }
}
