//! The Kafka source.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dataflow_api::ErrorType;
use dataflow_api::connectors::{KafkaSourceSpec, default_consumer_group};
use dataflow_core::Message;
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message as KafkaMessage, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::value::RawValue;

use super::avro::AvroDecoder;
use super::bounds::Bounds;
use super::config::{Connection, client_config};
use super::context::{KafkaContext, fatal_type};
use super::headers::{HEADER_PREFIX, read_headers};
use crate::connectors::limits::oversized;
use crate::connectors::retry::Backoff;
use crate::connectors::settings::{optional, required};
use crate::connectors::{
    Ack, BatchLimit, ConnectorError, Health, MAX_MESSAGE_BYTES, PositionLog, Rejected, Source,
    SourceBatch, SourceOptions,
};

/// How long a batch may wait for more messages after its first one.
const LINGER: Duration = Duration::from_millis(5);

/// Next offsets to commit, per partition.
type Position = BTreeMap<i32, i64>;

/// Payload decoding.
enum Format {
    Json,
    Avro(Box<AvroDecoder>),
}

/// Consumes one topic in a consumer group, from the oldest offset when the group
/// has none committed.
pub struct KafkaSource {
    name: String,
    topic: String,
    consumer: Arc<StreamConsumer<KafkaContext>>,
    format: Format,
    raw_mode: bool,
    positions: PositionLog<Position>,
    committed: Position,
    /// The first record of the next batch, taken while waiting for input.
    waiting: Option<OwnedMessage>,
    /// In a job: where each partition ends.
    bounds: Option<Bounds>,
}

