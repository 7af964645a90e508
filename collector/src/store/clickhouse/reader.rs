//! Queries. Every answer is shaped as the in-memory store shapes it (the
//! reference the SQLite store is held to), with ClickHouse doing the
//! scanning and summing: rollups are read with FINAL (a batch written
//! twice counts once, see `mod.rs`), folded ones but for the minutes not
//! folded yet (`rollups.rs`), a flow is its latest row by
//! (seq, idx), and every filter is pushed into the SQL so LIMITs are exact.

use std::collections::HashMap;
use std::time::SystemTime;

use serde::Deserialize;
use simpul_proto::BlockedAttempt;

use super::client::lit;
use super::rows::{latest_select, StateRow, NO_SOURCE};
use super::{ip_from_key, ip_key, rollups, schema, ClickHouseFlowStore};
use crate::store::codec::{
    block_method_code, block_method_from, rfc_ns, rfc_s, secs, site_source_from,
};
use crate::store::search::{has_row_conditions, row_matches, Tally, TopRows};
use crate::store::traits::{FlowReader, Traffic};
use crate::store::{
    peaks, BlockedAgency, BlockedClient, BlockedFilter, BlockedMatch, BlockedRow, BlockedSummary,
    BlockedTarget, FlowFilter, FlowId, FlowPage, FlowRow, FlowSort, Investigation, Net,
    OverviewSite, SeriesPoint, Step, StoreError, TopAgency, TopHost, TopSite, UnitUsage,
    UsagePoint, UsageSeries, MAX_BLOCKED, MAX_INVESTIGATE_SCAN, MAX_USAGE_STEPS,
};

const NS: u64 = 1_000_000_000;

pub(super) struct ChReader {
    s: ClickHouseFlowStore,
}

impl ChReader {
    pub(super) fn new(s: ClickHouseFlowStore) -> Self {
        Self { s }
    }

    fn rows<T: for<'de> Deserialize<'de>>(&self, sql: &str) -> Result<Vec<T>, StoreError> {
        self.s.client.rows(sql)
    }

    fn t(&self, table: &str) -> String {
        format!("{}.{table}", self.s.db)
    }

    /// The counters of one step matching `cond` over `[from, to)`, as a
    /// subquery with `cols`: the seconds, or the folded steps and the
    /// views' rows of the steps not folded yet (`rollups.rs`).
    fn usage_src(
        &self,
        step: Step,
        cols: &str,
        cond: &str,
        range: (u64, u64),
        agency: Option<&str>,
    ) -> String {
        let (folded, raw) = match step {
            Step::Second => {
                return format!(
                    "(SELECT {cols} FROM {} FINAL WHERE {cond})",
                    self.t("usage_1s")
                )
            }
            Step::Minute => (rollups::USAGE_1M, schema::USAGE_1M.name),
            Step::Hour => (rollups::USAGE_1H, schema::USAGE_1H.name),
        };
        let pending = rollups::pending_steps(
            &rollups::lock(&self.s.pending).usage,
            step.secs(),
            range,
            agency,
        );
        rollups::source(&self.s.db, (folded, raw), "ts", cols, cond, &pending)
    }

    /// Top hosts (`sites`: false) or sites per minute, as `usage_src`.
    fn top_src(
        &self,
        sites: bool,
        cols: &str,
        cond: &str,
        range: (u64, u64),
        agency: Option<&str>,
    ) -> String {
        let pending =
            rollups::pending_steps(&rollups::lock(&self.s.pending).hosts, 60, range, agency);
        let tables = if sites {
            (rollups::SITES, schema::TOP_SITES.name)
        } else {
            (rollups::HOSTS, schema::TOP_HOSTS.name)
        };
        rollups::source(&self.s.db, tables, "minute", cols, cond, &pending)
    }

