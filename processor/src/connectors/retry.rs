//! The one retry policy every connector uses: a classifier decides what a failure
//! means; transient failures wait with exponential backoff and jitter and try
//! again, marking the connector down meanwhile; row failures are handed back so the
//! caller can isolate the offending rows; anything else stops the flow. Retries
//! are logged at their first failure and then at most every [`LOG_EVERY`].

use std::time::{Duration, Instant};

use dataflow_api::ErrorType;

use crate::connectors::{ConnectorError, Health};

/// Shortest time between two logged retries of the same operation.
pub const LOG_EVERY: Duration = Duration::from_secs(30);

/// How to react to a failed call, as a connector's classifier decides.
#[derive(Debug)]
pub enum Failure {
    /// Worth retrying with backoff (connection lost, server restarting, overloaded).
    Transient(String),
    /// The data is at fault: isolate the offending rows.
    Rows(ErrorType, String),
    /// Retrying cannot help (missing table, permissions, bad SQL).
    Fatal(ErrorType, String),
}

impl Failure {
    /// The classified type (a transient failure is a connection error).
    pub fn error_type(&self) -> ErrorType {
        match self {
            Failure::Transient(_) => ErrorType::ConnectionError,
            Failure::Rows(error_type, _) | Failure::Fatal(error_type, _) => *error_type,
        }
    }
}

/// Delays that double from `initial` up to `max`, each drawn between half and all
/// of its nominal value so that many clients do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    attempts: u32,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
            attempts: 0,
        }
    }

    /// Failed attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The next delay, with jitter.
    fn next_delay(&mut self) -> Duration {
        self.attempts += 1;
        let nominal = self.next;
        self.next = (self.next * 2).min(self.max);
        nominal.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// Waits before the next attempt.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.attempts = 0;
    }
}

impl Default for Backoff {
    /// 100 ms doubling to 5 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

/// Logs a repeating failure at its first occurrence, then at most every
/// [`LOG_EVERY`], with the count of failures since.
#[derive(Debug, Default)]
pub struct LogThrottle {
    last: Option<Instant>,
    unlogged: u64,
}

impl LogThrottle {
    /// Counts one failure; true when it should be logged now.
    pub fn should_log(&mut self) -> bool {
        self.unlogged += 1;
        self.due()
    }

    /// True (and the period restarts) when a line may be logged now.
    pub fn due(&mut self) -> bool {
        let due = self.last.is_none_or(|at| at.elapsed() >= LOG_EVERY);
        if due {
            self.last = Some(Instant::now());
        }
        due
    }

    /// Failures counted since the last logged one (including it), then reset.
    pub fn take_count(&mut self) -> u64 {
        std::mem::take(&mut self.unlogged)
    }

    /// The failure is over.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// A connector's retrying of calls to its server.
#[derive(Debug, Clone)]
pub struct Retry {
    connector: String,
    health: Health,
}

impl Retry {
    /// Retries for `connector` (its name in logs and errors), reporting its
    /// reachability to `health`.
    pub fn new(connector: impl Into<String>, health: Health) -> Self {
        Self {
            connector: connector.into(),
            health,
        }
    }

    /// The connector's name.
    pub fn connector(&self) -> &str {
        &self.connector
    }

    /// The connector's reachability handle.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Runs `run` until it succeeds, fails for a row reason (`Ok(Err(..))`), or fails
    /// fatally (`Err`). Transient failures mark the connector down, wait with
    /// [`Backoff`] and try again.
    pub async fn run<T, E, F, Fut>(
        &self,
        what: &str,
        classify: impl Fn(&E) -> Failure,
        mut run: F,
    ) -> Result<Result<T, (ErrorType, String)>, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempts = self.attempts(what);
        loop {
            match run().await {
                Ok(value) => {
                    attempts.succeeded();
                    return Ok(Ok(value));
                }
                Err(e) => {
                    if let Some(rows) = attempts.failed(classify(&e)).await? {
                        return Ok(Err(rows));
                    }
                }
            }
        }
    }

    /// The attempts at `what`, for a loop that keeps state between them (use
    /// [`Retry::run`] when it does not).
    pub fn attempts<'a>(&'a self, what: &'a str) -> Attempts<'a> {
        Attempts {
            retry: self,
            what,
            backoff: Backoff::default(),
            throttle: LogThrottle::default(),
        }
    }
}

/// The attempts at one operation under the retry policy.
pub struct Attempts<'a> {
    retry: &'a Retry,
    what: &'a str,
    backoff: Backoff,
    throttle: LogThrottle,
}

