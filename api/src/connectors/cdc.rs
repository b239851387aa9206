//! PostgreSQL change data capture settings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SecretRef;

/// Default poll interval of the change stream, seconds.
pub const DEFAULT_CDC_POLL_INTERVAL_SECS: u64 = 1;
/// Default interval between two advances of an idle replication slot, seconds.
pub const DEFAULT_CDC_HEARTBEAT_SECS: u64 = 10;
/// Longest replication slot or publication name PostgreSQL accepts.
pub const MAX_CDC_NAME_LEN: usize = 63;

/// A PostgreSQL database's row changes, read over logical replication with the
/// built-in `pgoutput` plugin, as Debezium-style change events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresqlCdcSourceSpec {
    /// `postgres://user:password@host:5432/db`; the user needs the REPLICATION
    /// attribute (or to own the tables and be allowed to create a publication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    /// Connection string from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string_secret_ref: Option<SecretRef>,
    /// Tables whose changes are read, `schema.table` or `table` (schema `public`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// Replication slot (lower-case letters, digits and `_`, at most 63); default
    /// `dataflow_<namespace>_<name>`. The slot keeps the flow's position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_name: Option<String>,
    /// Publication listing the tables (same rules as `slotName`); default the
    /// slot's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publication_name: Option<String>,
    /// Read every existing row (as `op: r` events) before the change stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<bool>,
    /// The Go original's form of `snapshot`: `initial` (snapshot first) or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_mode: Option<CdcSnapshotMode>,
    /// Create the slot when missing (default true); when false a missing slot is
    /// an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_slot_if_not_exists: Option<bool>,
    /// Create the publication when missing (default true); when false a missing
    /// publication is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_publication_if_not_exists: Option<bool>,
    /// How often, in seconds, an idle slot is moved past WAL that holds no change
    /// of the listed tables, so the server can recycle it (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_seconds: Option<u64>,
    /// Seconds between reads of the change stream when it is idle (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<u64>,
}

/// Whether existing rows are read before the change stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CdcSnapshotMode {
    /// Snapshot the tables the first time the flow runs.
    Initial,
    /// Changes only.
    Never,
}

impl PostgresqlCdcSourceSpec {
    /// Whether to snapshot first: `snapshot`, else `snapshotMode`, else no.
    pub fn wants_snapshot(&self) -> bool {
        self.snapshot
            .unwrap_or(self.snapshot_mode == Some(CdcSnapshotMode::Initial))
    }
}

/// Whether `name` is usable as a slot or publication name without quoting.
pub fn is_cdc_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CDC_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The default slot name of the DataFlow `flow` (`namespace/name`): `dataflow_`
/// plus the name with every other character as `_`, cut to 63 characters.
pub fn default_slot_name(flow: &str) -> String {
    let mut name: String = format!("dataflow_{flow}")
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(MAX_CDC_NAME_LEN);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_slot_names_are_valid_names() {
        assert_eq!(
            default_slot_name("prod/Orders-CDC"),
            "dataflow_prod_orders_cdc"
        );
        let long = default_slot_name(&format!("ns/{}", "x".repeat(100)));
        assert!(is_cdc_name(&long), "{long}");
        assert!(!is_cdc_name("Bad-Name"));
        assert!(!is_cdc_name(""));
    }

    #[test]
    fn snapshot_follows_either_spelling() {
        let mut spec = PostgresqlCdcSourceSpec::default();
        assert!(!spec.wants_snapshot());
        spec.snapshot_mode = Some(CdcSnapshotMode::Initial);
        assert!(spec.wants_snapshot());
        spec.snapshot = Some(false);
        assert!(!spec.wants_snapshot());
    }
}
