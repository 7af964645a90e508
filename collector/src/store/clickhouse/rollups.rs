//! Folded rollups: one row per (agency, step, key) and fold version, so
//! readers over long ranges sum few rows. The views' tables (`usage_1m`,
//! `usage_1h`, `top_hosts_1m`, `top_sites_1m`) hold one row per batch and
//! key (what exactly-once needs, see `schema.rs`) and barely shrink; the
//! writer refolds the minutes a stored call touched from them (FINAL: a
//! batch written twice counts once) into the `*_f` tables, along with the
//! peaks (`peaks.rs`). A refold replaces the row before it
//! (ReplacingMergeTree by version), so folding again changes nothing.
//!
//! Until a touched minute is folded, readers read it from the views'
//! tables: the writer lists it in `Pending`, which readers of this process
//! share. (Known limit: a reader in another process sees a late batch's
//! minute from the folded row until the writer's next fold, ≤ 5 s.)
//!
//! Top hosts and sites are also folded per hour and per day (`COARSE`),
//! each from the step below, once the step has ended: a national
//! deployment has ~50 M host-minutes in two days, and top-N over them is
//! the history page's first question. Readers take a whole hour or day
//! from them only when it ended over an hour ago and is not pending
//! (`Pending::coarse`), and the rest from the minutes, so a reader in
//! another process never misses the open hour.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::client::{lit, Client};
use super::peaks::Minute;
use crate::store::StoreError;

pub const USAGE_1M: &str = "usage_1m_f";
pub const USAGE_1H: &str = "usage_1h_f";
pub const HOSTS: &str = "top_hosts_1m_f";
pub const SITES: &str = "top_sites_1m_f";
pub const HOSTS_1H: &str = "top_hosts_1h_f";
pub const SITES_1H: &str = "top_sites_1h_f";
pub const HOSTS_1D: &str = "top_hosts_1d_f";
pub const SITES_1D: &str = "top_sites_1d_f";

/// The coarser folds of top hosts and sites, each folded from the one
/// before it (the minutes first): (step, hosts, sites). Their time column
/// keeps the name `minute` (the step's start) so one SQL serves all.
pub const COARSE: [(u64, &str, &str); 2] =
    [(3600, HOSTS_1H, SITES_1H), (86_400, HOSTS_1D, SITES_1D)];

/// Steps per statement at most (far below `max_query_size`).
pub const CHUNK: usize = 2000;

/// Minutes stored but not folded yet.
#[derive(Default, Debug)]
pub struct Pending {
    /// Counters, by agency and minute.
    pub usage: BTreeSet<Minute>,
    /// Credited flow records, by credit agency and minute.
    pub hosts: BTreeSet<Minute>,
    /// The hours and days (as `COARSE`) of `hosts`' minutes, until their
    /// step has ended and been folded.
    pub coarse: [BTreeSet<Minute>; 2],
}

impl Pending {
    /// Minutes of credited flow records stored, with their hours and days.
    pub fn add_hosts(&mut self, minutes: impl IntoIterator<Item = Minute>) {
        for (agency, m) in minutes {
            for (set, (step, ..)) in self.coarse.iter_mut().zip(COARSE) {
                set.insert((agency.clone(), m / step * step));
            }
            self.hosts.insert((agency, m));
        }
    }
}

pub type Shared = std::sync::Arc<Mutex<Pending>>;

pub fn lock(p: &Shared) -> std::sync::MutexGuard<'_, Pending> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// `(agency, start), …` for an `IN` list.
pub fn list<A: AsRef<str>>(steps: &[(A, u64)]) -> String {
    steps
        .iter()
        .map(|(a, ts)| format!("({}, {ts})", lit(a.as_ref())))
        .collect::<Vec<_>>()
        .join(", ")
}

fn agencies(steps: &[(&str, u64)]) -> String {
    let set: BTreeSet<&str> = steps.iter().map(|s| s.0).collect();
    let l: Vec<String> = set.into_iter().map(lit).collect();
    format!("agency IN ({})", l.join(", "))
}

/// `WHERE` of the steps `[(agency, start)]` over a table's time column.
fn steps_cond(steps: &[(&str, u64)], col: &str, span: u64) -> String {
    let lo = steps.iter().map(|s| s.1).min().unwrap_or(0);
    let hi = steps.iter().map(|s| s.1).max().unwrap_or(0) + span;
    format!(
        "{} AND {col} >= {lo} AND {col} < {hi} AND (agency, {col}) IN ({})",
        agencies(steps),
        list(steps)
    )
}

