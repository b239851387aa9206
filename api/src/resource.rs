use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ExecutionSpec, SinkSpec, SourceSpec, Transformation};

/// A declarative data flow: read from `source`, apply `transformations` in order,
/// write to `sink` (and to router sinks), send failures to `errors`.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "dataflow.dataflow.io",
    version = "v1",
    kind = "DataFlow",
    namespaced,
    shortname = "df",
    status = "DataFlowStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Processed","type":"integer","jsonPath":".status.processedCount"}"#,
    printcolumn = r#"{"name":"Errors","type":"integer","jsonPath":".status.errorCount"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataFlowSpec {
    /// Where messages come from.
    pub source: SourceSpec,
    /// Where transformed messages go.
    pub sink: SinkSpec,
    /// Transformations applied in order to every message (each only where its
    /// `when` holds, if it has one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transformations: Vec<Transformation>,
    /// Error sink: receives messages that failed transformation or writing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<SinkSpec>,
    /// CPU and memory for the processor pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node selector for the processor pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Affinity rules for the processor pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Tolerations for the processor pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Number of processor replicas (default 1); more than one only helps Kafka
    /// sources, which share partitions through the consumer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// The Go original's acknowledgement unit, `message` or `batch`. Both mean
    /// at-least-once here: a source position moves per batch once every message
    /// of the batch is durable, so a crash repeats at most the batches in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_granularity: Option<AckGranularity>,
    /// Keep read positions across restarts (default true). With `false` the
    /// positions of polling sources (PostgreSQL, ClickHouse) and the completion
    /// of a CDC snapshot live in memory only, and a restart reads from the start.
    /// Kafka group offsets and replication slots are the servers' own records and
    /// are always kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_persistence: Option<bool>,
    /// The Go original's buffer between stages, in messages (1 to 1,000,000):
    /// each pipeline queue holds about this many, as whole batches (at least
    /// one). Default: 4 batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_buffer_size: Option<u32>,
    /// Stream forever (default) or run to completion as a Job, optionally on a
    /// schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<ExecutionSpec>,
    /// Seconds the flow may have input waiting without handling a batch before
    /// its liveness probe (`/livez`) fails and Kubernetes restarts the processor
    /// (60 to 86,400; default 600). An idle flow with nothing to read is never
    /// stalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<u32>,
    /// What the flow shows of its messages: the tap, the recent failures and
    /// the playground (off by default in a cluster), and fields to mask there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observability: Option<crate::ObservabilitySpec>,
}

/// How often the Go original acknowledges source positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AckGranularity {
    /// Per message.
    Message,
    /// Per batch.
    Batch,
}

/// Largest `channelBufferSize`.
pub const MAX_CHANNEL_BUFFER_SIZE: u32 = 1_000_000;

/// `progressDeadlineSeconds`: the default, and the range allowed.
pub(crate) const DEFAULT_PROGRESS_DEADLINE_SECONDS: u32 = 600;
/// Shortest `progressDeadlineSeconds` (a slow sink's retries must fit).
pub(crate) const MIN_PROGRESS_DEADLINE_SECONDS: u32 = 60;
/// Longest `progressDeadlineSeconds` (one day).
pub(crate) const MAX_PROGRESS_DEADLINE_SECONDS: u32 = 86_400;

impl DataFlowSpec {
    /// Whether sources keep their positions across restarts.
    pub fn persists_positions(&self) -> bool {
        self.checkpoint_persistence.unwrap_or(true)
    }

    /// How long input may wait with no batch handled before the flow counts as
    /// stuck.
    pub fn progress_deadline_seconds(&self) -> u32 {
        self.progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }

    /// Whether the flow runs to completion (`execution.mode: job` or a schedule).
    pub fn runs_to_completion(&self) -> bool {
        self.execution
            .as_ref()
            .is_some_and(ExecutionSpec::runs_to_completion)
    }
}

/// Lifecycle phase of a DataFlow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// The processor is starting.
    Pending,
    /// The processor is running.
    Running,
    /// Something is wrong; see `message`.
    Error,
    /// The DataFlow is being deleted.
    Stopped,
    /// A job run read its source to the end and wrote everything.
    Succeeded,
    /// A job run failed and will not be retried; see `message`.
    Failed,
}

/// Observed state of a DataFlow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataFlowStatus {
    /// Current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Human-readable detail about the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Messages read by the processor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_count: Option<i64>,
    /// Messages that ended in the error sink or were dropped as errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_count: Option<i64>,
    /// When the processor last handled a message (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_processed_time: Option<String>,
    /// The error that stopped the processor last, as it reported it; cleared when
    /// a processor starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor_error: Option<String>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard Kubernetes conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The last position reset asked for with the `dataflow.dataflow.io/reset-position`
    /// annotation, and what the processor did about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_reset: Option<PositionResetStatus>,
}

/// A position reset: asked for by the annotation (the operator writes
/// `requested`), carried out once by the processor (which writes the rest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PositionResetStatus {
    /// The annotation's value the operator last rolled the processor for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    /// The annotation's value the processor last applied; the same value is not
    /// applied again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// When it was applied (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_time: Option<String>,
    /// Where the source was moved (partitions and offsets, a cursor, a snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
