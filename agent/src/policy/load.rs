//! Reading a policy file (TOML or JSON) and checking it, and which schedule
//! is in force at a given time.

use std::path::{Path, PathBuf};

use simpul_proto::policy::{Policy, PolicyParseError, Schedule, Weekday};
use time::OffsetDateTime;

use super::validate::{parse_hhmm, parse_utc_offset, validate, Problem};
use crate::config::AgentConfig;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: {cause}")]
    Parse {
        path: PathBuf,
        cause: PolicyParseError,
    },
    #[error("{path}: policy refused ({} problem{}):\n  {}", .problems.len(),
        if .problems.len() == 1 { "" } else { "s" },
        .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// Parse and validate policy text; `path` only labels errors.
pub fn parse_policy(text: &str, path: &Path, cfg: &AgentConfig) -> Result<Policy, PolicyError> {
    let policy = Policy::parse(text).map_err(|cause| PolicyError::Parse {
        path: path.to_owned(),
        cause,
    })?;
    validate(&policy, cfg).map_err(|problems| PolicyError::Invalid {
        path: path.to_owned(),
        problems,
    })?;
    Ok(policy)
}

/// Read, parse and validate a policy file.
pub fn load_policy(path: &Path, cfg: &AgentConfig) -> Result<Policy, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|cause| PolicyError::Read {
        path: path.to_owned(),
        cause,
    })?;
    parse_policy(&text, path, cfg)
}

/// The schedule whose window contains `now` in the policy's UTC offset
/// (windows never overlap in a valid policy; the first match wins otherwise).
pub fn active_schedule(policy: &Policy, now: OffsetDateTime) -> Option<&Schedule> {
    let offset = parse_utc_offset(&policy.utc_offset).ok()?;
    let offset = time::UtcOffset::from_whole_seconds(offset).ok()?;
    let local = now.to_offset(offset);
    let day = Weekday::ALL[usize::from(local.weekday().number_days_from_monday())];
    let minute = u32::from(local.hour()) * 60 + u32::from(local.minute());
    policy.schedules.iter().find(|s| {
        s.days.contains(&day)
            && matches!(
                (parse_hhmm(&s.start), parse_hhmm(&s.end)),
                (Ok(a), Ok(b)) if a <= minute && minute < b
            )
    })
}

/// Whether a suspension is in force at `now` (its `until` not yet passed).
pub fn suspension_active(policy: &Policy, now: OffsetDateTime) -> bool {
    match &policy.suspension.until {
        None => true,
        Some(t) => simpul_proto::time_format::parse_rfc3339(t)
            .map(|until| (now.unix_timestamp_nanos().max(0) as u64) < until)
            .unwrap_or(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn schedule_follows_the_local_offset() {
        let p = Policy::parse(
            r#"
version = 1
agency = "x"
utc_offset = "+08:00"
[allocation]
download = { rate_bps = 1, ceil_bps = 1 }
upload = { rate_bps = 1, ceil_bps = 1 }
[[schedules]]
name = "kantor"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "07:30"
end = "16:00"
"#,
        )
        .expect("parse");
        // Friday 23:29 UTC = Saturday 07:29 WITA: weekend, no schedule.
        assert!(active_schedule(&p, datetime!(2026-11-27 23:29 UTC)).is_none());
        // Thursday 23:30 UTC = Friday 07:30 WITA: office hours begin.
        assert_eq!(
            active_schedule(&p, datetime!(2026-11-26 23:30 UTC)).map(|s| s.name.as_str()),
            Some("kantor")
        );
        // Friday 07:59 UTC = 15:59 WITA, 08:00 UTC = 16:00 (end is exclusive).
        assert!(active_schedule(&p, datetime!(2026-11-27 07:59 UTC)).is_some());
        assert!(active_schedule(&p, datetime!(2026-11-27 08:00 UTC)).is_none());
    }

    #[test]
    fn suspension_lapses_at_until() {
        let mut p = Policy::parse(
            "version = 1\nagency = \"x\"\n[allocation]\ndownload = { rate_bps = 1, ceil_bps = 1 }\nupload = { rate_bps = 1, ceil_bps = 1 }\n",
        )
        .expect("parse");
        p.suspension.until = Some("2026-11-27T12:00:00+07:00".into());
        assert!(suspension_active(&p, datetime!(2026-11-27 04:59 UTC)));
        assert!(!suspension_active(&p, datetime!(2026-11-27 05:00 UTC)));
    }
}