fn usage_sql(db: &str, to: &str, from: &str, step: u64, cond: &str, v: u64) -> String {
    format!(
        "INSERT INTO {db}.{to} (agency, ts, unit, scope, bytes_in, bytes_out, packets_in, \
         packets_out, version) \
         SELECT agency, intDiv(ts, {step}) * {step} AS t, unit, scope, sum(bytes_in), \
         sum(bytes_out), sum(packets_in), sum(packets_out), toUInt64({v}) \
         FROM {db}.{from} FINAL WHERE {cond} GROUP BY agency, t, unit, scope"
    )
}

/// Fold `from` (a views' table or a finer fold) into `to` by `step`.
fn hosts_sql(db: &str, (to, from): (&str, &str), step: u64, cond: &str, v: u64) -> String {
    format!(
        "INSERT INTO {db}.{to} (agency, minute, unit, host, bytes_up, bytes_down, flows, \
         version) \
         SELECT agency, intDiv(minute, {step}) * {step} AS m, unit, host, sum(bytes_up), \
         sum(bytes_down), sum(flows), toUInt64({v}) FROM {db}.{from} FINAL WHERE {cond} \
         GROUP BY agency, m, unit, host"
    )
}

fn sites_sql(db: &str, (to, from): (&str, &str), step: u64, cond: &str, v: u64) -> String {
    format!(
        "INSERT INTO {db}.{to} (agency, minute, site, bytes, flows, source, version) \
         SELECT agency, intDiv(minute, {step}) * {step} AS m, site, sum(bytes), sum(flows), \
         min(source), toUInt64({v}) FROM {db}.{from} FINAL WHERE {cond} \
         GROUP BY agency, m, site"
    )
}

/// `WHERE` of the coarse steps `[(agency, start)]` of `step` seconds over
/// the finer rows they are folded from.
fn coarse_cond(steps: &[(&str, u64)], step: u64) -> String {
    let lo = steps.iter().map(|s| s.1).min().unwrap_or(0);
    let hi = steps.iter().map(|s| s.1).max().unwrap_or(0) + step;
    format!(
        "{} AND minute >= {lo} AND minute < {hi} AND (agency, intDiv(minute, {step}) * {step}) \
         IN ({})",
        agencies(steps),
        list(steps)
    )
}

/// Refold the given minutes (and the hours of the usage ones).
pub fn fold(
    c: &Client,
    db: &str,
    usage: &BTreeSet<Minute>,
    hosts: &BTreeSet<Minute>,
    v: u64,
) -> Result<(), StoreError> {
    let mins: Vec<(&str, u64)> = usage.iter().map(|(a, m)| (a.as_str(), *m)).collect();
    for chunk in mins.chunks(CHUNK) {
        c.exec(&usage_sql(
            db,
            USAGE_1M,
            "usage_1m",
            60,
            &steps_cond(chunk, "ts", 60),
            v,
        ))?;
    }
    let hours: BTreeSet<(&str, u64)> = mins.iter().map(|(a, m)| (*a, m / 3600 * 3600)).collect();
    let hours: Vec<(&str, u64)> = hours.into_iter().collect();
    for chunk in hours.chunks(CHUNK) {
        c.exec(&usage_sql(
            db,
            USAGE_1H,
            "usage_1h",
            3600,
            &steps_cond(chunk, "ts", 3600),
            v,
        ))?;
    }
    let mins: Vec<(&str, u64)> = hosts.iter().map(|(a, m)| (a.as_str(), *m)).collect();
    for chunk in mins.chunks(CHUNK) {
        let cond = steps_cond(chunk, "minute", 60);
        c.exec(&hosts_sql(db, (HOSTS, "top_hosts_1m"), 60, &cond, v))?;
        c.exec(&sites_sql(db, (SITES, "top_sites_1m"), 60, &cond, v))?;
    }
    Ok(())
}

/// Fold the hours, then the days, of `coarse` (as `Pending::coarse`) that
/// ended by `now` (seconds): what was folded, to be taken off the pending.
pub fn fold_coarse(
    c: &Client,
    db: &str,
    coarse: &[BTreeSet<Minute>; 2],
    now: u64,
    v: u64,
) -> Result<[BTreeSet<Minute>; 2], StoreError> {
    let mut done: [BTreeSet<Minute>; 2] = Default::default();
    let mut finer = (HOSTS, SITES);
    for (i, (step, hosts, sites)) in COARSE.into_iter().enumerate() {
        let ended: Vec<(&str, u64)> = coarse[i]
            .iter()
            .filter(|(_, t)| t + step <= now)
            .map(|(a, t)| (a.as_str(), *t))
            .collect();
        for chunk in ended.chunks(CHUNK) {
            let cond = coarse_cond(chunk, step);
            c.exec(&hosts_sql(db, (hosts, finer.0), step, &cond, v))?;
            c.exec(&sites_sql(db, (sites, finer.1), step, &cond, v))?;
        }
        done[i] = ended.into_iter().map(|(a, t)| (a.to_string(), t)).collect();
        finer = (hosts, sites);
    }
    Ok(done)
}