    /// Top hosts or sites over `[from, to)` (`from` on a minute), as
    /// `top_src`: whole days and hours from their folds where they ended
    /// over an hour ago and are not pending, the rest from the minutes.
    /// `extra`: further conditions (" AND …").
    fn top_src_long(
        &self,
        sites: bool,
        cols: &str,
        extra: &str,
        (from, to): (u64, u64),
        agency: Option<&str>,
    ) -> String {
        let minutes = |not_coarse: &str| {
            self.top_src(
                sites,
                cols,
                &format!("minute >= {from} AND minute < {to}{extra}{not_coarse}"),
                (from, to),
                agency,
            )
        };
        let [(hour, hours_h, hours_s), (day, days_h, days_s)] = rollups::COARSE;
        // The open hour and the one before always come from the minutes,
        // so a reader in another process (which does not see this writer's
        // pending steps) never takes a step that is not folded yet.
        let settled = (secs(SystemTime::now()) / hour).saturating_sub(1) * hour;
        let whole = |lo: u64, hi: u64, step: u64| {
            let (a, b) = (lo.div_ceil(step) * step, hi / step * step);
            if a < b {
                (a, b)
            } else {
                (hi, hi)
            }
        };
        let (h0, h1) = whole(from, to.min(settled).max(from), hour);
        if h0 >= h1 {
            return minutes("");
        }
        let (d0, d1) = whole(h0, h1, day);
        let (ph, pd) = {
            let p = rollups::lock(&self.s.pending);
            (
                rollups::pending_steps(&p.coarse[0], hour, (h0, h1), agency),
                rollups::pending_steps(&p.coarse[1], day, (d0, d1), agency),
            )
        };
        // Too many to list: the minutes alone are as exact, only slower.
        if ph.len() + pd.len() > rollups::CHUNK {
            return minutes("");
        }
        let not_in = |v: &[(String, u64)]| {
            if v.is_empty() {
                String::new()
            } else {
                format!(" AND (agency, minute) NOT IN ({})", rollups::list(v))
            }
        };
        let or_in = |v: &[(String, u64)], step: u64| {
            if v.is_empty() {
                String::new()
            } else {
                format!(
                    " OR (agency, intDiv(minute, {step}) * {step}) IN ({})",
                    rollups::list(v)
                )
            }
        };
        let (hours_t, days_t) = if sites {
            (hours_s, days_s)
        } else {
            (hours_h, days_h)
        };
        // A pending day is read by its hours, a pending hour by its
        // minutes (a pending hour's day is pending too).
        let mut parts = Vec::with_capacity(3);
        if d0 < d1 {
            parts.push(format!(
                "SELECT {cols} FROM {} FINAL WHERE minute >= {d0} AND minute < {d1}{extra}{}",
                self.t(days_t),
                not_in(&pd)
            ));
        }
        parts.push(format!(
            "SELECT {cols} FROM {} FINAL WHERE minute >= {h0} AND minute < {h1}{extra} \
             AND (minute < {d0} OR minute >= {d1}{}){}",
            self.t(hours_t),
            or_in(&pd, day),
            not_in(&ph)
        ));
        parts.push(format!(
            "SELECT {cols} FROM {}",
            minutes(&format!(
                " AND (minute < {h0} OR minute >= {h1}{})",
                or_in(&ph, hour)
            ))
        ));
        format!("({})", parts.join(" UNION ALL "))
    }
}

/// First and last key of a network, as `ip_key`s.
fn net_keys(n: &Net) -> (String, String) {
    let (lo, hi) = n.blob_range();
    let k = |b: Vec<u8>| format!("{}{}", if b.len() == 4 { '4' } else { '6' }, hex::encode(b));
    (k(lo), k(hi))
}

fn in_net(col: &str, n: &Net) -> String {
    let (lo, hi) = net_keys(n);
    format!("({col} >= {} AND {col} <= {})", lit(&lo), lit(&hi))
}

/// `col` is `name` or a subdomain of it, ASCII case-insensitively (as
/// `search::site_matches`).
fn name_matches(col: &str, name: &str) -> String {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    let t = format!("lower(replaceRegexpOne({col}, '\\\\.+$', ''))");
    format!(
        "({t} = {} OR endsWith({t}, {}))",
        lit(&n),
        lit(&format!(".{n}"))
    )
}

fn agency_cond(col: &str, agency: Option<&str>) -> String {
    agency.map_or(String::new(), |a| format!(" AND {col} = {}", lit(a)))
}

#[derive(Deserialize)]
struct ScopeSum {
    agency: String,
    scope: u8,
    i: u64,
    o: u64,
}

#[derive(Deserialize)]
struct SiteSum {
    site: String,
    b: u64,
    f: u64,
    #[serde(default)]
    src: u8,
}

#[derive(Deserialize)]
struct AgencySum {
    agency: String,
    b: u64,
}

#[derive(Deserialize)]
struct Bucket {
    ts: u64,
    i: u64,
    o: u64,
    ii: u64,
    io: u64,
}

#[derive(Deserialize)]
struct Second {
    #[serde(default)]
    agency: String,
    ts: u64,
    i: u64,
    o: u64,
}

#[derive(Deserialize)]
struct HostSum {
    agency: String,
    unit: String,
    host: String,
    u: u64,
    d: u64,
    f: u64,
}

#[derive(Deserialize)]
struct UnitSum {
    unit: String,
    i: u64,
    o: u64,
    ii: u64,
    io: u64,
}

#[derive(Deserialize)]
struct BlockedIn {
    node: String,
    first_seen: u64,
    last_seen: u64,
    client: String,
    agency: String,
    unit: String,
    method: u8,
    target: String,
    server: Option<String>,
    port: Option<u16>,
    proto: String,
    rule: String,
    list: String,
    attempts: u32,
}

