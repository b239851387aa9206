//! The classified error types carried by error records and metrics.

use std::fmt;

/// Why a message (or a connector) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// The server could not be reached or the connection broke.
    ConnectionError,
    /// An operation took too long.
    Timeout,
    /// The message is not what the destination or a transform accepts.
    InvalidData,
    /// Credentials were refused.
    AuthError,
    /// The destination refused the row (unique, not-null, check, foreign key).
    ConstraintViolation,
    /// A failure that a retry may fix.
    Transient,
    /// Anything else the destination reported (`unknown` in records and metrics).
    Failed,
}

impl ErrorType {
    /// The name used in error records and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::ConnectionError => "connection_error",
            ErrorType::Timeout => "timeout",
            ErrorType::InvalidData => "invalid_data",
            ErrorType::AuthError => "auth_error",
            ErrorType::ConstraintViolation => "constraint_violation",
            ErrorType::Transient => "transient",
            ErrorType::Failed => "unknown",
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