impl KafkaSource {
    /// Connects and subscribes as `spec` says (spec path `path`) for the DataFlow
    /// `flow` (`namespace/name`), which names the consumer group when the spec does
    /// not. With `options.to_completion` (a job) the source ends once every
    /// partition is read up to its high watermark at start. A position reset in
    /// `options` is committed for the group first; what it did is returned.
    pub async fn open(
        path: &str,
        spec: &KafkaSourceSpec,
        flow: &str,
        health: Health,
        options: SourceOptions<'_>,
    ) -> Result<(Self, Option<String>), ConnectorError> {
        let to_completion = options.to_completion;
        let topic = required(
            spec.topic.as_deref(),
            spec.topic_secret_ref.as_ref(),
            path,
            "topic",
        )?
        .to_owned();
        let group = optional(
            spec.consumer_group.as_deref(),
            spec.consumer_group_secret_ref.as_ref(),
            path,
            "consumerGroup",
        )?
        .map_or_else(|| default_consumer_group(flow), str::to_owned);
        let format = match spec
            .format
            .as_deref()
            .unwrap_or("json")
            .to_ascii_lowercase()
            .as_str()
        {
            "json" => Format::Json,
            "avro" => Format::Avro(Box::new(AvroDecoder::from_spec(
                path,
                spec,
                health.clone(),
            )?)),
            other => {
                return Err(ConnectorError::Config {
                    path: format!("{path}.format"),
                    reason: format!("unknown format {other:?}; use json or avro"),
                });
            }
        };
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
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "enable.partition.eof",
                if to_completion { "true" } else { "false" },
            )
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // Also the group's rebalance timeout: how long a rebalance waits for
            // members that do not rejoin (after a coordinator restart, a member
            // the coordinator remembers but that has gone). The pipeline polls far
            // more often unless a sink holds it back that long.
            .set("max.poll.interval.ms", "45000");
        let name = format!("kafka source {topic}");
        let consumer: StreamConsumer<KafkaContext> = config
            .create_with_context(KafkaContext::new(&name, health))
            .map_err(|e| ConnectorError::Config {
                path: path.to_owned(),
                reason: format!("cannot create the Kafka consumer: {e}"),
            })?;
        let consumer = Arc::new(consumer);
        let reset = match options.reset {
            Some(reset) => {
                super::reset::apply(
                    &name,
                    &topic,
                    consumer.clone(),
                    reset,
                    options.reset_applied_elsewhere.cloned(),
                )
                .await?
            }
            None => None,
        };
        let bounds = if to_completion {
            Some(Bounds::fetch(&name, &topic, consumer.clone()).await?)
        } else {
            None
        };
        consumer
            .subscribe(&[&topic])
            .map_err(|e| ConnectorError::Failed {
                connector: name.clone(),
                error_type: ErrorType::ConnectionError,
                reason: format!("cannot subscribe: {e}"),
            })?;
        let source = Self {
            name,
            topic,
            consumer,
            format,
            raw_mode: spec.raw_mode.unwrap_or(false),
            positions: PositionLog::default(),
            committed: Position::new(),
            waiting: None,
            bounds,
        };
        Ok((source, reset))
    }

    /// Whether a job has read everything it is to read.
    fn exhausted(&self) -> bool {
        self.bounds.as_ref().is_some_and(Bounds::done)
    }

    /// Whether `record` is handed out: always, except in a job past a
    /// partition's end.
    fn admit(&mut self, partition: i32, offset: i64) -> bool {
        self.bounds
            .as_mut()
            .is_none_or(|b| b.admit(partition, offset))
    }

    /// Notes the end of a partition in a job.
    fn reached_end(&mut self, partition: i32) {
        if let Some(bounds) = &mut self.bounds {
            bounds.reached_end(partition);
        }
    }

    /// Converts one Kafka message into a pipeline message (or a rejection).
    async fn convert(&mut self, record: &impl KafkaMessage, batch: &mut SourceBatch) {
        let bytes = record.payload().unwrap_or_default();
        let mut metadata = Vec::with_capacity(5);
        metadata.push(("topic".to_owned(), record.topic().to_owned()));
        metadata.push(("partition".to_owned(), record.partition().to_string()));
        metadata.push(("offset".to_owned(), record.offset().to_string()));
        let timestamp = record.timestamp().to_millis();
        if let Some(ms) = timestamp {
            metadata.push(("timestamp".to_owned(), ms.to_string()));
        }
        let key = record
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        if let Some(key) = &key {
            metadata.push(("key".to_owned(), key.clone()));
        }
        if let Some(headers) = record.headers()
            && let Err(reason) = read_headers(headers, &mut metadata)
        {
            batch.rejected.push(Rejected {
                message: Message {
                    payload: bytes.to_vec(),
                    metadata,
                },
                error_type: ErrorType::InvalidData,
                reason,
            });
            return;
        }
        if bytes.len() > MAX_MESSAGE_BYTES {
            let what = format!("the record at offset {}", record.offset());
            batch
                .rejected
                .push(oversized(bytes, bytes.len(), metadata, &what));
            return;
        }
        let value: Result<Vec<u8>, String> = match &mut self.format {
            // A record without a value (a tombstone) is the JSON document `null`,
            // whatever the format: transforms see it (`debeziumUnwrap` drops it)
            // instead of failing it as bytes that are not JSON.
            _ if record.payload().is_none() => Ok(b"null".to_vec()),
            Format::Json => Ok(bytes.to_vec()),
            Format::Avro(decoder) => match decoder.decode(bytes).await {
                Ok(json) => serde_json::to_vec(&json).map_err(|e| e.to_string()),
                Err(e) => Err(e.0),
            },
        };
        match value {
            Ok(value) => {
                let payload = if self.raw_mode {
                    wrap_raw(&value, record, timestamp, key.as_deref(), &metadata)
                } else {
                    value
                };
                batch.messages.push(Message { payload, metadata });
            }
            Err(reason) => batch.rejected.push(Rejected {
                message: Message {
                    payload: bytes.to_vec(),
                    metadata,
                },
                error_type: ErrorType::InvalidData,
                reason,
            }),
        }
    }
}

