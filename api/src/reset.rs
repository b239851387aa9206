//! Moving a flow's read position once: what the DataFlow annotation
//! [`RESET_ANNOTATION`] (in a cluster) or `dataflow-processor run
//! --reset-position` (locally) asks for.
//!
//! The request is text, `<position>[#<tag>]`:
//!
//! | position | sources | effect |
//! |---|---|---|
//! | `earliest` | kafka | every partition from its oldest record |
//! | `latest` | kafka | every partition from its end (only new records) |
//! | `timestamp:<RFC 3339 or epoch ms>` | kafka | every partition from its first record at or after the time |
//! | `offsets:<partition>=<offset>,...` | kafka | the listed partitions from these offsets |
//! | `beginning` | postgresql, clickhouse | the first row again |
//! | `cursor:<value>` | postgresql, clickhouse | rows after this cursor value |
//! | `snapshot` | postgresql-cdc | a new snapshot of the tables, then the stream |
//!
//! The tag only tells two requests apart: the operator applies a request once and
//! ignores the same text afterwards, so asking for `earliest` a second time is
//! written `earliest#2`.

use std::collections::BTreeMap;
use std::fmt;

use crate::{DataFlowSpec, SourceType};

/// The DataFlow annotation that asks the operator for a reset.
pub const RESET_ANNOTATION: &str = "dataflow.dataflow.io/reset-position";

/// Longest request text (which also bounds how many partitions `offsets:` lists).
pub const MAX_RESET_BYTES: usize = 4096;

/// Where the source is to read from next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PositionReset {
    /// Kafka: each partition's oldest retained record.
    Earliest,
    /// Kafka: each partition's end at the time of the reset.
    Latest,
    /// Kafka: each partition's first record at or after this time (epoch ms).
    Timestamp(i64),
    /// Kafka: these partitions from these offsets; others keep their position.
    Offsets(BTreeMap<i32, i64>),
    /// Polling sources: the first row.
    Beginning,
    /// Polling sources: the rows after this cursor value.
    Cursor(String),
    /// PostgreSQL CDC: read the tables again as a snapshot, then stream.
    Snapshot,
}

/// A parsed request: its text (what "applied once" compares) and its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRequest {
    /// The request as written, tag included.
    pub text: String,
    /// What it asks for.
    pub position: PositionReset,
}

/// A request that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reset position {text:?}: {reason}")]
pub struct ResetError {
    /// The request (cut to a readable length).
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ResetRequest {
    /// Reads `<position>[#<tag>]`.
    pub fn parse(text: &str) -> Result<Self, ResetError> {
        let fail = |reason: String| ResetError {
            text: shown(text),
            reason,
        };
        if text.len() > MAX_RESET_BYTES {
            return Err(fail(format!(
                "{} bytes, more than the {MAX_RESET_BYTES} allowed",
                text.len()
            )));
        }
        let trimmed = text.trim();
        let position = trimmed.split_once('#').map_or(trimmed, |(p, _)| p).trim();
        let position = parse_position(position).map_err(fail)?;
        Ok(Self {
            text: trimmed.to_owned(),
            position,
        })
    }

    /// Reads `text` and checks that the source of `spec` can move there.
    pub fn for_spec(text: &str, spec: &DataFlowSpec) -> Result<Self, ResetError> {
        let request = Self::parse(text)?;
        request.check_fits(spec)?;
        Ok(request)
    }

    /// Checks that the flow's source can move to this position.
    pub fn check_fits(&self, spec: &DataFlowSpec) -> Result<(), ResetError> {
        let source = spec.source.kind();
        let fits = match source {
            SourceType::Kafka => matches!(
                self.position,
                PositionReset::Earliest
                    | PositionReset::Latest
                    | PositionReset::Timestamp(_)
                    | PositionReset::Offsets(_)
            ),
            SourceType::Postgresql | SourceType::Clickhouse => matches!(
                self.position,
                PositionReset::Beginning | PositionReset::Cursor(_)
            ),
            SourceType::PostgresqlCdc => self.position == PositionReset::Snapshot,
            SourceType::Trino
            | SourceType::Nessie
            | SourceType::File
            | SourceType::Stdin
            | SourceType::Generator => {
                return Err(self.refused(format!(
                    "a {source} source keeps no position between runs; every start reads from its beginning"
                )));
            }
        };
        if !fits {
            let allowed = match source {
                SourceType::Kafka => "earliest, latest, timestamp:<time> or offsets:<p>=<o>,...",
                SourceType::PostgresqlCdc => "snapshot",
                _ => "beginning or cursor:<value>",
            };
            return Err(self.refused(format!("a {source} source moves to {allowed}")));
        }
        let polling = matches!(source, SourceType::Postgresql | SourceType::Clickhouse);
        if polling && !spec.persists_positions() {
            return Err(self.refused(
                "checkpointPersistence is false: the source keeps its position in memory and every start reads from the beginning".into(),
            ));
        }
        Ok(())
    }

    fn refused(&self, reason: String) -> ResetError {
        ResetError {
            text: shown(&self.text),
            reason,
        }
    }
}

impl fmt::Display for PositionReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Earliest => f.write_str("earliest"),
            Self::Latest => f.write_str("latest"),
            Self::Timestamp(ms) => write!(f, "timestamp:{ms}"),
            Self::Offsets(offsets) => {
                f.write_str("offsets:")?;
                for (i, (partition, offset)) in offsets.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{partition}={offset}")?;
                }
                Ok(())
            }
            Self::Beginning => f.write_str("beginning"),
            Self::Cursor(value) => write!(f, "cursor:{value}"),
            Self::Snapshot => f.write_str("snapshot"),
        }
    }
}