impl BlockedIn {
    fn row(self) -> Result<BlockedRow, StoreError> {
        const T: &str = "blocked";
        Ok(BlockedRow {
            node_id: self.node,
            attempt: BlockedAttempt {
                first_seen: self.first_seen,
                last_seen: self.last_seen,
                client: ip_from_key(&self.client, T)?,
                agency: self.agency,
                unit: self.unit,
                method: block_method_from(i64::from(self.method))?,
                target: self.target,
                server: self.server.map(|s| ip_from_key(&s, T)).transpose()?,
                port: self.port,
                proto: self.proto,
                rule: self.rule,
                list: self.list,
                attempts: self.attempts,
            },
        })
    }
}

const BLOCKED_COLS: &str = "node, first_seen, last_seen, client, agency, unit, method, target, \
                            server, port, proto, rule, list, attempts";

fn limit_or(n: usize, default: usize) -> usize {
    if n == 0 {
        default
    } else {
        n.min(MAX_BLOCKED)
    }
}

/// The filter's conditions on a flow state's columns, named with `p`
/// before them (`""` for a stored row, `"x_"` for a flow's latest state):
/// the range, the row conditions and the cursor.
fn state_conds(f: &FlowFilter, p: &str) -> String {
    let (from, to) = (f.from.saturating_mul(NS), f.to.saturating_mul(NS));
    let mut c = format!("{p}last_seen >= {from} AND {p}last_seen < {to}");
    if let Some(h) = f.host {
        let k = lit(&ip_key(h));
        c.push_str(&format!(" AND ({p}src_ip = {k} OR {p}dst_ip = {k})"));
    }
    if let Some(n) = &f.net {
        c.push_str(&format!(
            " AND ({} OR {})",
            in_net(&format!("{p}src_ip"), n),
            in_net(&format!("{p}dst_ip"), n)
        ));
    }
    if let Some(n) = &f.peer {
        c.push_str(&format!(" AND {}", in_net(&format!("{p}peer_ip"), n)));
    }
    if let Some(s) = &f.site {
        c.push_str(&format!(
            " AND isNotNull({p}site) AND {}",
            name_matches(&format!("assumeNotNull({p}site)"), s)
        ));
    }
    if let Some(u) = &f.unit {
        c.push_str(&format!(" AND {p}unit = {}", lit(u)));
    }
    if let Some(pr) = &f.proto {
        c.push_str(&format!(
            " AND lower({p}proto) = {}",
            lit(&pr.to_ascii_lowercase())
        ));
    }
    if let Some(cur) = &f.cursor {
        c.push_str(&format!(
            " AND {}",
            ranks(&sort_key(f.sort, p), "<", cur.key, &cur.flow)
        ));
    }
    c
}

/// Whether a row's (key, node, boot, flow id) is `op` ("<" or ">=") the
/// given one: the page order (`search::FlowId`), with tuples spelled out
/// for ClickHouse 18.16. Node ids compare as bytes, as in every store.
fn ranks(key: &str, op: &str, v: u64, flow: &FlowId) -> String {
    let strict = if op == "<" { "<" } else { ">" };
    format!(
        "({key} {strict} {v} OR ({key} = {v} AND (node {strict} {n} OR (node = {n} AND \
         (boot {strict} {b} OR (boot = {b} AND flow_id {op} {id}))))))",
        n = lit(&flow.node),
        b = flow.boot,
        id = flow.flow_id
    )
}

/// Page order after the sort key `key`.
fn identity_order(key: &str) -> String {
    format!("{key} DESC, node DESC, boot DESC, flow_id DESC")
}

/// The page order's key of a state.
fn sort_key(sort: FlowSort, p: &str) -> String {
    match sort {
        FlowSort::Time => format!("{p}last_seen"),
        FlowSort::Bytes => format!("({p}bytes_up + {p}bytes_down)"),
    }
}

#[derive(Deserialize)]
struct Threshold {
    k: u64,
    node: String,
    boot: u64,
    flow_id: u64,
}

impl Threshold {
    /// The condition on a flow's latest state (key `xkey`) to rank at or
    /// above this row.
    fn above(&self, xkey: &str) -> String {
        let flow = FlowId {
            node: self.node.clone(),
            boot: self.boot,
            flow_id: self.flow_id,
        };
        format!(" AND {}", ranks(xkey, ">=", self.k, &flow))
    }
}

/// Candidate rows a page starts from: at least this many, eight times more
/// each round that finds too few.
const FIRST_CANDIDATES: usize = 256;
/// The newest page's first window (then 80 ms, 640 ms, …): a busy
/// collector has `k` rows in it, a quiet one takes a few more short reads.
const FIRST_WINDOW_NS: u64 = 10_000_000;

