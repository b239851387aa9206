//! `spec.observability`: whether the flow's messages may be shown (the tap, the
//! recent failures' payloads, the playground), and which fields are masked
//! wherever they are shown.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most fields `maskFields` may list.
pub const MAX_MASK_FIELDS: usize = 64;

/// What the flow shows of its messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObservabilitySpec {
    /// Let the tap, the recent failures and the playground show messages
    /// (default: false in a cluster, true for a local `run`). In a cluster each
    /// request also needs the flow's tap token, from the Secret
    /// `dataflow-<name>-tap`: whoever may read that Secret may watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap: Option<bool>,
    /// Field paths (dotted or `$` JSONPath) whose values are shown as `***`
    /// wherever a message is shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mask_fields: Vec<String>,
}

impl ObservabilitySpec {
    /// Whether messages may be shown; `local` for a run outside a cluster.
    pub fn shows_messages(&self, local: bool) -> bool {
        self.tap.unwrap_or(local)
    }
}
