//! How a whole component call can fail.

use dataflow_api::ErrorType;

/// Why a whole call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The component trapped (panic, unreachable, bad protocol).
    Trap,
    /// The call ran past its time limit.
    Timeout,
    /// The component tried to grow its memory past the limit.
    OutOfMemory,
}

impl FailureKind {
    /// The error type recorded in the error sink and metrics.
    pub fn error_type(self) -> ErrorType {
        match self {
            FailureKind::Trap => ErrorType::TransformTrap,
            FailureKind::Timeout => ErrorType::TransformTimeout,
            FailureKind::OutOfMemory => ErrorType::TransformOom,
        }
    }
}

/// A failed call: the instance is discarded and rebuilt for the next call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CallFailure {
    /// What happened.
    pub kind: FailureKind,
    /// Details (trap message, captured panic output).
    pub message: String,
}
