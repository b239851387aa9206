//! Checks of `spec.execution`.

use super::Validator;
use crate::{
    DataFlowSpec, ExecutionMode, ExecutionSpec, MAX_BACKOFF_LIMIT, MAX_TRIGGERS, SourceSpec,
};

impl Validator {
    pub(super) fn execution(&mut self, path: &str, execution: &ExecutionSpec, spec: &DataFlowSpec) {
        if let Some(schedule) = &execution.schedule {
            if execution.mode == Some(ExecutionMode::Stream) {
                self.fail(
                    &format!("{path}.schedule"),
                    "a schedule starts runs that end; it needs mode job (or no mode)",
                );
            }
            if let Err(e) = crate::check_schedule(schedule) {
                self.fail(&format!("{path}.schedule"), e);
            }
        }
        if let Some(limit) = execution.backoff_limit
            && !(0..=MAX_BACKOFF_LIMIT).contains(&limit)
        {
            self.fail(
                &format!("{path}.backoffLimit"),
                format!("must be 0 to {MAX_BACKOFF_LIMIT}"),
            );
        }
        if execution.concurrency_policy.is_some() && execution.schedule.is_none() {
            self.fail(
                &format!("{path}.concurrencyPolicy"),
                "applies to scheduled runs; set schedule too",
            );
        }
        self.triggers(path, execution);
        if !execution.runs_to_completion() {
            return;
        }
        if spec.replicas.is_some_and(|r| r > 1) {
            self.fail(
                "spec.replicas",
                "a job runs one processor; remove replicas or use mode stream",
            );
        }
        let endless = match &spec.source {
            SourceSpec::PostgresqlCdc(_) => Some("postgresql-cdc"),
            SourceSpec::Nessie(_) => Some("nessie"),
            SourceSpec::Stdin => Some("stdin"),
            SourceSpec::Generator(g) if g.count.is_none() => Some("generator without count"),
            _ => None,
        };
        if let Some(kind) = endless {
            self.fail(
                &format!("{path}.mode"),
                format!("a {kind} source has no end to run to; use mode stream"),
            );
        }
    }

    fn triggers(&mut self, path: &str, execution: &ExecutionSpec) {
        if execution.triggers.is_empty() {
            return;
        }
        if !execution.runs_to_completion() {
            self.fail(
                &format!("{path}.triggers"),
                "run after the flow ends; they need mode job or a schedule",
            );
        }
        if execution.triggers.len() > MAX_TRIGGERS {
            self.fail(
                &format!("{path}.triggers"),
                format!("at most {MAX_TRIGGERS} are accepted"),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, trigger) in execution.triggers.iter().enumerate() {
            let at = format!("{path}.triggers[{i}]");
            if !is_dns_label(&trigger.name) {
                self.fail(
                    &format!("{at}.name"),
                    "must be a DNS label: lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit",
                );
            } else if trigger.name == PROCESSOR_CONTAINER || !seen.insert(trigger.name.as_str()) {
                self.fail(
                    &format!("{at}.name"),
                    format!(
                        "{:?} is taken; names are unique and not {PROCESSOR_CONTAINER:?}",
                        trigger.name
                    ),
                );
            }
            if trigger.image.trim().is_empty() {
                self.fail(&format!("{at}.image"), "required");
            }
        }
    }
}

/// Name of the flow's own container in a run's pod.
const PROCESSOR_CONTAINER: &str = "processor";

/// A Kubernetes DNS label (RFC 1123), as container names are.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}
