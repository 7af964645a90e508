//! Investigation routes: `/api/v1/flows` (filtered, sorted, paged by an
//! opaque cursor, CSV), `/api/v1/search` (an address, network, site, unit
//! or agency across a range) and `/api/v1/agencies/{code}/units` (the
//! drill-down's first step). An agency officer's reads are narrowed to
//! their agency on the server, whatever the query says.

use axum::extract::{Extension, Path, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::api::{
    bad, check_code, known_agency, optional_code, read, row_limit, time_range, ApiError, Q,
};
use crate::auth::Principal;
use crate::csv;
use crate::state::{now_secs, AppState};
use crate::store::{
    BlockedMatch, BlockedRow, FlowCursor, FlowFilter, FlowRow, FlowSort, Investigation, Net, Step,
    UnitUsage,
};

/// Rows a CSV export of flows holds at most: by time it streams page by
/// page; by bytes every page reads the whole range again.
pub const MAX_CSV_FLOWS: usize = 100_000;
pub const MAX_CSV_FLOWS_BY_BYTES: usize = 5_000;
/// The response header carrying the next page's cursor.
pub const NEXT_CURSOR: &str = "x-next-cursor";

/// Columns of a flow in CSV (`FlowRow` fields).
pub const FLOW_COLUMNS: &[&str] = &[
    "node_id",
    "agency",
    "unit",
    "first_seen",
    "last_seen",
    "proto",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "bytes_up",
    "bytes_down",
    "packets_up",
    "packets_down",
    "site",
    "site_source",
    "sni",
    "http_host",
    "dns_query",
    "scope",
    "kind",
    "end_reason",
    "flow_id",
    "vlan",
    "vlan_inner",
    "tcp_flags_up",
    "tcp_flags_down",
    "origin",
    "sampling_interval",
];

/// `/api/v1/flows` parameters.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FlowsQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub agency: Option<String>,
    pub unit: Option<String>,
    pub host: Option<String>,
    pub peer: Option<String>,
    pub site: Option<String>,
    pub proto: Option<String>,
    pub sort: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
    pub format: Option<String>,
}

/// `from`/`to` with the route's default, clipped to where flows can be:
/// none is kept longer than `storage.flow_retention_days` and none is
/// accepted dated more than a day ahead. "Everything" stays a valid
/// question (from=0), and no read spans more than the store holds; the
/// scan bounds of the store do the rest.
fn bounded_range(
    s: &AppState,
    from: Option<&str>,
    to: Option<&str>,
    default_secs: u64,
) -> Result<(u64, u64), ApiError> {
    let (from, to) = time_range(from, to, default_secs)?;
    let now = now_secs();
    let kept = u64::from(s.config.storage.flow_retention_days) * 86_400;
    let from = from.max(now.saturating_sub(kept + 86_400));
    let to = to.min(now + 86_400);
    // An empty range stays empty (from == to reads nothing).
    Ok((from.min(to), to))
}

fn net(name: &str, v: &str) -> Result<Net, ApiError> {
    Net::parse(v.trim()).map_err(|e| bad(format!("{name}: {e}")))
}

/// A site filter: a DNS name, lowercased, without its final dot.
fn site(v: &str) -> Result<String, ApiError> {
    let s = v.trim().trim_end_matches('.').to_ascii_lowercase();
    if s.is_empty()
        || s.len() > 253
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err(bad(format!("site: {v:?} is not a DNS name")));
    }
    Ok(s)
}

impl FlowsQuery {
    fn filter(&self, s: &AppState, p: &Principal) -> Result<FlowFilter, ApiError> {
        let (from, to) = bounded_range(s, self.from.as_deref(), self.to.as_deref(), 3600)?;
        let sort = match self.sort.as_deref() {
            None => FlowSort::Time,
            Some(s) => FlowSort::parse(s)
                .ok_or_else(|| bad(format!("sort: {s:?} is not time or bytes")))?,
        };
        let cursor = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(FlowCursor::parse(c).map_err(|e| bad(format!("cursor: {e}")))?),
        };
        if cursor.as_ref().is_some_and(|c| c.sort != sort) {
            return Err(bad(
                "cursor: it belongs to another sort order; start again without it",
            ));
        }
        let (host, net_f) = match self.host.as_deref() {
            None => (None, None),
            Some(h) => {
                let n = net("host", h)?;
                if n.is_host() {
                    (
                        Some(
                            h.trim()
                                .parse()
                                .map_err(|_| bad("host: not an IP address"))?,
                        ),
                        None,
                    )
                } else {
                    (None, Some(n))
                }
            }
        };
        if let Some(u) = &self.unit {
            check_code("unit", u)?;
        }
        if let Some(pr) = &self.proto {
            if pr.is_empty() || pr.len() > 16 || !pr.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad(format!(
                    "proto: {pr:?} is not a protocol name or number"
                )));
            }
        }
        Ok(FlowFilter {
            from,
            to,
            agency: p.scope(optional_code("agency", self.agency.as_ref())?)?,
            host,
            net: net_f,
            peer: self.peer.as_deref().map(|v| net("peer", v)).transpose()?,
            site: self.site.as_deref().map(site).transpose()?,
            unit: self.unit.clone(),
            proto: self.proto.as_ref().map(|p| p.to_ascii_lowercase()),
            sort,
            cursor,
            limit: 0,
        })
    }
}