/// `{"value": <message>, "_metadata": {topic, partition, offset, timestamp, key}}`;
/// a value that is not JSON is carried as a string.
fn wrap_raw(
    value: &[u8],
    record: &impl KafkaMessage,
    timestamp: Option<i64>,
    key: Option<&str>,
    metadata: &[(String, String)],
) -> Vec<u8> {
    let mut out = String::with_capacity(value.len() + 128);
    out.push_str("{\"value\":");
    match serde_json::from_slice::<&RawValue>(value) {
        Ok(raw) => out.push_str(raw.get()),
        Err(_) => out.push_str(&json_string(&String::from_utf8_lossy(value))),
    }
    let _ = write!(
        out,
        ",\"_metadata\":{{\"topic\":{},\"partition\":{},\"offset\":{}",
        json_string(record.topic()),
        record.partition(),
        record.offset()
    );
    if let Some(ms) = timestamp {
        let _ = write!(out, ",\"timestamp\":{ms}");
    }
    if let Some(key) = key {
        let _ = write!(out, ",\"key\":{}", json_string(key));
    }
    let mut headers = metadata
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(HEADER_PREFIX)?, v)))
        .peekable();
    if headers.peek().is_some() {
        out.push_str(",\"headers\":{");
        for (i, (name, value)) in headers.enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}:{}", json_string(name), json_string(value));
        }
        out.push('}');
    }
    out.push_str("}}");
    out.into_bytes()
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

impl KafkaSource {
    /// The fatal failure librdkafka reported, as the error that ends the flow.
    fn fatal(&self) -> Option<ConnectorError> {
        self.consumer
            .context()
            .fatal()
            .map(|fatal| ConnectorError::Failed {
                connector: self.name.clone(),
                error_type: fatal.error_type,
                reason: fatal.reason,
            })
    }

    /// Waits for the next record, or the fatal failure that ends the flow.
    /// Transient consumer errors mark the connector down; librdkafka reconnects
    /// at its own pace, so the pause after each is short: errors queued during an
    /// outage must drain quickly once the brokers are back, or the group's
    /// rebalance (served by the same queue) waits behind them. Cancel-safe: a
    /// record is taken only when it is kept. `None` once a job is exhausted.
    async fn receive(&mut self) -> Result<Option<OwnedMessage>, ConnectorError> {
        let consumer = self.consumer.clone();
        let context = consumer.context();
        let mut backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(200));
        loop {
            if self.exhausted() {
                return Ok(None);
            }
            let next = tokio::select! {
                next = consumer.recv() => next,
                () = context.until_fatal() => {
                    return Err(self.fatal().unwrap_or_else(|| self.failed(KafkaError::Canceled)));
                }
            };
            match next {
                Ok(record) => {
                    context.reachable();
                    if self.admit(record.partition(), record.offset()) {
                        return Ok(Some(record.detach()));
                    }
                }
                Err(KafkaError::PartitionEOF(partition)) => self.reached_end(partition),
                Err(e) => match fatal_type(&e) {
                    Some(error_type) => {
                        context.record_fatal(error_type, consumer_error(&self.topic, &e))
                    }
                    None => {
                        context.transient(&e.to_string());
                        backoff.wait().await;
                    }
                },
            }
        }
    }
}

/// A consumer error, said for the topic it is about.
fn consumer_error(topic: &str, e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition) => {
            format!("topic {topic:?} does not exist: {e}")
        }
        _ => e.to_string(),
    }
}

#[async_trait]
impl Source for KafkaSource {
    async fn wait_for_input(&mut self) -> Result<(), ConnectorError> {
        if self.waiting.is_none() {
            self.waiting = self.receive().await?;
        }
        Ok(())
    }

