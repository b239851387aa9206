//! What a PostgreSQL failure means for the flow.

use crate::connectors::retry::Failure;
use dataflow_api::ErrorType;

/// Classifies by SQLSTATE class.
pub(super) fn classify(error: &sqlx::Error) -> Failure {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let text = format!("{} (SQLSTATE {code})", db.message());
            match code.get(..2).unwrap_or_default() {
                "23" | "21" => Failure::Rows(ErrorType::ConstraintViolation, text),
                // Bad values, and limits a value hits (too deep, too complex).
                "22" | "54" => Failure::Rows(ErrorType::InvalidData, text),
                "08" | "53" | "57" | "40" => Failure::Transient(text),
                "28" => Failure::Fatal(ErrorType::AuthError, text),
                _ => Failure::Fatal(ErrorType::Failed, text),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Failure::Transient(error.to_string()),
        other => Failure::Fatal(ErrorType::Failed, other.to_string()),
    }
}
