//! What a Trino failure means for the flow.

use super::client::TrinoError;
use crate::connectors::retry::Failure;
use dataflow_api::ErrorType;

/// Error names Trino uses for conditions that pass: a node restarting, a worker
/// lost mid-query, the cluster out of memory for now.
const TRANSIENT_NAMES: &[&str] = &[
    "SERVER_STARTING_UP",
    "SERVER_SHUTTING_DOWN",
    "NO_NODES_AVAILABLE",
    "REMOTE_TASK_ERROR",
    "REMOTE_TASK_MISMATCH",
    "REMOTE_HOST_GONE",
    "REMOTE_BUFFER_CLOSE_FAILED",
    "PAGE_TRANSPORT_ERROR",
    "PAGE_TRANSPORT_TIMEOUT",
    "TOO_MANY_REQUESTS_FAILED",
    "ABANDONED_QUERY",
    "CLUSTER_OUT_OF_MEMORY",
    "QUERY_QUEUE_FULL",
];

/// Error names that blame the data of the statement.
const DATA_NAMES: &[&str] = &[
    "INVALID_CAST_ARGUMENT",
    "INVALID_FUNCTION_ARGUMENT",
    "NUMERIC_VALUE_OUT_OF_RANGE",
    "CONSTRAINT_VIOLATION",
    "INVALID_LITERAL",
];

/// Classifies by error type and name.
pub(super) fn classify(error: &TrinoError) -> Failure {
    let text = error.to_string();
    match error {
        TrinoError::Unreachable(_) | TrinoError::TokenEndpoint(_) => Failure::Transient(text),
        TrinoError::Auth(_) => Failure::Fatal(ErrorType::AuthError, text),
        TrinoError::Protocol(_) => Failure::Fatal(ErrorType::Failed, text),
        TrinoError::Query(e) if e.error_name == "PERMISSION_DENIED" => {
            Failure::Fatal(ErrorType::AuthError, text)
        }
        TrinoError::Query(e)
            if e.error_type == "INSUFFICIENT_RESOURCES"
                || TRANSIENT_NAMES.contains(&e.error_name.as_str()) =>
        {
            Failure::Transient(text)
        }
        TrinoError::Query(e) if DATA_NAMES.contains(&e.error_name.as_str()) => {
            Failure::Rows(ErrorType::InvalidData, text)
        }
        TrinoError::Query(_) => Failure::Fatal(ErrorType::Failed, text),
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::QueryError;
    use super::*;

    fn query(error_type: &str, error_name: &str) -> TrinoError {
        TrinoError::Query(QueryError {
            message: "m".into(),
            error_type: error_type.into(),
            error_name: error_name.into(),
        })
    }

    #[test]
    fn transient_errors_are_retried_and_others_are_not() {
        assert!(matches!(
            classify(&query("INTERNAL_ERROR", "SERVER_STARTING_UP")),
            Failure::Transient(_)
        ));
        assert!(matches!(
            classify(&query(
                "INSUFFICIENT_RESOURCES",
                "EXCEEDED_GLOBAL_MEMORY_LIMIT"
            )),
            Failure::Transient(_)
        ));
        assert!(matches!(
            classify(&query("USER_ERROR", "TABLE_NOT_FOUND")),
            Failure::Fatal(ErrorType::Failed, _)
        ));
        assert!(matches!(
            classify(&query("USER_ERROR", "PERMISSION_DENIED")),
            Failure::Fatal(ErrorType::AuthError, _)
        ));
        assert!(matches!(
            classify(&query("USER_ERROR", "INVALID_CAST_ARGUMENT")),
            Failure::Rows(ErrorType::InvalidData, _)
        ));
        assert!(matches!(
            classify(&TrinoError::Unreachable("x".into())),
            Failure::Transient(_)
        ));
    }
}
