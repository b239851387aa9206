use std::fmt;

/// A configuration problem found when a transform is created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    key: Option<String>,
    reason: String,
}

impl ConfigError {
    /// A config error about `key` (a path inside the config, e.g. `routes[1].condition`).
    pub fn field(key: &str, reason: impl fmt::Display) -> Self {
        Self {
            key: Some(key.to_owned()),
            reason: reason.to_string(),
        }
    }

    /// A config error not tied to one key.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            key: None,
            reason: reason.into(),
        }
    }

    /// The offending key, when known.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The reason, without the key.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// Characters of a message's value quoted in an error at most.
const QUOTED_CHARS: usize = 64;

/// `text` in quotes for an error record, cut to 64 characters (with `...`): a value
/// from a message is shown, but a huge one cannot blow up the error record.
pub fn quoted_excerpt(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((at, _)) => format!("{:?}...", &text[..at]),
        None => format!("{text:?}"),
    }
}

/// The class of a per-message failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The message is not JSON, or not of a shape the transform can handle.
    InvalidData,
    /// Any other failure.
    Failed,
}

/// Why one message could not be transformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransformError {
    /// The error class.
    pub kind: ErrorKind,
    /// A readable reason.
    pub message: String,
    /// The failing step inside a multi-step component; 0 otherwise.
    pub step: u32,
}

impl TransformError {
    /// An `invalid-data` error.
    pub fn invalid_data(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidData,
            message: message.into(),
            step: 0,
        }
    }

    /// A generic failure.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Failed,
            message: message.into(),
            step: 0,
        }
    }

    /// The same error, attributed to step `step` of a multi-step component.
    pub fn at_step(mut self, step: usize) -> Self {
        self.step = u32::try_from(step).unwrap_or(u32::MAX);
        self
    }
}