/// Flows newest first (or by bytes), one page; the next page's cursor is
/// in the `x-next-cursor` header. `format=csv` streams every page up to
/// `limit` rows (default and cap 100 000; 5 000 by bytes).
pub async fn flows(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(q): Q<FlowsQuery>,
) -> Result<Response, ApiError> {
    let mut filter = q.filter(&s, &p)?;
    if csv::wanted(q.format.as_deref())? {
        let cap = match filter.sort {
            FlowSort::Time => MAX_CSV_FLOWS,
            FlowSort::Bytes => MAX_CSV_FLOWS_BY_BYTES,
        };
        let total = row_limit(q.limit, cap, cap)?;
        return flows_csv(s, filter, total).await;
    }
    filter.limit = row_limit(q.limit, 100, 1000)?;
    let page = read(&s, move |_, r| r.flow_page(&filter)).await?;
    let mut resp = Json(s.netflow.annotate(&page.rows)).into_response();
    if let Some(next) = page.next {
        if let Ok(v) = HeaderValue::from_str(&next) {
            resp.headers_mut().insert(NEXT_CURSOR, v);
        }
    }
    Ok(resp)
}

/// Page through the flows on a blocking thread, sending each page's lines
/// as it is read: memory stays one page whatever the export's size. The
/// first page is read before answering, so a bad query is still a 400.
async fn flows_csv(
    s: AppState,
    mut filter: FlowFilter,
    total: usize,
) -> Result<Response, ApiError> {
    filter.limit = total.min(1000);
    let first = {
        let f = filter.clone();
        read(&s, move |_, r| r.flow_page(&f)).await?
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(2);
    tokio::task::spawn_blocking(move || {
        let mut page = first;
        let mut sent = 0usize;
        let mut out = String::from(csv::BOM);
        out.push_str(&csv::header(FLOW_COLUMNS));
        loop {
            for row in &s.netflow.annotate(&page.rows) {
                out.push_str(&csv::line(row, FLOW_COLUMNS));
            }
            sent += page.rows.len();
            if tx.blocking_send(Ok(std::mem::take(&mut out))).is_err() {
                return; // the client went away
            }
            let Some(next) = page.next.as_deref().and_then(FlowCursor::decode) else {
                return;
            };
            if sent >= total {
                return;
            }
            filter.cursor = Some(next);
            filter.limit = (total - sent).min(1000);
            let got = s.flows.reader().and_then(|r| r.flow_page(&filter));
            match got {
                Ok(p) => page = p,
                Err(e) => {
                    tracing::warn!(error = %e, "flow CSV export stopped");
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok(csv::response(
        "simpul-flows",
        axum::body::Body::from_stream(stream),
    ))
}

/// `/api/v1/search` parameters.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub q: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Rows per list: the summary's top lists and the blocked attempts.
    pub limit: Option<usize>,
    /// `csv`: one of the lists (`part`) for a spreadsheet.
    pub format: Option<String>,
    /// With `format=csv`: units, hosts, peers, sites or blocked.
    pub part: Option<String>,
}

/// A search's list exported as CSV, with its columns (the JSON's fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Units,
    Hosts,
    Peers,
    Sites,
    Blocked,
}

impl Part {
    const NAMES: &'static str = "units, hosts, peers, sites or blocked";

    fn parse(v: &str) -> Result<Self, ApiError> {
        Ok(match v {
            "units" => Part::Units,
            "hosts" => Part::Hosts,
            "peers" => Part::Peers,
            "sites" => Part::Sites,
            "blocked" => Part::Blocked,
            "flows" => {
                return Err(bad(
                    "part: flows are exported by /api/v1/flows?format=csv with the search's flows_filter",
                ))
            }
            other => return Err(bad(format!("part: {other:?} is not {}", Self::NAMES))),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Part::Units => "units",
            Part::Hosts => "hosts",
            Part::Peers => "peers",
            Part::Sites => "sites",
            Part::Blocked => "blocked",
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            Part::Units => &["agency", "unit", "bytes", "flows"],
            Part::Hosts => HOST_COLUMNS,
            Part::Peers => &["peer", "site", "bytes_up", "bytes_down", "flows"],
            Part::Sites => &["site", "bytes", "flows"],
            Part::Blocked => crate::api::BLOCKED_COLUMNS,
        }
    }

    /// The list of a search's answer, as CSV.
    fn csv(self, r: &SearchResult) -> String {
        let cols = self.columns();
        // No summary (a query naming several agencies, or none): no rows.
        let s = r.summary.as_ref();
        match self {
            Part::Units => csv::table(s.map_or(&[][..], |s| &s.units[..]), cols),
            Part::Hosts => csv::table(s.map_or(&[][..], |s| &s.hosts[..]), cols),
            Part::Peers => csv::table(s.map_or(&[][..], |s| &s.peers[..]), cols),
            Part::Sites => csv::table(s.map_or(&[][..], |s| &s.sites[..]), cols),
            Part::Blocked => csv::table(&r.blocked, cols),
        }
    }
}

/// An agency or unit of the inventory a query named.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NameMatch {
    pub agency: String,
    pub agency_name: String,
    pub unit: Option<String>,
    pub unit_name: Option<String>,
}

/// What a search found.
#[derive(Debug, Serialize)]
pub struct SearchResult {
    pub q: String,
    /// address, network, site, unit, agency, or names (several or no
    /// agencies and units matched: pick one of `matches`).
    pub kind: &'static str,
    pub from: String,
    pub to: String,
    /// Agencies and units named by the query; for an address or network,
    /// the units whose subnets hold it.
    pub matches: Vec<NameMatch>,
    /// The `/api/v1/flows` parameters that page through these flows.
    pub flows_filter: serde_json::Map<String, serde_json::Value>,
    pub summary: Option<Investigation>,
    /// The newest 50 flows, and the cursor of the next page.
    pub flows: Vec<FlowRow>,
    pub next_cursor: Option<String>,
    /// Blocked attempts of the address, network, site or unit (newest 100).
    pub blocked: Vec<BlockedRow>,
}

/// Top entries of each list of a search's summary, and blocked attempts
/// (unless `limit` says otherwise; a CSV holds the most by default).
const SEARCH_TOP: usize = 20;
const SEARCH_FLOWS: usize = 50;
const SEARCH_BLOCKED: usize = 100;
/// The most rows of a list `limit` may ask for (JSON or CSV).
pub const MAX_SEARCH_LIST: usize = 1000;

/// A search; with `format=csv` one of its lists (`part`), as a download
/// named after the query and the range.
pub async fn search(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(q): Q<SearchQuery>,
) -> Result<Response, ApiError> {
    let part = if csv::wanted(q.format.as_deref())? {
        let name = q
            .part
            .as_deref()
            .ok_or_else(|| bad(format!("part: say which list to export: {}", Part::NAMES)))?;
        Some(Part::parse(name)?)
    } else {
        if q.part.is_some() {
            return Err(bad("part: only with format=csv"));
        }
        None
    };
    let (top, blocked_rows) = match (q.limit, part) {
        (None, Some(_)) => (
            MAX_SEARCH_LIST,
            MAX_SEARCH_LIST.min(crate::store::MAX_BLOCKED),
        ),
        (None, None) => (SEARCH_TOP, SEARCH_BLOCKED),
        (n, _) => {
            let n = row_limit(n, SEARCH_TOP, MAX_SEARCH_LIST)?;
            (n, n.min(crate::store::MAX_BLOCKED))
        }
    };
    let result = search_result(&s, &p, &q, top, blocked_rows).await?;
    match part {
        Some(part) => {
            let (from, to) = (parse_rfc(&result.from), parse_rfc(&result.to));
            let name = csv::range_name(&["search", part.name(), &result.q], from, to);
            Ok(csv::response(&name, part.csv(&result)))
        }
        None => {
            // Each flow says where it came from (agent or exporter, sampling).
            let mut v = serde_json::to_value(&result).map_err(|e| {
                crate::api::ApiError(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    format!("search result: {e}"),
                )
            })?;
            if let Some(flows) = v.get_mut("flows") {
                s.netflow.annotate_json(&result.flows, flows);
            }
            Ok(Json(v).into_response())
        }
    }
}

fn parse_rfc(v: &str) -> u64 {
    simpul_proto::time_format::parse_rfc3339(v).map_or(0, |ns| ns / 1_000_000_000)
}

async fn search_result(
    s: &AppState,
    p: &Principal,
    q: &SearchQuery,
    top: usize,
    blocked_limit: usize,
) -> Result<SearchResult, ApiError> {
    let text = q.q.as_deref().unwrap_or("").trim().to_string();
    if text.len() > 253 || text.chars().any(char::is_control) {
        return Err(bad(
            "q: longer than 253 characters or holds control characters",
        ));
    }
    let (from, to) = bounded_range(s, q.from.as_deref(), q.to.as_deref(), 24 * 3600)?;
    let own = p.scope(None)?;
    let inv = s.inventory.current();
    let visible = |code: &str| own.as_deref().is_none_or(|o| o == code);

    let mut filter = FlowFilter {
        from,
        to,
        agency: own.clone(),
        ..FlowFilter::default()
    };
    let mut blocked = BlockedMatch::default();
    let mut fparams = serde_json::Map::new();
    let mut matches = Vec::new();
    let (ip_part, has_slash) = match text.split_once('/') {
        Some((a, _)) => (a, true),
        None => (text.as_str(), false),
    };
    let kind = if text.is_empty() {
        "none"
    } else if let Ok(n) = Net::parse(&text) {
        if n.is_host() {
            filter.host = text.parse().ok();
        } else {
            filter.net = Some(n);
        }
        blocked.client = Some(n);
        fparams.insert("host".into(), n.to_string().into());
        for a in inv.agencies.iter().filter(|a| visible(&a.code)) {
            for u in &a.units {
                let holds = u.subnets.iter().any(|sn| {
                    Net::parse(sn).is_ok_and(|sn| sn.contains(n.addr()) || n.contains(sn.addr()))
                });
                if holds {
                    matches.push(unit_match(a, u));
                }
            }
        }
        if n.is_host() {
            "address"
        } else {
            "network"
        }
    } else if has_slash && ip_part.parse::<std::net::IpAddr>().is_ok() {
        // An address with a prefix that does not parse: say why.
        return Err(net("q", &text)
            .err()
            .unwrap_or_else(|| bad("q: not a network")));
    } else {
        matches = name_matches(&inv, &text, &visible);
        let looks_like_site = text.contains('.') && site(&text).is_ok();
        if looks_like_site && !matches.iter().any(|m| exact(m, &text)) {
            let st = site(&text)?;
            filter.site = Some(st.clone());
            blocked.target = Some(st.clone());
            fparams.insert("site".into(), st.into());
            "site"
        } else if matches.len() == 1 {
            let m = matches[0].clone();
            filter.agency = Some(m.agency.clone());
            fparams.insert("agency".into(), m.agency.clone().into());
            if let Some(u) = &m.unit {
                filter.unit = Some(u.clone());
                blocked.unit = Some(u.clone());
                fparams.insert("unit".into(), u.clone().into());
                "unit"
            } else {
                "agency"
            }
        } else {
            "names"
        }
    };
    let (summary, page, blocked_rows) = if kind == "names" || kind == "none" {
        (None, None, Vec::new())
    } else {
        let (f, b, agency) = (filter.clone(), blocked.clone(), filter.agency.clone());
        let got = read(s, move |_, r| {
            let summary = r.investigate(&f, top)?;
            let page = r.flow_page(&FlowFilter {
                limit: SEARCH_FLOWS,
                ..f.clone()
            })?;
            let blocked = r.blocked_matching(f.from, f.to, agency.as_deref(), &b, blocked_limit)?;
            Ok((summary, page, blocked))
        })
        .await?;
        (Some(got.0), Some(got.1), got.2)
    };
    let (flows, next_cursor) = match page {
        Some(p) => (p.rows, p.next),
        None => (Vec::new(), None),
    };
    Ok(SearchResult {
        q: text,
        kind,
        from: rfc(from),
        to: rfc(to),
        matches,
        flows_filter: fparams,
        summary,
        flows,
        next_cursor,
        blocked: blocked_rows,
    })
}

fn rfc(secs: u64) -> String {
    simpul_proto::time_format::rfc3339(secs.saturating_mul(1_000_000_000))
}

fn unit_match(a: &simpul_proto::inventory::Agency, u: &simpul_proto::inventory::Unit) -> NameMatch {
    NameMatch {
        agency: a.code.clone(),
        agency_name: a.name.clone(),
        unit: Some(u.code.clone()),
        unit_name: Some(u.name.clone()),
    }
}

/// The query names this match exactly: "agency", "agency/unit", a code or
/// a name (ASCII case-insensitive).
fn exact(m: &NameMatch, q: &str) -> bool {
    let eq = |a: &str| a.eq_ignore_ascii_case(q);
    match &m.unit {
        None => eq(&m.agency) || eq(&m.agency_name),
        Some(u) => {
            eq(&format!("{}/{}", m.agency, u)) || m.unit_name.as_deref().is_some_and(eq) || eq(u)
        }
    }
}

/// Agencies and units whose code or name holds the query; an exact match
/// (see [`exact`]) hides the others. At most 50.
fn name_matches(
    inv: &simpul_proto::inventory::Inventory,
    q: &str,
    visible: &dyn Fn(&str) -> bool,
) -> Vec<NameMatch> {
    let lq = q.to_lowercase();
    let holds = |s: &str| s.to_lowercase().contains(&lq);
    let mut all = Vec::new();
    for a in inv.agencies.iter().filter(|a| visible(&a.code)) {
        if holds(&a.code) || holds(&a.name) {
            all.push(NameMatch {
                agency: a.code.clone(),
                agency_name: a.name.clone(),
                unit: None,
                unit_name: None,
            });
        }
        for u in &a.units {
            let path = format!("{}/{}", a.code, u.code);
            if holds(&u.code) || holds(&u.name) || path.eq_ignore_ascii_case(q) {
                all.push(unit_match(a, u));
            }
        }
    }
    let exacts: Vec<NameMatch> = all.iter().filter(|m| exact(m, q)).cloned().collect();
    let mut out = if exacts.is_empty() { all } else { exacts };
    out.truncate(50);
    out
}

/// `/api/v1/agencies/{code}/units` parameters.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UnitsQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub format: Option<String>,
}

/// A unit of the agency and its bytes over the range.
#[derive(Debug, Serialize)]
pub struct UnitRow {
    pub unit: String,
    pub name: String,
    #[serde(flatten)]
    pub usage: UnitUsage,
}

pub const UNIT_COLUMNS: &[&str] = &[
    "unit",
    "name",
    "bytes_in",
    "bytes_out",
    "internet_bytes_in",
    "internet_bytes_out",
];

/// Bytes per unit over the range (default 24 h), most first; units of the
/// inventory without traffic last.
pub async fn agency_units(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(agency): Path<String>,
    Q(q): Q<UnitsQuery>,
) -> Result<Response, ApiError> {
    check_code("agency", &agency)?;
    p.scope(Some(agency.clone()))?;
    known_agency(&s, &agency)?;
    let as_csv = csv::wanted(q.format.as_deref())?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref(), 24 * 3600)?;
    let step = totals_step(from);
    let code = agency.clone();
    let usage = read(&s, move |_, r| r.unit_usage(&code, from, to, step)).await?;
    let inv = s.inventory.current();
    let units = inv
        .agency(&agency)
        .map(|a| a.units.clone())
        .unwrap_or_default();
    let name_of = |c: &str| {
        units
            .iter()
            .find(|u| u.code == c)
            .map(|u| u.name.clone())
            .unwrap_or_default()
    };
    let mut rows: Vec<UnitRow> = usage
        .into_iter()
        .map(|u| UnitRow {
            name: name_of(&u.unit),
            unit: u.unit.clone(),
            usage: u,
        })
        .collect();
    for u in &units {
        if !rows.iter().any(|r| r.unit == u.code) {
            rows.push(UnitRow {
                unit: u.code.clone(),
                name: u.name.clone(),
                usage: UnitUsage {
                    unit: u.code.clone(),
                    bytes_in: 0,
                    bytes_out: 0,
                    internet_bytes_in: 0,
                    internet_bytes_out: 0,
                },
            });
        }
    }
    if as_csv {
        return Ok(csv::response(
            &format!("simpul-{agency}-units"),
            csv::table(&rows, UNIT_COLUMNS),
        ));
    }
    Ok(Json(rows).into_response())
}

/// The finest usage table that still holds `from` (totals want exact
/// figures, not a chart's number of points).
pub(crate) fn totals_step(from: u64) -> Step {
    let now = now_secs();
    if from >= now.saturating_sub(crate::store::USAGE_1S_RETENTION_SECS) {
        Step::Second
    } else if from >= now.saturating_sub(crate::store::USAGE_1M_RETENTION_SECS) {
        Step::Minute
    } else {
        Step::Hour
    }
}

/// For CSV of the top lists: the rows and their columns.
pub const HOST_COLUMNS: &[&str] = &["host", "agency", "unit", "bytes_up", "bytes_down", "flows"];
pub const SITE_COLUMNS: &[&str] = &["site", "bytes", "flows", "site_source"];
