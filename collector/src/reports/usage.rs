//! Usage figures of a month: the peak and 95th percentile of the internet
//! rate, hours near the allocation, days.
//!
//! The rates come from per-minute sums ([`minute_series`]), with the hours
//! whose minutes retention already removed standing in as sixty minutes of
//! their average. This is the one place that reads rates: when the rollups
//! keep their own maxima and percentile sketches, only [`minute_series`]
//! and [`rate_stats`] change.

use serde::Serialize;

use super::{DayUsage, Inputs, Month};
use crate::store::{FlowReader, Step, StoreError, USAGE_1M_RETENTION_SECS};

/// Traffic of one step (sum over the report's agencies), bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Unix seconds of the step's start.
    pub ts: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub internet_in: u64,
    pub internet_out: u64,
}

/// Internet rates over the month, bits per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RateStats {
    pub peak_in_bps: f64,
    pub peak_out_bps: f64,
    pub p95_in_bps: f64,
    pub p95_out_bps: f64,
    /// The resolution the rates were read at: 60 (minutes), or 3600 when
    /// only hourly sums were left for the whole period.
    pub rate_step_secs: u64,
}

/// Sum samples of several agencies step by step.
pub fn merge(all: Vec<Vec<Sample>>) -> Vec<Sample> {
    let mut by: std::collections::BTreeMap<u64, Sample> = std::collections::BTreeMap::new();
    for s in all.into_iter().flatten() {
        let e = by.entry(s.ts).or_insert(Sample {
            ts: s.ts,
            ..Sample::default()
        });
        e.bytes_in = e.bytes_in.saturating_add(s.bytes_in);
        e.bytes_out = e.bytes_out.saturating_add(s.bytes_out);
        e.internet_in = e.internet_in.saturating_add(s.internet_in);
        e.internet_out = e.internet_out.saturating_add(s.internet_out);
    }
    by.into_values().collect()
}

/// The per-minute sums of `codes` over [from, until) that the store still
/// holds, and from when it holds them.
pub fn minute_series(
    r: &dyn FlowReader,
    codes: &[String],
    from: u64,
    until: u64,
    now_s: u64,
) -> Result<(Vec<Sample>, u64), StoreError> {
    // Whole hours only, so the older part is exactly the hours before.
    let kept = now_s.saturating_sub(USAGE_1M_RETENTION_SECS);
    let minutes_from = from.max(kept.div_ceil(3600) * 3600).min(until);
    if minutes_from >= until {
        return Ok((Vec::new(), until));
    }
    let mut all = Vec::with_capacity(codes.len());
    for c in codes {
        all.push(super::series(r, c, minutes_from, until, Step::Minute)?);
    }
    Ok((merge(all), minutes_from))
}

/// Peak and 95th percentile of the per-minute internet rates over
/// [from, until): minutes without traffic count as 0; before
/// `minutes_from` each hour counts as sixty minutes of its average.
pub fn rate_stats(
    minutes: &[Sample],
    minutes_from: u64,
    hourly: &[Sample],
    from: u64,
    until: u64,
) -> RateStats {
    let n = (until.saturating_sub(from) / 60) as usize;
    if n == 0 {
        return RateStats {
            rate_step_secs: 60,
            ..RateStats::default()
        };
    }
    let mut ins = vec![0f64; n];
    let mut outs = vec![0f64; n];
    let slot = |ts: u64| ((ts.saturating_sub(from)) / 60) as usize;
    for h in hourly
        .iter()
        .filter(|h| h.ts < minutes_from && h.ts >= from)
    {
        let (i, o) = (
            h.internet_in as f64 * 8.0 / 3600.0,
            h.internet_out as f64 * 8.0 / 3600.0,
        );
        for k in slot(h.ts)..(slot(h.ts) + 60).min(n) {
            ins[k] = i;
            outs[k] = o;
        }
    }
    for m in minutes
        .iter()
        .filter(|m| m.ts >= minutes_from && m.ts < until)
    {
        let k = slot(m.ts);
        if k < n {
            ins[k] = m.internet_in as f64 * 8.0 / 60.0;
            outs[k] = m.internet_out as f64 * 8.0 / 60.0;
        }
    }
    let peak = |v: &[f64]| v.iter().cloned().fold(0f64, f64::max);
    RateStats {
        peak_in_bps: peak(&ins),
        peak_out_bps: peak(&outs),
        p95_in_bps: p95(&mut ins),
        p95_out_bps: p95(&mut outs),
        rate_step_secs: if minutes_from >= until { 3600 } else { 60 },
    }
}

/// The nearest-rank 95th percentile: the smallest value at least 95 % of
/// the samples do not exceed.
pub fn p95(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = (v.len() * 95).div_ceil(100).max(1);
    v[rank - 1]
}

/// The allocation of each hour from `from`: the one in force at the hour's
/// end (a version saved during the hour counts for it), from the policy's
/// runs (`(start, download, upload)`).
pub fn hourly_allocation(
    runs: &[(
        u64,
        simpul_proto::policy::Rates,
        simpul_proto::policy::Rates,
    )],
    from: u64,
    hours: usize,
) -> Vec<(u64, u64)> {
    (0..hours)
        .map(|h| {
            let end = from + (h as u64 + 1) * 3600;
            let at = runs.partition_point(|(start, ..)| *start < end);
            match at {
                0 => (0, 0),
                i => (runs[i - 1].1.rate_bps, runs[i - 1].2.rate_bps),
            }
        })
        .collect()
}

/// Each local day up to `until`: bytes, the day's peak download rate and
/// its highest allocation.
pub fn daily(inp: &Inputs, month: Month, from: u64, until: u64) -> Vec<DayUsage> {
    let days = month.days() as usize;
    let mut out: Vec<DayUsage> = (0..days)
        .map(|d| DayUsage {
            date: format!("{month}-{:02}", d + 1),
            bytes_in: 0,
            bytes_out: 0,
            peak_in_bps: 0.0,
            alloc_down_bps: 0,
        })
        .collect();
    let day = |ts: u64| ((ts.saturating_sub(from)) / 86_400) as usize;
    for h in inp.hourly.iter().filter(|h| h.ts >= from && h.ts < until) {
        if let Some(d) = out.get_mut(day(h.ts)) {
            d.bytes_in = d.bytes_in.saturating_add(h.bytes_in);
            d.bytes_out = d.bytes_out.saturating_add(h.bytes_out);
            if h.ts < inp.minutes_from {
                d.peak_in_bps = d.peak_in_bps.max(h.internet_in as f64 * 8.0 / 3600.0);
            }
        }
    }
    for m in inp
        .minutes
        .iter()
        .filter(|m| m.ts >= inp.minutes_from && m.ts < until)
    {
        if let Some(d) = out.get_mut(day(m.ts)) {
            d.peak_in_bps = d.peak_in_bps.max(m.internet_in as f64 * 8.0 / 60.0);
        }
    }
    let hours = ((until.saturating_sub(from)) / 3600) as usize;
    for (h, (down, _)) in inp.alloc_hourly.iter().enumerate().take(hours) {
        if let Some(d) = out.get_mut(h / 24) {
            d.alloc_down_bps = d.alloc_down_bps.max(*down);
        }
    }
    let last = if until > from { day(until - 1) + 1 } else { 0 };
    out.truncate(last);
    out
}
