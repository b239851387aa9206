//! Retrying a destination call: transient failures are retried with backoff, row
//! failures are handed back so the caller can isolate the offending rows, and
//! anything else stops the flow.

use crate::connectors::{Backoff, ConnectorError};
use crate::error_type::ErrorType;

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

/// Runs `run` until it succeeds, fails for a row reason (`Ok(Err(..))`), or fails
/// fatally (`Err`). Transient failures wait with [`Backoff`] and try again; the
/// first few and then every twentieth are logged as `what failed; retrying`.
pub async fn retrying<T, E, F, Fut>(
    connector: &str,
    what: &str,
    classify: impl Fn(&E) -> Failure,
    mut run: F,
) -> Result<Result<T, (ErrorType, String)>, ConnectorError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::default();
    loop {
        match run().await {
            Ok(value) => return Ok(Ok(value)),
            Err(e) => match classify(&e) {
                Failure::Transient(reason) => {
                    if backoff.attempts() < 3 || backoff.attempts().is_multiple_of(20) {
                        tracing::warn!(connector, attempts = backoff.attempts() + 1, %reason, "{what} failed; retrying");
                    }
                    backoff.wait().await;
                }
                Failure::Rows(error_type, reason) => return Ok(Err((error_type, reason))),
                Failure::Fatal(error_type, reason) => {
                    return Err(ConnectorError::Failed {
                        connector: connector.to_owned(),
                        error_type,
                        reason: format!("{what}: {reason}"),
                    });
                }
            },
        }
    }
}
