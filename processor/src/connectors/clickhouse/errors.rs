//! What a ClickHouse failure means for the flow.

use clickhouse::error::Error;

use crate::connectors::retry::Failure;
use dataflow_api::ErrorType;

/// Classifies by the server's exception code (`Code: 60. DB::Exception: ...`).
pub(super) fn classify(error: &Error) -> Failure {
    match error {
        Error::Network(_) | Error::TimedOut => Failure::Transient(error.to_string()),
        Error::BadResponse(text) => classify_code(exception_code(text), text.trim()),
        other => Failure::Fatal(ErrorType::Failed, other.to_string()),
    }
}

fn classify_code(code: Option<u32>, text: &str) -> Failure {
    let text = text.to_owned();
    match code {
        // Bad values, unknown or missing fields, type mismatches.
        Some(6 | 8 | 16 | 26 | 27 | 38 | 41 | 53 | 69 | 70 | 72 | 117 | 349) => {
            Failure::Rows(ErrorType::InvalidData, text)
        }
        // Overloaded, restarting, timeouts, too many parts, read-only replica.
        Some(159 | 202 | 209 | 210 | 241 | 242 | 252 | 319 | 425 | 999) => Failure::Transient(text),
        // Unknown user, wrong password, access denied.
        Some(192 | 193 | 194 | 497 | 516) => Failure::Fatal(ErrorType::AuthError, text),
        // No code: a proxy or the HTTP layer answered; 5xx-style trouble is worth a retry.
        None if text.contains("503") || text.contains("502") || text.contains("504") => {
            Failure::Transient(text)
        }
        _ => Failure::Fatal(ErrorType::Failed, text),
    }
}

/// The number after `Code: ` in a ClickHouse exception text.
fn exception_code(text: &str) -> Option<u32> {
    let at = text.find("Code: ")? + "Code: ".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_old_and_new_exception_texts() {
        let old = "Code: 26, e.displayText() = DB::Exception: Cannot parse JSON string, e.what() = DB::Exception";
        assert!(matches!(
            classify(&Error::BadResponse(old.into())),
            Failure::Rows(ErrorType::InvalidData, _)
        ));
        let new = "Code: 60. DB::Exception: Table default.nope does not exist. (UNKNOWN_TABLE)";
        assert!(matches!(
            classify(&Error::BadResponse(new.into())),
            Failure::Fatal(ErrorType::Failed, _)
        ));
        let auth = "Code: 516. DB::Exception: default: Authentication failed";
        assert!(matches!(
            classify(&Error::BadResponse(auth.into())),
            Failure::Fatal(ErrorType::AuthError, _)
        ));
        let busy = "Code: 252. DB::Exception: Too many parts (300)";
        assert!(matches!(
            classify(&Error::BadResponse(busy.into())),
            Failure::Transient(_)
        ));
        assert!(matches!(classify(&Error::TimedOut), Failure::Transient(_)));
    }
}