impl ChReader {
    /// The first `want` flows in page order (after the cursor) whose latest
    /// state passes the filter.
    ///
    /// A flow is its latest row, so it is found among the stored rows
    /// that pass the filter themselves, ranked by the page key: take the
    /// first `k` such rows (a short read of a few columns, no grouping),
    /// then the latest state of just their flows (through the key index).
    /// A flow whose latest state ranks at or above the `k`-th row has that
    /// latest row among the `k`, so every flow ranking there is found; if
    /// `want` of them pass, they are the answer, else `k` grows until the
    /// rows run out.
    fn flow_rows(&self, f: &FlowFilter, want: usize) -> Result<Vec<(u64, FlowRow)>, StoreError> {
        if !has_row_conditions(f) {
            return match f.sort {
                FlowSort::Time => self.newest_rows(f, want),
                FlowSort::Bytes => self.biggest_rows(f, want),
            };
        }
        let key = sort_key(f.sort, "");
        let ranked = format!(
            "FROM {} WHERE {}{} ORDER BY {}",
            self.t("flow_records"),
            state_conds(f, ""),
            agency_cond("agency", f.agency.as_deref()),
            identity_order(&key)
        );
        self.ranked_rows(f, want, &key, &ranked)
    }

    /// `flow_rows` by bytes with no condition beyond time and agency (the
    /// biggest flows of a range): the candidates are ranked from
    /// `flow_index`, five narrow columns, not from every column of the
    /// range's `flow_records`.
    fn biggest_rows(&self, f: &FlowFilter, want: usize) -> Result<Vec<(u64, FlowRow)>, StoreError> {
        let mut conds = format!(
            "last_seen >= {} AND last_seen < {}{}",
            f.from.saturating_mul(NS),
            f.to.saturating_mul(NS),
            agency_cond("agency", f.agency.as_deref())
        );
        if let Some(c) = &f.cursor {
            conds.push_str(&format!(" AND {}", ranks("bytes", "<", c.key, &c.flow)));
        }
        let ranked = format!(
            "FROM {} WHERE {conds} ORDER BY {}",
            self.t("flow_index"),
            identity_order("bytes")
        );
        self.ranked_rows(f, want, "bytes", &ranked)
    }

    /// The first `want` flows of `ranked` (`FROM … WHERE … ORDER BY …`,
    /// rows passing the filter in page order, `key` their sort key) whose
    /// latest state passes the filter.
    fn ranked_rows(
        &self,
        f: &FlowFilter,
        want: usize,
        key: &str,
        ranked: &str,
    ) -> Result<Vec<(u64, FlowRow)>, StoreError> {
        let xkey = sort_key(f.sort, "x_");
        let mut k = want.saturating_mul(2).max(FIRST_CANDIDATES);
        loop {
            let threshold = self.kth(key, ranked, k)?;
            let above = threshold.as_ref().map(|t| t.above(&xkey));
            let rows = self.latest_of(f, ranked, k, above.as_deref().unwrap_or(""), want)?;
            if rows.len() >= want || threshold.is_none() {
                return Ok(rows);
            }
            k = k.saturating_mul(8);
        }
    }

    /// `flow_rows` for the newest flows with no condition beyond time and
    /// agency (the flows page as it opens): the candidates come from
    /// `flow_index`, sorted by time, in windows back from the range's end
    /// (or the cursor), eight times longer each until one holds `k` rows,
    /// so a page reads the last rows of the range, not all of them. With
    /// `k` rows in the window they are the range's newest `k`; a flow
    /// ranking at or above the `k`-th is then found as in `flow_rows`.
    /// The window bounds the key's range, so the read still goes by the
    /// table's sort key; ordering its rows by identity too costs a sort of
    /// the window only.
    fn newest_rows(&self, f: &FlowFilter, want: usize) -> Result<Vec<(u64, FlowRow)>, StoreError> {
        let ft = self.t("flow_index");
        let mut agency = agency_cond("agency", f.agency.as_deref());
        let (from, mut end) = (f.from.saturating_mul(NS), f.to.saturating_mul(NS));
        if let Some(c) = &f.cursor {
            end = end.min(c.key.saturating_add(1));
            agency.push_str(&format!(" AND {}", ranks("last_seen", "<", c.key, &c.flow)));
        }
        let mut k = want.saturating_mul(2).max(FIRST_CANDIDATES);
        let mut w = FIRST_WINDOW_NS;
        loop {
            let start = end.saturating_sub(w).max(from);
            let ranked = format!(
                "FROM {ft} WHERE last_seen >= {start} AND last_seen < {end}{agency} \
                 ORDER BY {}",
                identity_order("last_seen")
            );
            let threshold = self.kth("last_seen", &ranked, k)?;
            if threshold.is_none() && start > from {
                w = w.saturating_mul(8);
                continue;
            }
            let above = threshold.as_ref().map(|t| t.above("x_last_seen"));
            let rows = self.latest_of(f, &ranked, k, above.as_deref().unwrap_or(""), want)?;
            if rows.len() >= want || threshold.is_none() {
                return Ok(rows);
            }
            k = k.saturating_mul(8);
        }
    }

