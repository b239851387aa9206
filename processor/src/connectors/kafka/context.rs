//! What librdkafka reports outside of messages: its logs, client-level errors and
//! (for the consumer) rebalances. Logs and transient errors are throttled, the
//! connector's health follows them, and a failure retrying cannot fix (refused
//! credentials, no such topic, no permission) is kept so the connector can end
//! the flow with it instead of looping.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dataflow_api::ErrorType;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::Notify;

use crate::connectors::Health;
use crate::connectors::retry::LogThrottle;

/// A failure retrying cannot fix, as librdkafka reported it.
#[derive(Debug, Clone)]
pub(super) struct Fatal {
    pub(super) error_type: ErrorType,
    pub(super) reason: String,
}

/// The classification of a Kafka error: fatal (with its type), or worth waiting for.
pub(super) fn fatal_type(error: &KafkaError) -> Option<ErrorType> {
    match error.rdkafka_error_code()? {
        RDKafkaErrorCode::Authentication
        | RDKafkaErrorCode::SaslAuthenticationFailed
        | RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::GroupAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed
        | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
        | RDKafkaErrorCode::UnsupportedSASLMechanism
        | RDKafkaErrorCode::IllegalSASLState => Some(ErrorType::AuthError),
        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => {
            Some(ErrorType::InvalidData)
        }
        RDKafkaErrorCode::Fatal => Some(ErrorType::Failed),
        _ => None,
    }
}

/// The client context of our consumers and producers; clones share their state,
/// so a connector keeps one next to its client.
#[derive(Clone)]
pub(super) struct KafkaContext(Arc<State>);

/// What a [`KafkaContext`] keeps.
struct State {
    name: String,
    health: Health,
    throttle: Mutex<LogThrottle>,
    fatal: Mutex<Option<Fatal>>,
    /// Woken when a fatal failure is recorded.
    failed: Notify,
    /// Partitions assigned to this consumer, kept by the rebalance callbacks.
    /// Commits leave out revoked partitions: their unfinished work belongs to the
    /// new owner, which resumes from the last committed offset.
    assigned: Mutex<HashSet<i32>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KafkaContext {
    /// A context for the connector `name`, reporting to `health`.
    pub(super) fn new(name: &str, health: Health) -> Self {
        Self(Arc::new(State {
            name: name.to_owned(),
            health,
            throttle: Mutex::new(LogThrottle::default()),
            fatal: Mutex::new(None),
            failed: Notify::new(),
            assigned: Mutex::new(HashSet::new()),
        }))
    }

    /// The fatal failure recorded so far, if any.
    pub(super) fn fatal(&self) -> Option<Fatal> {
        lock(&self.0.fatal).clone()
    }

    /// Returns once a fatal failure is recorded (at once if one already is).
    pub(super) async fn until_fatal(&self) {
        let notified = self.0.failed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.fatal().is_some() {
            return;
        }
        notified.await;
    }

    /// Records a failure retrying cannot fix and wakes whoever waits on the client.
    pub(super) fn record_fatal(&self, error_type: ErrorType, reason: String) {
        self.0.health.down();
        let mut fatal = lock(&self.0.fatal);
        if fatal.is_none() {
            tracing::error!(connector = %self.0.name, %error_type, %reason, "kafka failure that retrying cannot fix");
            *fatal = Some(Fatal { error_type, reason });
        }
        drop(fatal);
        self.0.failed.notify_waiters();
    }

    /// A passing failure: the connector is down meanwhile; logged, throttled.
    pub(super) fn transient(&self, reason: &str) {
        self.0.health.down();
        tracing::debug!(connector = %self.0.name, %reason, "kafka unavailable");
        let mut throttle = lock(&self.0.throttle);
        if throttle.should_log() {
            tracing::warn!(connector = %self.0.name, failures = throttle.take_count(), %reason, "kafka unavailable; retrying");
        }
    }

    /// The brokers answered again. Said in the log once the trouble that was
    /// logged is over; the log's pace stays that of the throttle, so a connection
    /// that comes and goes does not flood it.
    pub(super) fn reachable(&self) {
        if !self.0.health.is_up() {
            let mut throttle = lock(&self.0.throttle);
            if throttle.due() {
                let failures = throttle.take_count();
                tracing::info!(connector = %self.0.name, failures, "kafka reachable again");
            }
        }
        self.0.health.up();
    }

    /// The partitions assigned now.
    pub(super) fn assigned(&self) -> MutexGuard<'_, HashSet<i32>> {
        lock(&self.0.assigned)
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // librdkafka repeats connection trouble many times a second; its errors
        // reach `error` below, so only what is not an error is logged here.
        if matches!(level, RDKafkaLogLevel::Debug) {
            tracing::trace!(connector = %self.0.name, facility = fac, "librdkafka: {log_message}");
        } else {
            tracing::debug!(connector = %self.0.name, facility = fac, "librdkafka: {log_message}");
        }
    }

    fn stats(&self, statistics: Statistics) {
        // Reachable while librdkafka holds an open connection to any broker.
        if statistics
            .brokers
            .values()
            .any(|broker| broker.state == "UP")
        {
            self.reachable();
        } else {
            self.0.health.down();
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match fatal_type(&error) {
            Some(error_type) => self.record_fatal(error_type, format!("{error}: {reason}")),
            None => self.transient(&format!("{error}: {reason}")),
        }
    }
}

impl ConsumerContext for KafkaContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                let mut assigned = self.assigned();
                for p in partitions.elements() {
                    assigned.insert(p.partition());
                }
                tracing::info!(partitions = ?sorted(&assigned), "kafka partitions assigned");
            }
            Rebalance::Revoke(partitions) => {
                let mut assigned = self.assigned();
                for p in partitions.elements() {
                    assigned.remove(&p.partition());
                }
                tracing::info!(partitions = ?sorted(&assigned), "kafka partitions revoked");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "kafka rebalance failed"),
        }
    }
}

fn sorted(set: &HashSet<i32>) -> Vec<i32> {
    let mut v: Vec<i32> = set.iter().copied().collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_missing_topics_are_fatal_connection_trouble_is_not() {
        let fatal = |code| fatal_type(&KafkaError::Global(code));
        assert_eq!(
            fatal(RDKafkaErrorCode::SaslAuthenticationFailed),
            Some(ErrorType::AuthError)
        );
        assert_eq!(
            fatal(RDKafkaErrorCode::Authentication),
            Some(ErrorType::AuthError)
        );
        assert_eq!(
            fatal(RDKafkaErrorCode::UnknownTopicOrPartition),
            Some(ErrorType::InvalidData)
        );
        assert_eq!(fatal(RDKafkaErrorCode::BrokerTransportFailure), None);
        assert_eq!(fatal(RDKafkaErrorCode::AllBrokersDown), None);
    }

    #[test]
    fn a_fatal_failure_is_kept_and_marks_the_connector_down() {
        let health = Health::new();
        health.up();
        let context = KafkaContext::new("kafka source t", health.clone());
        context.error(
            KafkaError::Global(RDKafkaErrorCode::Authentication),
            "SASL authentication error: invalid credentials",
        );
        let fatal = context.fatal().expect("recorded");
        assert_eq!(fatal.error_type, ErrorType::AuthError);
        assert!(
            fatal.reason.contains("invalid credentials"),
            "{}",
            fatal.reason
        );
        assert!(!health.is_up());
        context.error(KafkaError::Global(RDKafkaErrorCode::AllBrokersDown), "down");
        assert_eq!(
            context.fatal().map(|f| f.error_type),
            Some(ErrorType::AuthError)
        );
    }
}
