//! Monthly reports, per agency and for the province: usage against the
//! allocation, availability and incidents (Pergub Sumut 12/2022 Pasal 51:
//! availability and time to resolve by criticality), top sites, blocked
//! attempts by category and the month's policy changes (Pergub Kalsel
//! 0113/2017 Pasal 14: a monthly review of what was logged).
//!
//! [`gather`] reads the stores into [`Inputs`]; [`assemble`] turns them into
//! a plain [`Report`] without any I/O (tested on its own); `csv.rs` and
//! `pdf.rs` write it; `schedule.rs` makes the previous month's reports on
//! the 1st and mails them.

pub mod api;
pub mod csv;
pub mod pdf;
pub mod schedule;
mod text;
mod usage;

use std::fmt;

use serde::Serialize;

use crate::outage::api::SeverityStats;
use crate::state::AppState;
use crate::store::{
    Availability, BlockedCategory, BlockedFilter, FlowReader, Incident, IncidentFilter, Step,
    StoreError, TopSite,
};
pub use text::Lang;
pub use usage::{RateStats, Sample};

/// Months further back than this are refused: hourly usage is kept two
/// years (`USAGE_1H_RETENTION_SECS`), and a report of nothing misleads.
pub const MAX_MONTHS_BACK: i32 = 24;
/// Rows of the longer lists kept in a report (the PDF shows fewer).
const MAX_INCIDENT_ROWS: usize = 500;
const MAX_POLICY_ROWS: usize = 200;
const TOP_SITES: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("month {value:?}: {reason}")]
    Month { value: String, reason: String },
    #[error("unknown agency {0:?}")]
    UnknownAgency(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("policies: {0}")]
    Policy(String),
}

/// A calendar month in the NOC's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i32,
    /// 1..=12
    pub month: u8,
}

impl Month {
    /// `YYYY-MM`, nothing else.
    pub fn parse(s: &str) -> Result<Month, ReportError> {
        let bad = |reason: &str| ReportError::Month {
            value: s.chars().take(20).collect(),
            reason: reason.into(),
        };
        let b = s.as_bytes();
        if b.len() != 7
            || b[4] != b'-'
            || !b
                .iter()
                .enumerate()
                .all(|(i, c)| i == 4 || c.is_ascii_digit())
        {
            return Err(bad("write it as YYYY-MM, e.g. 2026-11"));
        }
        let year: i32 = s[..4]
            .parse()
            .map_err(|_| bad("the year is not a number"))?;
        let month: u8 = s[5..]
            .parse()
            .map_err(|_| bad("the month is not a number"))?;
        if !(1..=12).contains(&month) {
            return Err(bad("the month must be 01 to 12"));
        }
        if year < 2000 {
            return Err(bad("the year must be 2000 or later"));
        }
        Ok(Month { year, month })
    }

    /// The month `unix_s` falls in, at UTC offset `offset_secs`.
    pub fn containing(unix_s: u64, offset_secs: i32) -> Month {
        let local = i64::try_from(unix_s).unwrap_or(i64::MAX) + i64::from(offset_secs);
        let d = time::OffsetDateTime::from_unix_timestamp(local)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Month {
            year: d.year(),
            month: u8::from(d.month()),
        }
    }