/// The reset the DataFlow's annotations ask for, checked against `spec`'s
/// source; `None` without the annotation.
pub fn requested_reset(
    annotations: Option<&BTreeMap<String, String>>,
    spec: &DataFlowSpec,
) -> Option<Result<ResetRequest, ResetError>> {
    let text = annotations?.get(RESET_ANNOTATION)?;
    Some(ResetRequest::for_spec(text, spec))
}

fn parse_position(text: &str) -> Result<PositionReset, String> {
    let (word, argument) = match text.split_once(':') {
        Some((word, argument)) => (word.trim(), Some(argument.trim())),
        None => (text, None),
    };
    match (word.to_ascii_lowercase().as_str(), argument) {
        ("earliest", None) => Ok(PositionReset::Earliest),
        ("latest", None) => Ok(PositionReset::Latest),
        ("beginning", None) => Ok(PositionReset::Beginning),
        ("snapshot", None) => Ok(PositionReset::Snapshot),
        ("timestamp", Some(time)) => parse_time(time).map(PositionReset::Timestamp),
        ("offsets", Some(list)) => parse_offsets(list).map(PositionReset::Offsets),
        ("cursor", Some(value)) if !value.is_empty() => Ok(PositionReset::Cursor(value.to_owned())),
        ("cursor", _) => Err("cursor: needs a value (cursor:<value>)".into()),
        ("earliest" | "latest" | "beginning" | "snapshot", Some(_)) => {
            Err(format!("{word} takes no argument"))
        }
        ("timestamp" | "offsets", None) => Err(format!("{word} needs an argument ({word}:...)")),
        _ => Err(
            "use earliest, latest, timestamp:<RFC 3339 or epoch ms>, offsets:<partition>=<offset>,..., beginning, cursor:<value> or snapshot"
                .into(),
        ),
    }
}

/// RFC 3339 or milliseconds since the epoch, not before 1970.
fn parse_time(text: &str) -> Result<i64, String> {
    let ms = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<i64>()
            .map_err(|_| format!("{text:?} is too large for a time in milliseconds"))?
    } else {
        chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| {
                format!("{text:?} is neither RFC 3339 (2026-12-01T00:00:00Z) nor epoch ms: {e}")
            })?
            .timestamp_millis()
    };
    if ms < 0 {
        return Err(format!("{text:?} is before 1970"));
    }
    Ok(ms)
}

/// `0=120,1=98`: partitions and the offsets they continue from.
fn parse_offsets(list: &str) -> Result<BTreeMap<i32, i64>, String> {
    let mut offsets = BTreeMap::new();
    for item in list.split(',').map(str::trim) {
        let Some((partition, offset)) = item.split_once('=') else {
            return Err(format!(
                "{item:?} is not <partition>=<offset> (for example 0=120)"
            ));
        };
        let partition: i32 = partition
            .trim()
            .parse()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(|| format!("{partition:?} is not a partition number"))?;
        let offset: i64 = offset
            .trim()
            .parse()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| format!("{offset:?} is not an offset (0 or more)"))?;
        if offsets.insert(partition, offset).is_some() {
            return Err(format!("partition {partition} is listed twice"));
        }
    }
    Ok(offsets)
}

/// The request as shown in errors: at most 120 characters.
fn shown(text: &str) -> String {
    const SHOWN: usize = 120;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
