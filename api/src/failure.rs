//! How failures are classified: the error types and pipeline stages carried by
//! error records and metric labels.

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
    /// A transform component trapped (panic, bad protocol).
    TransformTrap,
    /// A transform component ran past its time limit.
    TransformTimeout,
    /// A transform component hit its memory limit.
    TransformOom,
    /// A user's Python or JavaScript code raised an exception (or returned
    /// something that is not JSON).
    ScriptError,
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
            ErrorType::TransformTrap => "transform_trap",
            ErrorType::TransformTimeout => "transform_timeout",
            ErrorType::TransformOom => "transform_oom",
            ErrorType::ScriptError => "script_error",
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the pipeline a message failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The source could not decode it.
    Read,
    /// A transformation failed it.
    Transform,
    /// A sink refused it.
    SinkWrite,
}

impl Stage {
    /// The name used in error records and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Transform => "transform",
            Stage::SinkWrite => "sink_write",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