    /// The `k`-th row of `ranked` (`FROM … ORDER BY …`, `key` its sort
    /// key): None when it has fewer.
    fn kth(&self, key: &str, ranked: &str, k: usize) -> Result<Option<Threshold>, StoreError> {
        Ok(self
            .rows(&format!(
                "SELECT {key} AS k, node, boot, flow_id {ranked} LIMIT {}, 1",
                k - 1
            ))?
            .pop())
    }

    /// The latest state of the flows of the first `k` rows of `ranked`
    /// (`FROM … ORDER BY …`), those passing the filter and `above`, in page
    /// order, at most `want`, each with its boot.
    fn latest_of(
        &self,
        f: &FlowFilter,
        ranked: &str,
        k: usize,
        above: &str,
        want: usize,
    ) -> Result<Vec<(u64, FlowRow)>, StoreError> {
        let xkey = sort_key(f.sort, "x_");
        let sql = format!(
            "SELECT {} FROM {} PREWHERE (node, boot, flow_id) IN \
             (SELECT node, boot, flow_id {ranked} LIMIT {k}) \
             WHERE 1{} GROUP BY node, boot, flow_id HAVING {}{above} \
             ORDER BY {} LIMIT {want}",
            latest_select(),
            self.t("flow_records"),
            agency_cond("agency", f.agency.as_deref()),
            state_conds(f, "x_"),
            identity_order(&xkey),
        );
        let rows: Vec<StateRow> = self.rows(&sql)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let boot = r.boot;
            let (node_id, _, record) = r.record()?;
            if row_matches(f, &record) {
                out.push((boot, FlowRow { node_id, record }));
            }
        }
        Ok(out)
    }

    fn host_sums(
        &self,
        agency: Option<&str>,
        unit: Option<&str>,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopHost>, StoreError> {
        let from = from / 60 * 60;
        let unit = unit.map_or(String::new(), |u| format!(" AND unit = {}", lit(u)));
        let extra = format!("{}{unit}", agency_cond("agency", agency));
        let rows: Vec<HostSum> = self.rows(&format!(
            "SELECT agency, unit, host, sum(bytes_up) AS u, sum(bytes_down) AS d, \
             sum(flows) AS f FROM {} \
             GROUP BY agency, unit, host ORDER BY u + d DESC, host ASC LIMIT {}",
            self.top_src_long(
                false,
                "agency, unit, host, bytes_up, bytes_down, flows",
                &extra,
                (from, to),
                agency
            ),
            limit.min(1000)
        ))?;
        rows.into_iter()
            .map(|r| {
                Ok(TopHost {
                    host: ip_from_key(&r.host, "top_hosts_1m")?.to_string(),
                    agency: r.agency,
                    unit: r.unit,
                    bytes_up: r.u,
                    bytes_down: r.d,
                    flows: r.f,
                })
            })
            .collect()
    }

    fn blocked_where(&self, f: &BlockedFilter) -> String {
        let mut w = format!(
            "last_seen >= {} AND last_seen < {}",
            f.from.saturating_mul(NS),
            f.to.saturating_mul(NS)
        );
        w.push_str(&agency_cond("agency", f.agency.as_deref()));
        if let Some(n) = &f.node {
            w.push_str(&format!(" AND node = {}", lit(n)));
        }
        if let Some(m) = f.method {
            w.push_str(&format!(" AND method = {}", block_method_code(m)));
        }
        w
    }
}

impl FlowReader for ChReader {
    fn check(&self) -> Result<(), StoreError> {
        let v = schema::version(&self.s.client, &self.s.db)?;
        if v > schema::VERSION {
            return Err(StoreError::SchemaTooNew {
                found: v as i64,
                supported: schema::VERSION as i64,
            });
        }
        Ok(())
    }

    fn dropped_records(&self) -> Result<HashMap<String, u64>, StoreError> {
        #[derive(Deserialize)]
        struct Boot {
            node: String,
            n: u64,
        }
        // A boot's newest mark holds its whole count (the counts only grow
        // with the marks), so the largest is the boot's figure, merged or
        // not.
        let boots: Vec<Boot> = self.rows(&format!(
            "SELECT node, max(dropped_records) AS n FROM {} GROUP BY node, boot",
            self.t("streams")
        ))?;
        let mut out: HashMap<String, u64> = HashMap::new();
        for b in boots {
            let sum = out.entry(b.node).or_default();
            *sum = sum.saturating_add(b.n);
        }
        Ok(out)
    }

