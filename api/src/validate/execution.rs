//! Checks of `spec.execution`.

use super::Validator;
use crate::{DataFlowSpec, ExecutionMode, ExecutionSpec, MAX_BACKOFF_LIMIT, SourceSpec};

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
}