    async fn next_batch(
        &mut self,
        limit: BatchLimit,
    ) -> Result<Option<SourceBatch>, ConnectorError> {
        let first = match self.waiting.take() {
            Some(first) => first,
            None => match self.receive().await? {
                Some(first) => first,
                None => return Ok(None),
            },
        };
        let consumer = self.consumer.clone();
        let mut batch = SourceBatch {
            messages: Vec::with_capacity(limit.messages.clamp(1, 4096)),
            rejected: Vec::new(),
            ack: None,
        };
        let mut position = Position::new();
        // The first message, then what is already buffered.
        position.insert(first.partition(), first.offset() + 1);
        let mut bytes = first.payload().map_or(0, <[u8]>::len);
        self.convert(&first, &mut batch).await;
        // Then fill the batch with what arrives within a short linger: under load
        // batches come out full, when idle the first message waits at most LINGER.
        let linger = tokio::time::Instant::now() + LINGER;
        while !limit.reached(batch.messages.len() + batch.rejected.len(), bytes)
            && !self.exhausted()
        {
            let next = match consumer.recv().now_or_never() {
                Some(next) => next,
                None => match tokio::time::timeout_at(linger, consumer.recv()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            match next {
                Ok(record) => {
                    if !self.admit(record.partition(), record.offset()) {
                        continue;
                    }
                    position.insert(record.partition(), record.offset() + 1);
                    bytes += record.payload().map_or(0, <[u8]>::len);
                    self.convert(&record, &mut batch).await;
                }
                Err(KafkaError::PartitionEOF(partition)) => self.reached_end(partition),
                // The next batch's first read deals with it.
                Err(_) => break,
            }
        }
        batch.ack = Some(self.positions.record(position));
        Ok(Some(batch))
    }

    async fn commit(&mut self, ack: Ack) -> Result<(), ConnectorError> {
        let released = self
            .positions
            .release(ack)
            .map_err(|cause| ConnectorError::Ack {
                connector: self.name.clone(),
                cause,
            })?;
        let list = {
            let assigned = self.consumer.context().assigned();
            let mut list = TopicPartitionList::new();
            let mut latest = Position::new();
            for position in released {
                latest.extend(position);
            }
            for (partition, offset) in latest {
                if assigned.contains(&partition) {
                    self.committed.insert(partition, offset);
                    list.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
                        .map_err(|e| self.failed(e))?;
                }
            }
            list
        };
        if list.count() > 0
            && let Err(e) = self.consumer.commit(&list, CommitMode::Async)
        {
            tracing::warn!(connector = %self.name, error = %e, "kafka offset commit failed; the next commit covers it");
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        let mut list = TopicPartitionList::new();
        {
            let assigned = self.consumer.context().assigned();
            for (&partition, &offset) in &self.committed {
                if assigned.contains(&partition) {
                    list.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
                        .map_err(|e| self.failed(e))?;
                }
            }
        }
        if list.count() == 0 {
            return Ok(());
        }
        let consumer = self.consumer.clone();
        let result = tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
            .await
            .map_err(|e| ConnectorError::Failed {
                connector: self.name.clone(),
                error_type: ErrorType::Failed,
                reason: format!("final commit did not run: {e}"),
            })?;
        match result {
            Ok(()) => Ok(()),
            Err(e) if group_is_moving(&e) => {
                // The group is handing these partitions to another member, which
                // resumes from the last offset the broker accepted: the outputs
                // written since then are delivered again, never lost.
                tracing::warn!(connector = %self.name, error = %e, "final kafka offset commit refused during a rebalance; the new owner re-reads from the last committed offset");
                Ok(())
            }
            Err(e) => Err(self.failed(e)),
        }
    }
}

/// Whether a commit failed only because the consumer group is rebalancing or this
/// member has already left it, so the partitions' progress now belongs to another
/// member.
fn group_is_moving(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        e.rdkafka_error_code(),
        Some(
            Code::RebalanceInProgress
                | Code::IllegalGeneration
                | Code::UnknownMemberId
                | Code::FencedInstanceId
                | Code::AssignmentLost
        )
    )
}

impl KafkaSource {
    fn failed(&self, e: rdkafka::error::KafkaError) -> ConnectorError {
        ConnectorError::Failed {
            connector: self.name.clone(),
            error_type: ErrorType::ConnectionError,
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode;

    use super::group_is_moving;

    #[test]
    fn only_group_membership_errors_excuse_a_final_commit() {
        for code in [
            RDKafkaErrorCode::RebalanceInProgress,
            RDKafkaErrorCode::IllegalGeneration,
            RDKafkaErrorCode::UnknownMemberId,
            RDKafkaErrorCode::AssignmentLost,
        ] {
            assert!(
                group_is_moving(&KafkaError::ConsumerCommit(code)),
                "{code:?}"
            );
        }
        for code in [
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::GroupAuthorizationFailed,
            RDKafkaErrorCode::OffsetOutOfRange,
        ] {
            assert!(
                !group_is_moving(&KafkaError::ConsumerCommit(code)),
                "{code:?}"
            );
        }
    }
}