impl Attempts<'_> {
    /// A failure worth retrying: marks the connector down, logs (throttled) and
    /// waits before the next attempt.
    pub async fn transient(&mut self, reason: &str) {
        self.retry.health.down();
        if self.throttle.should_log() {
            tracing::warn!(
                connector = %self.retry.connector,
                failures = self.throttle.take_count(),
                attempts = self.backoff.attempts() + 1,
                %reason,
                "{} failed; retrying",
                self.what
            );
        }
        self.backoff.wait().await;
    }

    /// The operation succeeded: the connector is up.
    pub fn succeeded(&mut self) {
        self.retry.health.up();
        if self.throttle.last.is_some() {
            tracing::info!(connector = %self.retry.connector, "{} succeeded again", self.what);
        }
        self.throttle.reset();
    }

    /// The operation failed as `failure` says. A transient failure marks the
    /// connector down and waits before the next attempt (`Ok(None)`); a row failure
    /// is handed back (`Ok(Some(..))`); anything else stops the flow (`Err`).
    pub async fn failed(
        &mut self,
        failure: Failure,
    ) -> Result<Option<(ErrorType, String)>, ConnectorError> {
        match failure {
            Failure::Transient(reason) => {
                self.transient(&reason).await;
                Ok(None)
            }
            Failure::Rows(error_type, reason) => {
                self.succeeded();
                Ok(Some((error_type, reason)))
            }
            Failure::Fatal(error_type, reason) => {
                if matches!(
                    error_type,
                    ErrorType::ConnectionError | ErrorType::AuthError
                ) {
                    self.retry.health.down();
                }
                Err(ConnectorError::Failed {
                    connector: self.retry.connector.clone(),
                    error_type,
                    reason: format!("{}: {reason}", self.what),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn delays_double_up_to_the_cap_with_jitter_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let start = tokio::time::Instant::now();
        for _ in 0..4 {
            backoff.wait().await;
        }
        // Nominal 100 + 200 + 350 + 350 = 1000 ms; each delay is 50-100% of it.
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(500) && waited <= Duration::from_millis(1000),
            "{waited:?}"
        );
        assert_eq!(backoff.attempts(), 4);
        backoff.reset();
        let start = tokio::time::Instant::now();
        backoff.wait().await;
        assert!(start.elapsed() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let delays: Vec<Duration> = (0..20)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).next_delay())
            .collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_millis(500) && *d <= Duration::from_secs(1))
        );
        assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_mark_the_connector_down_until_it_recovers() {
        let health = Health::new();
        let retry = Retry::new("test sink", health.clone());
        let mut calls = 0;
        let seen_down = std::cell::Cell::new(false);
        let result = retry
            .run(
                "write",
                |e: &&str| Failure::Transient((*e).to_owned()),
                || {
                    calls += 1;
                    if calls > 1 {
                        seen_down.set(!health.is_up());
                    }
                    let outcome = if calls < 3 { Err("refused") } else { Ok(calls) };
                    async move { outcome }
                },
            )
            .await;
        assert!(matches!(result, Ok(Ok(3))));
        assert!(seen_down.get(), "down while retrying");
        assert!(health.is_up(), "up after the success");
    }

    #[tokio::test]
    async fn fatal_failures_stop_with_the_classified_type() {
        let retry = Retry::new("test source", Health::new());
        let result: Result<Result<(), _>, _> = retry
            .run(
                "poll",
                |_: &()| Failure::Fatal(ErrorType::AuthError, "password refused".into()),
                || async { Err(()) },
            )
            .await;
        let err = result.expect_err("fatal");
        assert_eq!(err.error_type(), ErrorType::AuthError);
        assert_eq!(err.to_string(), "test source: poll: password refused");
    }

    #[test]
    fn repeated_failures_are_logged_once_per_period() {
        let mut throttle = LogThrottle::default();
        assert!(throttle.should_log());
        assert_eq!(throttle.take_count(), 1);
        assert!(!throttle.should_log());
        assert!(!throttle.should_log());
        assert_eq!(throttle.take_count(), 2);
    }
}
