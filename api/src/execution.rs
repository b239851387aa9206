//! How a flow runs: as a stream that never ends, or as a job that reads its
//! source to the end once (optionally on a schedule).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `spec.execution`: whether the flow streams forever or runs to completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecutionSpec {
    /// `stream` (default; a Deployment that runs until deleted) or `job` (a
    /// Kubernetes Job that reads the source up to what it holds at start, writes
    /// it, and exits). A `schedule` implies `job`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ExecutionMode>,
    /// Cron schedule (five fields, or `@hourly`, `@daily`, ...) of a CronJob that
    /// starts the job; runs never overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Retries of a failed job run before it is marked failed (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    /// With a schedule, what a run due while the previous one still runs does:
    /// `Forbid` (default: it is skipped), `Replace` (the previous run is stopped)
    /// or `Allow` (both run; they read the same positions, so only for sources
    /// that need none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,
    /// Containers run one after another once the flow has written everything
    /// and exited 0, in the same pod (the Go original's DataFlowCron triggers),
    /// e.g. to start the job that reads what the flow wrote. A failing trigger
    /// fails the run, which is retried as a whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerSpec>,
}

/// What a scheduled run does when the previous run has not ended (a CronJob's
/// `concurrencyPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Skip the new run.
    Forbid,
    /// Stop the running one and start the new one.
    Replace,
    /// Run both.
    Allow,
}

impl ConcurrencyPolicy {
    /// The CronJob field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConcurrencyPolicy::Forbid => "Forbid",
            ConcurrencyPolicy::Replace => "Replace",
            ConcurrencyPolicy::Allow => "Allow",
        }
    }
}

/// A container run after the flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerSpec {
    /// Container name (a DNS label, unique among the triggers).
    pub name: String,
    /// Container image.
    pub image: String,
    /// Entrypoint (the image's when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<k8s_openapi::api::core::v1::EnvVar>,
}

/// Most triggers one flow may have.
pub const MAX_TRIGGERS: usize = 16;

/// The two ways a flow runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExecutionMode {
    /// Run until deleted.
    #[default]
    Stream,
    /// Run until the source is exhausted, then exit.
    Job,
}

/// Default `backoffLimit` of a job.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 2;

/// Largest `backoffLimit`.
pub const MAX_BACKOFF_LIMIT: i32 = 100;

/// Longest schedule text accepted.
const MAX_SCHEDULE_LEN: usize = 128;

impl ExecutionSpec {
    /// Whether the flow runs to completion.
    pub fn runs_to_completion(&self) -> bool {
        self.mode == Some(ExecutionMode::Job) || self.schedule.is_some()
    }
}

/// Checks a cron schedule as Kubernetes' CronJob reads it: five fields (minute,
/// hour, day of month, month, day of week) of numbers, ranges, lists, steps and
/// `*`/`?`, month and day names, or one of the `@` macros.
pub fn check_schedule(schedule: &str) -> Result<(), String> {
    if schedule.len() > MAX_SCHEDULE_LEN {
        return Err(format!("longer than {MAX_SCHEDULE_LEN} characters"));
    }
    let schedule = schedule.trim();
    if schedule.starts_with('@') {
        return match schedule {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(()),
            other => Err(format!(
                "unknown macro {other:?}; use @yearly, @monthly, @weekly, @daily or @hourly"
            )),
        };
    }
    if schedule.starts_with("TZ=") || schedule.starts_with("CRON_TZ=") {
        return Err(
            "a time zone in the schedule is not supported; schedules run in the cluster's zone"
                .into(),
        );
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "has {} fields; a schedule has five: minute hour day-of-month month day-of-week",
            fields.len()
        ));
    }
    const FIELDS: [(&str, u32, u32, &[&str]); 5] = [
        ("minute", 0, 59, &[]),
        ("hour", 0, 23, &[]),
        ("day of month", 1, 31, &[]),
        (
            "month",
            1,
            12,
            &[
                "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
            ],
        ),
        (
            "day of week",
            0,
            7,
            &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
        ),
    ];
    for (text, (name, min, max, names)) in fields.iter().zip(FIELDS) {
        check_field(text, min, max, names).map_err(|e| format!("{name} {text:?}: {e}"))?;
    }
    Ok(())
}

/// One cron field: a comma-separated list of `*`, `?`, `a`, `a-b`, each with an
/// optional `/step`.
fn check_field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<(), String> {
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(s) if s >= 1 && s <= max.max(1) => {}
                _ => return Err(format!("step {step:?} is not a number from 1 to {max}")),
            }
        }
        if range == "*" || range == "?" {
            continue;
        }
        let (low, high) = match range.split_once('-') {
            Some((low, high)) => (value(low, min, max, names)?, value(high, min, max, names)?),
            None => {
                let v = value(range, min, max, names)?;
                (v, v)
            }
        };
        if low > high {
            return Err(format!("range {range:?} runs backwards"));
        }
    }
    Ok(())
}

/// A number within `min..=max`, or a name (`JAN`, `MON`) at its place.
fn value(text: &str, min: u32, max: u32, names: &[&str]) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        let first = if min == 0 { 0 } else { 1 };
        return Ok(first + u32::try_from(i).unwrap_or(0));
    }
    match text.parse::<u32>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a number from {min} to {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::check_schedule;

    #[test]
    fn schedules_are_read_as_a_cronjob_reads_them() {
        for good in [
            "*/15 * * * *",
            "0 3 * * MON-FRI",
            "5,35 0-6/2 1 JAN,jul ?",
            "@hourly",
            "0 0 31 12 7",
        ] {
            assert_eq!(check_schedule(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("* * * *", "has 4 fields"),
            ("60 * * * *", "minute \"60\""),
            ("0 24 * * *", "hour"),
            ("0 0 0 * *", "day of month"),
            ("*/0 * * * *", "step"),
            ("0 5-1 * * *", "backwards"),
            ("@every 5m", "unknown macro"),
            ("CRON_TZ=UTC 0 * * * *", "time zone"),
            ("0 0 * FOO *", "month"),
        ] {
            let e = check_schedule(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(check_schedule(&"1,".repeat(100)).is_err());
    }
}
