//! What a catalog or storage failure means for the flow.

use iceberg::ErrorKind;

use crate::connectors::retry::Failure;
use dataflow_api::ErrorType;

/// The HTTP status the REST client recorded in the error's context, if any.
fn http_status(text: &str) -> Option<u16> {
    let at = text.find("status: ")? + "status: ".len();
    text.get(at..at + 3)?.parse().ok()
}

/// Commit conflicts, server errors, throttling and unreachable servers or storage
/// pass; refused credentials, missing tables and bad requests do not.
pub(super) fn classify(error: &iceberg::Error) -> Failure {
    let text = error.to_string();
    match error.kind() {
        ErrorKind::CatalogCommitConflicts => Failure::Transient(text),
        ErrorKind::TableNotFound | ErrorKind::NamespaceNotFound => {
            Failure::Fatal(ErrorType::Failed, text)
        }
        ErrorKind::DataInvalid | ErrorKind::FeatureUnsupported => {
            Failure::Fatal(ErrorType::InvalidData, text)
        }
        _ if error.retryable() => Failure::Transient(text),
        _ => match http_status(&text) {
            Some(401 | 403 | 419) => Failure::Fatal(ErrorType::AuthError, text),
            Some(408 | 429) => Failure::Transient(text),
            Some(s) if s >= 500 => Failure::Transient(text),
            Some(_) => Failure::Fatal(ErrorType::Failed, text),
            // No answer at all (refused connection, timeout, storage I/O), or an
            // answer the client could not read: worth another try.
            None if std::error::Error::source(error).is_some() => Failure::Transient(text),
            None if text.contains("the commit state is unknown") => Failure::Transient(text),
            None => Failure::Fatal(ErrorType::Failed, text),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unexpected(status: &str) -> iceberg::Error {
        iceberg::Error::new(
            ErrorKind::Unexpected,
            "Received response with unexpected status code",
        )
        .with_context("status", status)
    }

    #[test]
    fn classifies_by_kind_and_status() {
        assert!(matches!(
            classify(&unexpected("401 Unauthorized")),
            Failure::Fatal(ErrorType::AuthError, _)
        ));
        assert!(matches!(
            classify(&unexpected("503 Service Unavailable")),
            Failure::Transient(_)
        ));
        assert!(matches!(
            classify(&unexpected("400 Bad Request")),
            Failure::Fatal(ErrorType::Failed, _)
        ));
        assert!(matches!(
            classify(&iceberg::Error::new(ErrorKind::CatalogCommitConflicts, "x")),
            Failure::Transient(_)
        ));
        assert!(matches!(
            classify(&iceberg::Error::new(ErrorKind::TableNotFound, "x")),
            Failure::Fatal(..)
        ));
        let io = iceberg::Error::new(ErrorKind::Unexpected, "Failed to send request")
            .with_source(std::io::Error::other("connection refused"));
        assert!(matches!(classify(&io), Failure::Transient(_)));
    }
}