    fn traffic(&self, now: SystemTime, window_secs: u32) -> Result<Traffic, StoreError> {
        let end = secs(now);
        let start = end.saturating_sub(u64::from(window_secs.max(1)));
        let u1s = self.t("usage_1s");
        let mut t = Traffic::default();
        for r in self.rows::<ScopeSum>(&format!(
            "SELECT agency, scope, sum(bytes_in) AS i, sum(bytes_out) AS o FROM {u1s} FINAL \
             WHERE ts >= {start} AND ts < {end} GROUP BY agency, scope"
        ))? {
            let a = t.agencies.entry(r.agency).or_default();
            let at = if r.scope == 0 { 0 } else { 2 };
            a[at] += r.i;
            a[at + 1] += r.o;
        }
        let first_minute = (end / 60 * 60).saturating_sub(14 * 60);
        t.top_sites = self
            .rows::<SiteSum>(&format!(
                "SELECT site, sum(bytes) AS b, sum(flows) AS f FROM {} GROUP BY site \
                 ORDER BY b DESC, site ASC LIMIT 10",
                self.top_src(
                    true,
                    "site, bytes, flows",
                    &format!("minute >= {first_minute} AND minute <= {end}"),
                    (first_minute, end + 1),
                    None
                )
            ))?
            .into_iter()
            .map(|r| OverviewSite {
                site: r.site,
                bytes: r.b,
                flows: r.f,
            })
            .collect();
        // Whole minutes: the folded minutes hold the same sums as the
        // seconds at a sixtieth of the rows (at 500 agents, 3.6 M seconds
        // in 15 minutes against 60 k minutes).
        let last_minute_end = end / 60 * 60 + 60;
        let mut agencies: Vec<TopAgency> = self
            .rows::<AgencySum>(&format!(
                "SELECT agency, sum(bytes_in + bytes_out) AS b FROM {} GROUP BY agency",
                self.usage_src(
                    Step::Minute,
                    "agency, bytes_in, bytes_out",
                    &format!("ts >= {first_minute} AND ts < {last_minute_end}"),
                    (first_minute, last_minute_end),
                    None
                )
            ))?
            .into_iter()
            .map(|r| TopAgency {
                code: r.agency,
                bytes: r.b,
            })
            .collect();
        agencies.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.code.cmp(&b.code)));
        t.top_agencies = agencies;
        Ok(t)
    }

    fn usage(
        &self,
        agency: &str,
        from: u64,
        to: u64,
        step: Step,
    ) -> Result<UsageSeries, StoreError> {
        let s = step.secs();
        let from = from / s * s;
        let to = to.saturating_add(s - 1) / s * s;
        let to = to.max(from);
        let a = lit(agency);
        let buckets: Vec<Bucket> = self.rows(&format!(
            "SELECT ts, sum(bytes_in) AS i, sum(bytes_out) AS o, \
             sumIf(bytes_in, scope = 0) AS ii, sumIf(bytes_out, scope = 0) AS io \
             FROM {} GROUP BY ts HAVING i + o > 0 ORDER BY ts LIMIT {}",
            self.usage_src(
                step,
                "ts, scope, bytes_in, bytes_out",
                &format!("agency = {a} AND ts >= {from} AND ts < {to}"),
                (from, to),
                Some(agency)
            ),
            MAX_USAGE_STEPS + 1
        ))?;
        peaks::check_points(buckets.len())?;
        // The 1 s step's peaks are its seconds; the others' are kept per
        // step (`peaks.rs`), as long as the step's rollup.
        let steps = if step == Step::Second {
            let seconds: Vec<Second> = self.rows(&format!(
                "SELECT ts, sum(bytes_in) AS i, sum(bytes_out) AS o FROM {} FINAL \
                 WHERE agency = {a} AND ts >= {from} AND ts < {to} GROUP BY ts LIMIT {}",
                self.t("usage_1s"),
                MAX_USAGE_STEPS + 1
            ))?;
            peaks::from_seconds(seconds.into_iter().map(|x| (x.ts as i64, [x.i, x.o])), 1)
        } else {
            super::peaks::read_steps(
                &self.s.client,
                &self.s.db,
                agency,
                (from, to),
                s,
                MAX_USAGE_STEPS + 1,
            )?
        };
        let (mut tin, mut tout) = (0, 0);
        let mut points = Vec::with_capacity(buckets.len());
        let mut point_ts = Vec::with_capacity(buckets.len());
        for b in buckets {
            tin += b.i;
            tout += b.o;
            points.push(UsagePoint {
                ts: rfc_s(b.ts as i64),
                bytes_in: b.i,
                bytes_out: b.o,
                in_bps: b.i as f64 * 8.0 / s as f64,
                out_bps: b.o as f64 * 8.0 / s as f64,
                internet_bytes_in: b.ii,
                internet_bytes_out: b.io,
                peak_in_bps: None,
                peak_out_bps: None,
                p95_in_bps: None,
                p95_out_bps: None,
            });
            point_ts.push(b.ts as i64);
        }
        let now = secs(SystemTime::now()) as i64 + 1;
        let (peaks, sketches) = peaks::apply(
            &mut points,
            &point_ts,
            steps,
            (from as i64, to as i64, s as i64),
            now,
        );
        Ok(UsageSeries {
            agency: agency.to_string(),
            step_secs: s,
            from: rfc_s(from as i64),
            to: rfc_s(to as i64),
            points,
            total_bytes_in: tin,
            total_bytes_out: tout,
            peaks,
            sketches,
        })
    }

    fn usage_series_since(
        &self,
        since_sec: u64,
    ) -> Result<HashMap<String, Vec<SeriesPoint>>, StoreError> {
        let rows: Vec<Second> = self.rows(&format!(
            "SELECT agency, ts, sum(bytes_in) AS i, sum(bytes_out) AS o FROM {} FINAL \
             WHERE ts >= {since_sec} GROUP BY agency, ts ORDER BY agency, ts",
            self.t("usage_1s")
        ))?;
        let mut out: HashMap<String, Vec<SeriesPoint>> = HashMap::new();
        for r in rows {
            out.entry(r.agency).or_default().push(SeriesPoint {
                ts: rfc_s(r.ts as i64),
                in_bps: r.i * 8,
                out_bps: r.o * 8,
            });
        }
        Ok(out)
    }

    fn top_hosts(
        &self,
        agency: Option<&str>,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopHost>, StoreError> {
        self.host_sums(agency, None, from, to, limit)
    }

    fn top_sites(
        &self,
        agency: Option<&str>,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopSite>, StoreError> {
        let from = from / 60 * 60;
        let rows: Vec<SiteSum> = self.rows(&format!(
            "SELECT site, sum(bytes) AS b, sum(flows) AS f, min(source) AS src FROM {} \
             GROUP BY site ORDER BY b DESC, site ASC LIMIT {}",
            self.top_src_long(
                true,
                "site, bytes, flows, source",
                &agency_cond("agency", agency),
                (from, to),
                agency
            ),
            limit.min(1000)
        ))?;
        rows.into_iter()
            .map(|r| {
                Ok(TopSite {
                    site: r.site,
                    bytes: r.b,
                    flows: r.f,
                    site_source: match r.src {
                        NO_SOURCE => None,
                        c => Some(site_source_from(i64::from(c))?),
                    },
                })
            })
            .collect()
    }

    fn flows(&self, f: &FlowFilter) -> Result<Vec<FlowRow>, StoreError> {
        Ok(self.flow_page(f)?.rows)
    }

    fn flow_page(&self, f: &FlowFilter) -> Result<FlowPage, StoreError> {
        if let Some(c) = &f.cursor {
            if c.sort != f.sort {
                return Err(StoreError::Invalid {
                    what: "cursor",
                    value: c.encode(),
                    reason: "belongs to another sort order: start again without it",
                });
            }
        }
        let want = crate::store::search::page_limit(f) + 1;
        let mut top = TopRows::new(f);
        for (boot, row) in self.flow_rows(f, want)? {
            top.offer(boot, row);
        }
        Ok(top.page())
    }

    fn investigate(&self, f: &FlowFilter, top: usize) -> Result<Investigation, StoreError> {
        let all = FlowFilter {
            sort: FlowSort::Time,
            cursor: None,
            ..f.clone()
        };
        let rows = self.flow_rows(&all, MAX_INVESTIGATE_SCAN as usize + 1)?;
        let complete = rows.len() as u64 <= MAX_INVESTIGATE_SCAN;
        let mut tally = Tally::default();
        for (_, r) in rows.iter().take(MAX_INVESTIGATE_SCAN as usize) {
            tally.scanned += 1;
            tally.add(&r.record);
        }
        Ok(tally.finish(complete, top))
    }

    fn unit_usage(
        &self,
        agency: &str,
        from: u64,
        to: u64,
        step: Step,
    ) -> Result<Vec<UnitUsage>, StoreError> {
        let s = step.secs();
        let (from, to) = (from / s * s, to.div_ceil(s) * s);
        let rows: Vec<UnitSum> = self.rows(&format!(
            "SELECT unit, sum(bytes_in) AS i, sum(bytes_out) AS o, \
             sumIf(bytes_in, scope = 0) AS ii, sumIf(bytes_out, scope = 0) AS io \
             FROM {} GROUP BY unit",
            self.usage_src(
                step,
                "unit, scope, bytes_in, bytes_out",
                &format!("agency = {} AND ts >= {from} AND ts < {to}", lit(agency)),
                (from, to),
                Some(agency)
            )
        ))?;
        let mut out: Vec<UnitUsage> = rows
            .into_iter()
            .map(|r| UnitUsage {
                unit: r.unit,
                bytes_in: r.i,
                bytes_out: r.o,
                internet_bytes_in: r.ii,
                internet_bytes_out: r.io,
            })
            .collect();
        UnitUsage::sort(&mut out);
        Ok(out)
    }

    fn unit_hosts(
        &self,
        agency: &str,
        unit: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopHost>, StoreError> {
        self.host_sums(Some(agency), Some(unit), from, to, limit)
    }

    fn blocked_matching(
        &self,
        from: u64,
        to: u64,
        agency: Option<&str>,
        m: &BlockedMatch,
        limit: usize,
    ) -> Result<Vec<BlockedRow>, StoreError> {
        let mut w = self.blocked_where(&BlockedFilter {
            from,
            to,
            agency: agency.map(str::to_string),
            ..BlockedFilter::default()
        });
        if let Some(n) = &m.client {
            w.push_str(&format!(" AND {}", in_net("client", n)));
        }
        if let Some(t) = &m.target {
            w.push_str(&format!(" AND {}", name_matches("target", t)));
        }
        if let Some(u) = &m.unit {
            w.push_str(&format!(" AND unit = {}", lit(u)));
        }
        let rows: Vec<BlockedIn> = self.rows(&format!(
            "SELECT {BLOCKED_COLS} FROM {} FINAL WHERE {w} ORDER BY last_seen DESC LIMIT {}",
            self.t("blocked"),
            limit.min(MAX_BLOCKED)
        ))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let r = r.row()?;
            if m.matches(&r.attempt) {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn blocked(&self, f: &BlockedFilter) -> Result<Vec<BlockedRow>, StoreError> {
        let rows: Vec<BlockedIn> = self.rows(&format!(
            "SELECT {BLOCKED_COLS} FROM {} FINAL WHERE {} ORDER BY last_seen DESC LIMIT {}",
            self.t("blocked"),
            self.blocked_where(f),
            limit_or(f.limit, 100)
        ))?;
        rows.into_iter().map(BlockedIn::row).collect()
    }

    fn blocked_summary(&self, f: &BlockedFilter) -> Result<BlockedSummary, StoreError> {
        #[derive(Deserialize)]
        struct Totals {
            a: u64,
            r: u64,
        }
        #[derive(Deserialize)]
        struct Agency {
            agency: String,
            a: u64,
            c: u64,
        }
        #[derive(Deserialize)]
        struct Target {
            target: String,
            a: u64,
            c: u64,
            m: u8,
            ru: String,
            li: String,
            ls: u64,
        }
        #[derive(Deserialize)]
        struct Client {
            agency: String,
            client: String,
            a: u64,
            t: u64,
            u: String,
            ls: u64,
        }
        let n = limit_or(f.limit, 10);
        let from = format!(
            "{} FINAL WHERE {}",
            self.t("blocked"),
            self.blocked_where(f)
        );
        let totals: Vec<Totals> = self.rows(&format!(
            "SELECT toUInt64(sum(attempts)) AS a, count() AS r FROM {from}"
        ))?;
        let agencies: Vec<Agency> = self.rows(&format!(
            "SELECT agency, sum(attempts) AS a, uniqExact(client) AS c FROM {from} \
             GROUP BY agency ORDER BY a DESC, agency ASC"
        ))?;
        let targets: Vec<Target> = self.rows(&format!(
            "SELECT target, sum(attempts) AS a, uniqExact(client) AS c, \
             argMax(method, last_seen) AS m, argMax(rule, last_seen) AS ru, \
             argMax(list, last_seen) AS li, max(last_seen) AS ls FROM {from} \
             GROUP BY target ORDER BY a DESC, target ASC LIMIT {n}"
        ))?;
        let clients: Vec<Client> = self.rows(&format!(
            "SELECT agency, client, sum(attempts) AS a, uniqExact(target) AS t, \
             argMax(unit, last_seen) AS u, max(last_seen) AS ls FROM {from} \
             GROUP BY agency, client ORDER BY a DESC, agency ASC, client ASC LIMIT {n}"
        ))?;
        let rfc = |ns: u64| rfc_ns(i64::try_from(ns).unwrap_or(i64::MAX));
        let t = totals.first();
        Ok(BlockedSummary {
            from: rfc_s(f.from as i64),
            to: rfc_s(f.to as i64),
            attempts: t.map_or(0, |t| t.a),
            records: t.map_or(0, |t| t.r),
            agencies: agencies
                .into_iter()
                .map(|a| BlockedAgency {
                    agency: a.agency,
                    attempts: a.a,
                    clients: a.c,
                })
                .collect(),
            targets: targets
                .into_iter()
                .map(|x| {
                    Ok(BlockedTarget {
                        target: x.target,
                        attempts: x.a,
                        clients: x.c,
                        method: block_method_from(i64::from(x.m))?,
                        rule: x.ru,
                        list: x.li,
                        last_seen: rfc(x.ls),
                    })
                })
                .collect::<Result<_, StoreError>>()?,
            clients: clients
                .into_iter()
                .map(|x| {
                    Ok(BlockedClient {
                        client: ip_from_key(&x.client, "blocked")?.to_string(),
                        agency: x.agency,
                        unit: x.u,
                        attempts: x.a,
                        targets: x.t,
                        last_seen: rfc(x.ls),
                    })
                })
                .collect::<Result<_, StoreError>>()?,
        })
    }
}