    pub fn previous(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Months from `self` to `later` (negative when `later` is earlier).
    pub fn months_until(self, later: Month) -> i32 {
        (later.year - self.year) * 12 + i32::from(later.month) - i32::from(self.month)
    }

    /// Unix seconds of local midnight on the 1st.
    pub fn start(self, offset_secs: i32) -> u64 {
        let m = time::Month::try_from(self.month).unwrap_or(time::Month::January);
        let local = time::Date::from_calendar_date(self.year, m, 1)
            .map(|d| d.midnight().assume_utc().unix_timestamp())
            .unwrap_or(0);
        u64::try_from(local - i64::from(offset_secs)).unwrap_or(0)
    }

    /// Unix seconds of the next month's start.
    pub fn end(self, offset_secs: i32) -> u64 {
        self.next().start(offset_secs)
    }

    pub fn days(self) -> u32 {
        ((self.end(0) - self.start(0)) / 86_400) as u32
    }

    /// Whether a report of this month may be asked for at `now_s`: not in
    /// the future, not older than [`MAX_MONTHS_BACK`].
    pub fn check(self, now_s: u64, offset_secs: i32) -> Result<(), ReportError> {
        let current = Month::containing(now_s, offset_secs);
        let bad = |reason: String| ReportError::Month {
            value: self.to_string(),
            reason,
        };
        if self > current {
            return Err(bad(format!("is in the future (this month is {current})")));
        }
        if self.months_until(current) > MAX_MONTHS_BACK {
            return Err(bad(format!(
                "is more than {MAX_MONTHS_BACK} months ago (usage is kept two years)"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Usage of the whole month against the allocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageFigures {
    /// All traffic (internet and intranet), bytes.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Internet traffic: what the allocation is about.
    pub internet_bytes_in: u64,
    pub internet_bytes_out: u64,
    /// The allocation in force at the end of the period (0: none).
    pub alloc_down_bps: u64,
    pub alloc_up_bps: u64,
    #[serde(flatten)]
    pub rates: RateStats,
    /// An agency's highest one-second rate (all traffic) and the 95th
    /// percentile of its seconds, bps: what minute averages hide. None for
    /// the province and for months stored before peaks were kept.
    pub peak_1s_in_bps: Option<u64>,
    pub peak_1s_out_bps: Option<u64>,
    pub p95_1s_in_bps: Option<u64>,
    pub p95_1s_out_bps: Option<u64>,
    /// Hours whose internet average reached 95 % of the allocation then in
    /// force, per direction, of the hours that had an allocation.
    pub hours_above_95_in: u32,
    pub hours_above_95_out: u32,
    pub hours_with_allocation: u32,
}

/// One local day of the month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayUsage {
    /// `YYYY-MM-DD`, local.
    pub date: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Highest internet download rate of the day (per minute where kept).
    pub peak_in_bps: f64,
    /// The highest download allocation in force that day (0: none).
    pub alloc_down_bps: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AvailabilityFigures {
    /// Over every node: 100 × (1 − down / measured); None when nothing was
    /// measured.
    pub overall_pct: Option<f64>,
    pub nodes: Vec<Availability>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeverityRow {
    pub severity: String,
    #[serde(flatten)]
    pub stats: SeverityStats,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentFigures {
    /// Outside maintenance, unreachable spells apart (Pasal 51's figures).
    pub by_severity: Vec<SeverityRow>,
    /// Detected inside a maintenance window (nobody alerted).
    pub in_maintenance: u32,
    /// Silent because an ancestor was down.
    pub unreachable: u32,
    /// The incidents themselves, newest first (at most 500).
    pub list: Vec<Incident>,
    pub total: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockedFigures {
    pub attempts: u64,
    pub categories: Vec<BlockedCategory>,
}

/// One policy version saved in the month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyChange {
    /// The agency, or `default` for the province-wide default.
    pub scope: String,
    pub version: u64,
    pub at: String,
    pub at_ms: u64,
    pub by: String,
    pub comment: String,
    /// What changed from the version before (leaf paths).
    pub changes: Vec<String>,
}

/// One agency's line in the province's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgencyRow {
    pub code: String,
    pub name: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub alloc_down_bps: u64,
    pub availability_pct: Option<f64>,
    pub incidents: u32,
}

/// A month's report: plain figures, written as JSON, CSV or PDF.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `YYYY-MM`
    pub month: String,
    /// None: the province.
    pub agency: Option<String>,
    /// The agency's name, or the province's label.
    pub name: String,
    /// The NOC's local time the month is cut in (`+07:00`).
    pub utc_offset: String,
    pub from: String,
    pub to: String,
    /// False while the month is still running (figures up to `generated_at`).
    pub complete: bool,
    pub generated_at: String,
    pub usage: UsageFigures,
    pub daily: Vec<DayUsage>,
    pub availability: AvailabilityFigures,
    pub incidents: IncidentFigures,
    pub top_sites: Vec<TopSite>,
    pub blocked: BlockedFigures,
    pub policy_changes: Vec<PolicyChange>,
    /// Province only: each agency's line.
    pub agencies: Vec<AgencyRow>,
}

/// What a report is made from, read from the stores by [`gather`].
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub month: Option<Month>,
    pub offset_secs: i32,
    pub agency: Option<String>,
    pub name: String,
    pub now_s: u64,
    /// Hourly sums of the scope over the month (hours without traffic absent).
    pub hourly: Vec<Sample>,
    /// Per-minute sums from `minutes_from` on (older minutes are pruned).
    pub minutes: Vec<Sample>,
    pub minutes_from: u64,
    /// The scope's allocation at each hour of the month (down, up bps).
    pub alloc_hourly: Vec<(u64, u64)>,
    /// One agency's highest one-second rates and their p95 over the month
    /// (the province's seconds are not kept summed: None).
    pub seconds: Option<crate::store::RangePeaks>,
    pub availability: Vec<Availability>,
    pub incidents: Vec<Incident>,
    pub top_sites: Vec<TopSite>,
    pub blocked: Vec<BlockedCategory>,
    pub policy_changes: Vec<PolicyChange>,
    pub agencies: Vec<AgencyRow>,
}

/// Unix seconds as RFC 3339 in UTC, whole seconds.
fn rfc_s(s: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(s).unwrap_or(0))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The report of `inp`, without I/O.
pub fn assemble(inp: &Inputs) -> Report {
    let month = inp.month.unwrap_or(Month {
        year: 1970,
        month: 1,
    });
    let off = inp.offset_secs;
    let (from, to) = (month.start(off), month.end(off));
    let until = to.min(inp.now_s.max(from));
    let rates = usage::rate_stats(&inp.minutes, inp.minutes_from, &inp.hourly, from, until);
    let sum = |f: fn(&Sample) -> u64| inp.hourly.iter().map(f).fold(0u64, u64::saturating_add);
    let (mut above_in, mut above_out, mut with_alloc) = (0, 0, 0);
    for h in &inp.hourly {
        let i = ((h.ts.saturating_sub(from)) / 3600) as usize;
        let Some(&(down, up)) = inp.alloc_hourly.get(i) else {
            continue;
        };
        let (rin, rout) = (
            h.internet_in as f64 * 8.0 / 3600.0,
            h.internet_out as f64 * 8.0 / 3600.0,
        );
        if down > 0 && rin >= 0.95 * down as f64 {
            above_in += 1;
        }
        if up > 0 && rout >= 0.95 * up as f64 {
            above_out += 1;
        }
    }
    let hours = ((until - from) / 3600) as usize;
    for (i, (down, up)) in inp.alloc_hourly.iter().enumerate().take(hours.max(1)) {
        if i < hours && (*down > 0 || *up > 0) {
            with_alloc += 1;
        }
    }
    // In force at the period's end: the hour holding its last second.
    let last_alloc = inp
        .alloc_hourly
        .get(((until.saturating_sub(from + 1)) / 3600) as usize)
        .copied()
        .unwrap_or_default();
    let usage = UsageFigures {
        bytes_in: sum(|s| s.bytes_in),
        bytes_out: sum(|s| s.bytes_out),
        internet_bytes_in: sum(|s| s.internet_in),
        internet_bytes_out: sum(|s| s.internet_out),
        alloc_down_bps: last_alloc.0,
        alloc_up_bps: last_alloc.1,
        rates,
        peak_1s_in_bps: inp.seconds.as_ref().and_then(|p| p.peak_in_bps),
        peak_1s_out_bps: inp.seconds.as_ref().and_then(|p| p.peak_out_bps),
        p95_1s_in_bps: inp.seconds.as_ref().and_then(|p| p.p95_in_bps),
        p95_1s_out_bps: inp.seconds.as_ref().and_then(|p| p.p95_out_bps),
        hours_above_95_in: above_in,
        hours_above_95_out: above_out,
        hours_with_allocation: with_alloc,
    };
    let daily = usage::daily(inp, month, from, until);
    let (down, measured) = inp.availability.iter().fold((0u64, 0u64), |(d, m), a| {
        let span = a
            .to_ms
            .min(inp.now_s.saturating_mul(1000))
            .saturating_sub(a.from_ms);
        let meas = span.saturating_sub(a.unmonitored_ms + a.maintenance_ms + a.unreachable_ms);
        (d + a.down_ms.min(meas), m + meas)
    });
    let availability = AvailabilityFigures {
        overall_pct: (measured > 0).then(|| 100.0 * (1.0 - down as f64 / measured as f64)),
        nodes: inp.availability.clone(),
    };
    let incidents = IncidentFigures {
        by_severity: severity_rows(&inp.incidents),
        in_maintenance: inp.incidents.iter().filter(|i| i.maintenance).count() as u32,
        unreachable: inp
            .incidents
            .iter()
            .filter(|i| i.kind == "unreachable" && !i.maintenance)
            .count() as u32,
        list: inp
            .incidents
            .iter()
            .take(MAX_INCIDENT_ROWS)
            .cloned()
            .collect(),
        total: inp.incidents.len() as u32,
    };
    let blocked = BlockedFigures {
        attempts: inp.blocked.iter().map(|c| c.attempts).sum(),
        categories: inp.blocked.clone(),
    };
    Report {
        month: month.to_string(),
        agency: inp.agency.clone(),
        name: inp.name.clone(),
        utc_offset: offset_text(off),
        from: rfc_s(from),
        to: rfc_s(to),
        complete: inp.now_s >= to,
        generated_at: rfc_s(inp.now_s),
        usage,
        daily,
        availability,
        incidents,
        top_sites: inp.top_sites.clone(),
        blocked,
        policy_changes: inp.policy_changes.clone(),
        agencies: inp.agencies.clone(),
    }
}

/// Severities from the most critical down, as the inventory orders them.
fn severity_rows(list: &[Incident]) -> Vec<SeverityRow> {
    let mut stats = crate::outage::api::severity_stats(list);
    let mut out = Vec::new();
    for sev in crate::config::SEVERITIES {
        if let Some(st) = stats.remove(sev) {
            out.push(SeverityRow {
                severity: sev.to_string(),
                stats: st,
            });
        }
    }
    out.extend(
        stats
            .into_iter()
            .map(|(severity, stats)| SeverityRow { severity, stats }),
    );
    out
}

pub(crate) fn offset_text(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
}

/// Read everything the report of `month` for `agency` (None: the
/// province) needs, as of `now_s`. Blocking: run it off the async threads.
pub fn gather(
    s: &AppState,
    month: Month,
    agency: Option<&str>,
    now_s: u64,
) -> Result<Inputs, ReportError> {
    let off = s.config.utc_offset().seconds();
    let (from, to) = (month.start(off), month.end(off));
    let inv = s.inventory.current();
    let (codes, name): (Vec<String>, String) = match agency {
        Some(a) => {
            let ag = inv
                .agency(a)
                .ok_or_else(|| ReportError::UnknownAgency(a.to_string()))?;
            (vec![a.to_string()], ag.display_name().to_string())
        }
        None => (
            inv.agencies.iter().map(|a| a.code.clone()).collect(),
            String::new(),
        ),
    };
    let reader = s.flows.reader()?;
    let r = reader.as_ref();
    let until = to.min(now_s.max(from));
    let hours = ((to - from) / 3600) as usize;
    let mut hourly_all: Vec<Vec<Sample>> = Vec::new();
    let mut alloc_hourly = vec![(0u64, 0u64); hours];
    let mut agencies = Vec::new();
    let mut seconds = None;
    for code in &codes {
        let (h, peaks) = series_peaks(r, code, from, to, Step::Hour)?;
        if agency.is_some() {
            seconds = peaks;
        }
        let runs = s
            .policies
            .allocation_runs(code, from, to, 3600)
            .map_err(|e| ReportError::Policy(e.to_string()))?;
        let own = usage::hourly_allocation(&runs, from, hours);
        for (sum, a) in alloc_hourly.iter_mut().zip(&own) {
            sum.0 = sum.0.saturating_add(a.0);
            sum.1 = sum.1.saturating_add(a.1);
        }
        if agency.is_none() {
            let name = inv
                .agency(code)
                .map_or(code.clone(), |a| a.display_name().to_string());
            agencies.push(AgencyRow {
                code: code.clone(),
                name,
                bytes_in: h.iter().map(|x| x.bytes_in).sum(),
                bytes_out: h.iter().map(|x| x.bytes_out).sum(),
                alloc_down_bps: own
                    .get((until.saturating_sub(from + 1) / 3600) as usize)
                    .map_or(0, |a| a.0),
                availability_pct: None,
                incidents: 0,
            });
        }
        hourly_all.push(h);
    }
    let hourly = usage::merge(hourly_all);
    let (minutes, minutes_from) = usage::minute_series(r, &codes, from, until, now_s)?;
    let top_sites = r.top_sites(agency, from, to, TOP_SITES)?;
    let blocked = r.blocked_categories(&BlockedFilter {
        from,
        to,
        agency: agency.map(str::to_string),
        node: None,
        method: None,
        limit: 0,
    })?;
    drop(reader);
    // Availability of the scope's enrolled nodes, from their enrollment on.
    let nodes = crate::service::nodes(s, std::time::SystemTime::now())?;
    let spans: Vec<crate::store::NodeSpan> = crate::outage::api::node_spans(&nodes)
        .into_iter()
        .filter(|n| codes.contains(&n.agency))
        .collect();
    let incidents_store = s.control.incidents()?;
    let availability =
        incidents_store.availability(&spans, from * 1000, to * 1000, now_s.saturating_mul(1000))?;
    let incidents = incidents_store.list(&IncidentFilter {
        agency: agency.map(str::to_string),
        from_ms: Some(from * 1000),
        to_ms: Some(to * 1000),
        limit: 100_000,
        ..Default::default()
    })?;
    for row in &mut agencies {
        let mine: Vec<&Availability> = availability
            .iter()
            .filter(|a| a.agency == row.code)
            .collect();
        row.availability_pct = overall(&mine, now_s);
        row.incidents = incidents.iter().filter(|i| i.agency == row.code).count() as u32;
    }
    let policy_changes = policy_changes(s, agency, &codes, from, to)?;
    Ok(Inputs {
        month: Some(month),
        offset_secs: off,
        agency: agency.map(str::to_string),
        name,
        now_s,
        hourly,
        minutes,
        minutes_from,
        alloc_hourly,
        seconds,
        availability,
        incidents,
        top_sites,
        blocked,
        policy_changes,
        agencies,
    })
}

fn overall(list: &[&Availability], now_s: u64) -> Option<f64> {
    let (down, measured) = list.iter().fold((0u64, 0u64), |(d, m), a| {
        let span = a
            .to_ms
            .min(now_s.saturating_mul(1000))
            .saturating_sub(a.from_ms);
        let meas = span.saturating_sub(a.unmonitored_ms + a.maintenance_ms + a.unreachable_ms);
        (d + a.down_ms.min(meas), m + meas)
    });
    (measured > 0).then(|| 100.0 * (1.0 - down as f64 / measured as f64))
}

/// One agency's traffic as samples.
fn series(
    r: &dyn FlowReader,
    agency: &str,
    from: u64,
    to: u64,
    step: Step,
) -> Result<Vec<Sample>, StoreError> {
    Ok(series_peaks(r, agency, from, to, step)?.0)
}

/// [`series`], and the range's one-second peaks and p95 when one call
/// covered it (the store keeps them per minute and hour: `store/peaks.rs`).
fn series_peaks(
    r: &dyn FlowReader,
    agency: &str,
    from: u64,
    to: u64,
    step: Step,
) -> Result<(Vec<Sample>, Option<crate::store::RangePeaks>), StoreError> {
    // The store answers at most 20,000 steps a call: ten days of minutes.
    let piece = step.secs() * 14_400;
    let mut out = Vec::new();
    let mut peaks = None;
    let mut start = from;
    while start < to {
        let end = (start + piece).min(to);
        let u = r.usage(agency, start, end, step)?;
        if start == from && end == to {
            peaks = Some(u.peaks.clone());
        }
        out.extend(u.points.iter().map(|p| Sample {
            ts: simpul_proto::time_format::parse_rfc3339(&p.ts).map_or(0, |ns| ns / 1_000_000_000),
            bytes_in: p.bytes_in,
            bytes_out: p.bytes_out,
            internet_in: p.internet_bytes_in,
            internet_out: p.internet_bytes_out,
        }));
        start = end;
    }
    Ok((out, peaks))
}

/// The policy versions saved in [from, to): the agency's, or for the
/// province the default's and every agency's.
fn policy_changes(
    s: &AppState,
    agency: Option<&str>,
    codes: &[String],
    from: u64,
    to: u64,
) -> Result<Vec<PolicyChange>, ReportError> {
    let (from_ms, to_ms) = (from * 1000, to * 1000);
    let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap_or_default();
    // The first version has nothing to differ from: no paths.
    let paths = |before: Option<&str>, after: &str| -> Vec<String> {
        let Some(before) = before.map(parse) else {
            return Vec::new();
        };
        simpul_core::policy::document::diff(&before, &parse(after))
            .into_iter()
            .map(|c| c.path)
            .filter(|p| p != "version")
            .collect()
    };
    let mut out = Vec::new();
    if agency.is_none() {
        let all = s.control.default_policies(usize::MAX)?;
        // Newest first: the one after each is its predecessor.
        for (i, v) in all.iter().enumerate() {
            if (from_ms..to_ms).contains(&v.created_ms) {
                out.push(PolicyChange {
                    scope: "default".into(),
                    version: v.version,
                    at: rfc_s(v.created_ms / 1000),
                    at_ms: v.created_ms,
                    by: v.created_by.clone(),
                    comment: v.comment.clone(),
                    changes: paths(all.get(i + 1).map(|p| p.document.as_str()), &v.document),
                });
            }
        }
    }
    for code in codes {
        let all = s.control.policy_versions(code, usize::MAX)?;
        for (i, v) in all.iter().enumerate() {
            if (from_ms..to_ms).contains(&v.created_ms) {
                out.push(PolicyChange {
                    scope: code.clone(),
                    version: v.version,
                    at: rfc_s(v.created_ms / 1000),
                    at_ms: v.created_ms,
                    by: v.created_by.clone(),
                    comment: v.comment.clone(),
                    changes: paths(
                        all.get(i + 1).map(|p| p.policy_json.as_str()),
                        &v.policy_json,
                    ),
                });
            }
        }
    }
    out.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then(a.scope.cmp(&b.scope)));
    out.truncate(MAX_POLICY_ROWS);
    Ok(out)
}

/// The download file's name: `simpul-laporan-2026-11-dinkes.pdf`.
pub fn file_name(report: &Report, lang: Lang, ext: &str) -> String {
    let scope = report
        .agency
        .clone()
        .unwrap_or_else(|| text::t(lang, "province_file").to_string());
    format!(
        "simpul-{}-{}-{}.{ext}",
        text::t(lang, "report_file"),
        report.month,
        scope
    )
}

#[cfg(test)]
mod tests;