/// Fold every hour and day of the minutes' folds (a database written
/// before the coarse folds, or generated). Steps not ended yet are folded
/// too: readers do not take them from here until they have ended, and a
/// minute stored in them later makes them pending.
pub fn fold_coarse_all(c: &Client, db: &str, v: u64) -> Result<(), StoreError> {
    let mut finer = (HOSTS, SITES);
    for (step, hosts, sites) in COARSE {
        c.exec(&hosts_sql(db, (hosts, finer.0), step, "1", v))?;
        c.exec(&sites_sql(db, (sites, finer.1), step, "1", v))?;
        finer = (hosts, sites);
    }
    Ok(())
}

/// Fold everything the views' tables hold (a database written before the
/// folded tables, or generated).
pub fn fold_all(c: &Client, db: &str, v: u64) -> Result<(), StoreError> {
    c.exec(&usage_sql(db, USAGE_1M, "usage_1m", 60, "1", v))?;
    c.exec(&usage_sql(db, USAGE_1H, "usage_1h", 3600, "1", v))?;
    c.exec(&hosts_sql(db, (HOSTS, "top_hosts_1m"), 60, "1", v))?;
    c.exec(&sites_sql(db, (SITES, "top_sites_1m"), 60, "1", v))?;
    fold_coarse_all(c, db, v)
}

/// The credited minutes of the last two hours before the newest one (what
/// a writer opening refolds, with `peaks::recent_minutes` for the usage).
pub fn recent_host_minutes(c: &Client, db: &str) -> Result<BTreeSet<Minute>, StoreError> {
    #[derive(serde::Deserialize)]
    struct M {
        agency: String,
        m: u64,
    }
    let rows: Vec<M> = c.rows(&format!(
        "SELECT DISTINCT agency, minute AS m FROM {db}.top_hosts_1m \
         WHERE minute >= (SELECT max(minute) FROM {db}.top_hosts_1m) - 7200 \
         UNION ALL SELECT DISTINCT agency, minute AS m FROM {db}.top_sites_1m \
         WHERE minute >= (SELECT max(minute) FROM {db}.top_sites_1m) - 7200"
    ))?;
    Ok(rows.into_iter().map(|r| (r.agency, r.m)).collect())
}

/// A reader's source of a folded table and the views' table it folds: the
/// folded rows matching `cond` but for the `pending` steps (agency, start;
/// not folded yet), and the views' rows of those, as one subquery with
/// the columns `cols` (the same in both tables; the caller sums).
pub fn source(
    db: &str,
    (folded, raw): (&str, &str),
    time: &str,
    cols: &str,
    cond: &str,
    pending: &[(String, u64)],
) -> String {
    if pending.is_empty() {
        return format!("(SELECT {cols} FROM {db}.{folded} FINAL WHERE {cond})");
    }
    if pending.len() > CHUNK {
        // Too many to list (`max_query_size`): the views' rows alone are
        // as exact, only slower.
        return format!("(SELECT {cols} FROM {db}.{raw} FINAL WHERE {cond})");
    }
    let l = list(pending);
    format!(
        "(SELECT {cols} FROM {db}.{folded} FINAL WHERE {cond} AND (agency, {time}) NOT IN ({l}) \
         UNION ALL SELECT {cols} FROM {db}.{raw} FINAL WHERE {cond} AND (agency, {time}) IN ({l}))"
    )
}

/// The pending steps of `step` seconds within `[from, to)`, of `agency`
/// if given.
pub fn pending_steps(
    set: &BTreeSet<Minute>,
    step: u64,
    (from, to): (u64, u64),
    agency: Option<&str>,
) -> Vec<(String, u64)> {
    let steps: BTreeSet<(String, u64)> = set
        .iter()
        .filter(|(a, m)| agency.is_none_or(|x| x == a) && *m + 60 > from && *m < to)
        .map(|(a, m)| (a.clone(), m / step * step))
        .collect();
    steps.into_iter().collect()
}
