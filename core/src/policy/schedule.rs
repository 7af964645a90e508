//! Parsing and checking a policy, and what is in force at a given time
//! (the schedule window, the suspension).

use simpul_proto::policy::{Policy, PolicyParseError, Schedule, Weekday};
use simpul_proto::time_window::{TimeOfDay, UtcOffset};
use time::OffsetDateTime;

use super::validate::{validate, PolicyScope, Problem};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Parse(#[from] PolicyParseError),
    #[error("policy refused ({}):\n  {}", simpul_proto::problem::describe(.0).split(':').next().unwrap_or_default(),
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid(Vec<Problem>),
}

/// Parse (TOML or JSON) and validate.
pub fn parse_policy(text: &str, scope: &PolicyScope<'_>) -> Result<Policy, PolicyError> {
    let policy = Policy::parse(text)?;
    validate(&policy, scope).map_err(PolicyError::Invalid)?;
    Ok(policy)
}

/// The schedule whose window contains `now` in the policy's UTC offset
/// (windows never overlap in a valid policy; the first match wins otherwise).
pub fn active_schedule(policy: &Policy, now: OffsetDateTime) -> Option<&Schedule> {
    let offset = UtcOffset::parse(&policy.utc_offset).ok()?;
    let ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).ok()?;
    let (day, minute): (Weekday, u32) = offset.local(ms);
    policy.schedules.iter().find(|s| {
        s.days.contains(&day)
            && matches!(
                (TimeOfDay::parse(&s.start), TimeOfDay::parse(&s.end)),
                (Ok(a), Ok(b)) if a.minutes() <= minute && minute < b.minutes()
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
