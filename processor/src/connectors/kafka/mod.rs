//! Kafka through librdkafka (the `rdkafka` crate): a consumer-group source that
//! commits offsets only after the pipeline has written every output, and an
//! idempotent producer sink that confirms delivery before acknowledging.

mod avro;
mod bounds;
mod config;
mod context;
mod headers;
mod reset;
mod sink;
mod source;

pub use avro::{AvroDecoder, DecodeError};
pub use sink::KafkaSink;
pub use source::KafkaSource;
