//! Investigation: flows paged by time or by bytes with an opaque cursor, the
//! filters the dashboard's tables use, and what one address, network, site
//! or unit did over a range (its hosts, peers, sites, units). The types and
//! the per-row logic live here so both flow stores answer alike; the SQLite
//! reads are in `flowscan.rs`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use simpul_proto::FlowRecord;

use super::codec::local_is_src;
use super::{FlowFilter, FlowRow, StoreError};

/// Rows one flow page may examine: sorting by bytes, or a filter that the
/// chunk terms cannot narrow, reads every row of the range, and a hostile or
/// careless range must not hold a reader for minutes.
pub const MAX_PAGE_SCAN: u64 = 2_000_000;
/// Rows one investigation aggregates; beyond it the answer covers the
/// newest flows and says it is incomplete (its maps grow with the rows).
pub const MAX_INVESTIGATE_SCAN: u64 = 500_000;

/// An address or a network (CIDR), host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    pub fn host(addr: IpAddr) -> Net {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Net { addr, prefix }
    }

    /// "10.1.2.3", "10.1.0.0/16", "2001:db8::/32". A network's host bits
    /// are cleared ("10.1.2.3/16" is 10.1.0.0/16).
    pub fn parse(s: &str) -> Result<Net, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("prefix /{p} is not 0..{max}")),
            },
        };
        let bits = ip_bits(addr) & mask(prefix, max);
        Ok(Net {
            addr: from_bits(bits, addr.is_ipv4()),
            prefix,
        })
    }

    /// The network's first address (the address itself for a host).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn is_host(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let max = if ip.is_ipv4() { 32 } else { 128 };
        ip_bits(ip) & mask(self.prefix, max) == ip_bits(self.addr)
    }

    /// The first and last address as stored BLOBs (4 or 16 bytes, which
    /// compare as the addresses do): one `flow_terms` or index range.
    pub(crate) fn blob_range(&self) -> (Vec<u8>, Vec<u8>) {
        let v4 = self.addr.is_ipv4();
        let max = if v4 { 32 } else { 128 };
        let lo = ip_bits(self.addr);
        let all = if v4 { u32::MAX as u128 } else { u128::MAX };
        let hi = lo | (!mask(self.prefix, max) & all);
        (blob(lo, v4), blob(hi, v4))
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_bits(b: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4((b as u32).into())
    } else {
        IpAddr::V6(b.into())
    }
}

fn mask(prefix: u8, max: u8) -> u128 {
    let all = if max == 32 {
        u32::MAX as u128
    } else {
        u128::MAX
    };
    if prefix == 0 {
        0
    } else {
        all & !((1u128 << (max - prefix)) - 1)
    }
}

fn blob(b: u128, v4: bool) -> Vec<u8> {
    if v4 {
        (b as u32).to_be_bytes().to_vec()
    } else {
        b.to_be_bytes().to_vec()
    }
}

/// Order of a flow page: newest last packet first, or most bytes first.
/// Flows whose key ties are ordered by their identity, [`FlowId`],
/// descending, so every store pages them alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowSort {
    #[default]
    Time,
    Bytes,
}

impl FlowSort {
    pub fn parse(s: &str) -> Option<FlowSort> {
        match s {
            "time" => Some(FlowSort::Time),
            "bytes" => Some(FlowSort::Bytes),
            _ => None,
        }
    }

    /// The value a row is ordered by (descending; ties by [`FlowId`],
    /// descending).
    pub(crate) fn key(self, r: &FlowRecord) -> u64 {
        match self {
            FlowSort::Time => r.last_seen,
            FlowSort::Bytes => r.bytes_total(),
        }
    }
}

/// What names a flow in every store: the node's id (compared as bytes),
/// the agent's boot and its flow id (both as unsigned numbers). The
/// tie-breaker of every page order, chosen over a store's row ids (arrival
/// order) or hashes so that SQLite, ClickHouse and the in-memory store
/// order ties, and cut pages, alike.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowId {
    pub node: String,
    pub boot: u64,
    pub flow_id: u64,
}

impl FlowId {
    /// (key, identity) in page order terms: greater comes first.
    fn cmp_at(&self, key: u64, other_key: u64, other: (&str, u64, u64)) -> std::cmp::Ordering {
        (key, self.node.as_str(), self.boot, self.flow_id)
            .cmp(&(other_key, other.0, other.1, other.2))
    }
}

/// Why a client's cursor is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorError {
    /// Not hex, or not a cursor of any version.
    Malformed,
    /// A cursor of the format before flow ties were ordered by identity
    /// (sort key and a store's row id): it cannot say where its page ended.
    Outdated,
}

impl fmt::Display for CursorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CursorError::Malformed => "not one this API gave; start again without it",
            CursorError::Outdated => {
                "from an earlier version of the collector, which ordered pages \
                 differently; start again without it"
            }
        })
    }
}

/// Where the previous page ended: its last row's sort key and flow
/// identity. Sent to clients as an opaque hex string; a cursor of another
/// sort is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowCursor {
    pub sort: FlowSort,
    pub key: u64,
    pub flow: FlowId,
}

/// The first byte of a cursor of the current format; the earlier format
/// began with the sort ('t' or 'b') and was 17 bytes long.
const CURSOR_V2: u8 = 2;
/// Longest node id a cursor carries (node ids are far shorter; a bound so a
/// hostile cursor costs nothing).
const CURSOR_MAX_NODE: usize = 255;

impl FlowCursor {
    /// Version, sort, key, boot, flow id, then the node id's bytes.
    pub fn encode(&self) -> String {
        let mut b = Vec::with_capacity(26 + self.flow.node.len());
        b.push(CURSOR_V2);
        b.push(match self.sort {
            FlowSort::Time => b't',
            FlowSort::Bytes => b'b',
        });
        b.extend_from_slice(&self.key.to_be_bytes());
        b.extend_from_slice(&self.flow.boot.to_be_bytes());
        b.extend_from_slice(&self.flow.flow_id.to_be_bytes());
        b.extend_from_slice(self.flow.node.as_bytes());
        hex::encode(b)
    }

    /// A cursor a client sent back, or why it is refused.
    pub fn parse(s: &str) -> Result<FlowCursor, CursorError> {
        let b = hex::decode(s).map_err(|_| CursorError::Malformed)?;
        if b.len() == 17 && matches!(b[0], b't' | b'b') {
            return Err(CursorError::Outdated);
        }
        if b.len() < 26 || b.len() > 26 + CURSOR_MAX_NODE || b[0] != CURSOR_V2 {
            return Err(CursorError::Malformed);
        }
        let sort = match b[1] {
            b't' => FlowSort::Time,
            b'b' => FlowSort::Bytes,
            _ => return Err(CursorError::Malformed),
        };
        let num = |at: usize| -> Result<u64, CursorError> {
            b[at..at + 8]
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| CursorError::Malformed)
        };
        let node = String::from_utf8(b[26..].to_vec()).map_err(|_| CursorError::Malformed)?;
        Ok(FlowCursor {
            sort,
            key: num(2)?,
            flow: FlowId {
                node,
                boot: num(10)?,
                flow_id: num(18)?,
            },
        })
    }

    pub fn decode(s: &str) -> Option<FlowCursor> {
        FlowCursor::parse(s).ok()
    }

    /// A row at `key` of flow (node, boot, flow id) comes after this cursor
    /// in the page order.
    pub(crate) fn before(&self, key: u64, flow: (&str, u64, u64)) -> bool {
        self.flow.cmp_at(self.key, key, flow) == std::cmp::Ordering::Greater
    }
}

/// One page of flows and where the next one starts (None: this was the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowPage {
    pub rows: Vec<FlowRow>,
    pub next: Option<String>,
}

/// The page limit a filter asks for (0: the API default of 100).
pub(crate) fn page_limit(f: &FlowFilter) -> usize {
    match f.limit {
        0 => 100,
        n => n.min(super::query::MAX_FLOWS),
    }
}

/// The agency-side address of a flow and its other side.
pub(crate) fn sides(r: &FlowRecord) -> (IpAddr, IpAddr) {
    if local_is_src(r.src_ip, r.dst_ip) {
        (r.src_ip, r.dst_ip)
    } else {
        (r.dst_ip, r.src_ip)
    }
}

/// `site` is `filter` or a subdomain of it, ASCII case-insensitively.
pub(crate) fn site_matches(site: &str, filter: &str) -> bool {
    let (s, f) = (site.trim_end_matches('.').as_bytes(), filter.as_bytes());
    s.len() >= f.len()
        && s[s.len() - f.len()..].eq_ignore_ascii_case(f)
        && (s.len() == f.len() || s[s.len() - f.len() - 1] == b'.')
}

/// Whether a decoded record passes the filter's row conditions (not the
/// time range or the agency, which each store applies where it is cheapest).
pub(crate) fn row_matches(f: &FlowFilter, r: &FlowRecord) -> bool {
    let site = f.site.as_deref().map(|s| s.trim_end_matches('.'));
    f.host.is_none_or(|h| h == r.src_ip || h == r.dst_ip)
        && f.net
            .is_none_or(|n| n.contains(r.src_ip) || n.contains(r.dst_ip))
        && f.peer.is_none_or(|p| p.contains(sides(r).1))
        && site.is_none_or(|s| r.site.as_deref().is_some_and(|rs| site_matches(rs, s)))
        && f.unit.as_ref().is_none_or(|u| *u == r.unit)
        && f.proto
            .as_ref()
            .is_none_or(|p| p.eq_ignore_ascii_case(&r.proto))
}

/// Whether the filter has conditions beyond time and agency (every row in
/// range must then be decoded).
pub(crate) fn has_row_conditions(f: &FlowFilter) -> bool {
    f.host.is_some()
        || f.net.is_some()
        || f.peer.is_some()
        || f.site.is_some()
        || f.unit.is_some()
        || f.proto.is_some()
}

/// The best `limit` rows after the cursor, in page order, and one more to
/// tell whether another page exists.
pub(crate) struct TopRows {
    sort: FlowSort,
    want: usize,
    cursor: Option<FlowCursor>,
    /// (key, identity, row), descending.
    found: Vec<(u64, FlowId, FlowRow)>,
}

impl TopRows {
    pub(crate) fn new(f: &FlowFilter) -> TopRows {
        TopRows {
            sort: f.sort,
            want: page_limit(f) + 1,
            cursor: f.cursor.clone(),
            found: Vec::new(),
        }
    }

    /// The page is full and nothing at or below `key` can enter it.
    pub(crate) fn closed_below(&self, key: u64) -> bool {
        self.found.len() >= self.want && self.found.last().is_some_and(|f| key < f.0)
    }

    /// Whether some row at `key` could still be among the page's rows
    /// (not just the one past them that only says another page exists).
    pub(crate) fn open_at(&self, key: u64) -> bool {
        self.found.get(self.want - 2).is_none_or(|f| f.0 <= key)
    }

    /// Whether a row with this key of flow (node, boot, flow id) could
    /// enter.
    fn wants(&self, key: u64, flow: (&str, u64, u64)) -> bool {
        self.cursor.as_ref().is_none_or(|c| c.before(key, flow))
            && !(self.found.len() >= self.want
                && self
                    .found
                    .last()
                    .is_some_and(|f| f.1.cmp_at(f.0, key, flow).is_gt()))
    }

    /// Offer the latest state of flow (row's node, `boot`, its flow id).
    pub(crate) fn offer(&mut self, boot: u64, row: FlowRow) {
        let key = self.sort.key(&row.record);
        let flow = (row.node_id.as_str(), boot, row.record.flow_id);
        if !self.wants(key, flow) {
            return;
        }
        let at = self
            .found
            .partition_point(|f| f.1.cmp_at(f.0, key, flow).is_gt());
        let id = FlowId {
            node: row.node_id.clone(),
            boot,
            flow_id: row.record.flow_id,
        };
        self.found.insert(at, (key, id, row));
        self.found.truncate(self.want);
    }

    pub(crate) fn page(mut self) -> FlowPage {
        let more = self.found.len() >= self.want;
        self.found.truncate(self.want - 1);
        let next = if more {
            self.found.last().map(|(key, flow, _)| {
                FlowCursor {
                    sort: self.sort,
                    key: *key,
                    flow: flow.clone(),
                }
                .encode()
            })
        } else {
            None
        };
        FlowPage {
            rows: self.found.into_iter().map(|(_, _, r)| r).collect(),
            next,
        }
    }
}

/// The refusal of a query that would examine more than `MAX_PAGE_SCAN` rows.
pub(crate) fn too_broad(f: &FlowFilter) -> StoreError {
    StoreError::Invalid {
        what: "flow query",
        value: format!("{}..{}", f.from, f.to),
        reason: "has more flows in its range than one page may examine \
                 (2 000 000): narrow the range or add a filter",
    }
}

/// An agency-side address over the range: what it sent and received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTally {
    pub host: String,
    pub agency: String,
    pub unit: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub flows: u64,
}

/// A remote address: what the matched hosts sent to it (`bytes_up`) and got
/// from it, and the site it was last named by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerTally {
    pub peer: String,
    pub site: Option<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub flows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteTally {
    pub site: String,
    pub bytes: u64,
    pub flows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitTally {
    pub agency: String,
    pub unit: String,
    pub bytes: u64,
    pub flows: u64,
}

/// What the flows matching a filter did over its range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Investigation {
    pub flows: u64,
    /// Agency side → remote and back, summed over the flows.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Rows examined; `complete` is false when the scan stopped at its
    /// bound, and the figures then cover the newest flows only.
    pub scanned: u64,
    pub complete: bool,
    pub hosts: Vec<HostTally>,
    pub peers: Vec<PeerTally>,
    pub sites: Vec<SiteTally>,
    pub units: Vec<UnitTally>,
}

/// A peer's site: the one of its newest named flow (by last_seen, then
/// name), chosen by the records and not by the order a store's scan meets
/// them, so every store names a peer alike.
type NamedAt = (u64, String);

/// Adds matched flows up; `finish` keeps the top `top` of each list.
#[derive(Default)]
pub(crate) struct Tally {
    flows: u64,
    up: u64,
    down: u64,
    pub(crate) scanned: u64,
    hosts: HashMap<(IpAddr, String, String), [u64; 3]>,
    peers: HashMap<IpAddr, ([u64; 3], Option<NamedAt>)>,
    sites: HashMap<String, [u64; 2]>,
    units: HashMap<(String, String), [u64; 2]>,
}

impl Tally {
    pub(crate) fn add(&mut self, r: &FlowRecord) {
        let (host, peer) = sides(r);
        // Up is what the agency side sent.
        let (up, down) = if host == r.src_ip {
            (r.bytes_up, r.bytes_down)
        } else {
            (r.bytes_down, r.bytes_up)
        };
        self.flows += 1;
        self.up = self.up.saturating_add(up);
        self.down = self.down.saturating_add(down);
        let h = self
            .hosts
            .entry((host, r.agency.clone(), r.unit.clone()))
            .or_default();
        h[0] = h[0].saturating_add(up);
        h[1] = h[1].saturating_add(down);
        h[2] += 1;
        let p = self.peers.entry(peer).or_default();
        p.0[0] = p.0[0].saturating_add(up);
        p.0[1] = p.0[1].saturating_add(down);
        p.0[2] += 1;
        if let Some(site) = &r.site {
            let newer = p
                .1
                .as_ref()
                .is_none_or(|(seen, name)| (r.last_seen, site.as_str()) > (*seen, name.as_str()));
            if newer {
                p.1 = Some((r.last_seen, site.clone()));
            }
        }
        if let Some(site) = &r.site {
            let s = self.sites.entry(site.to_ascii_lowercase()).or_default();
            s[0] = s[0].saturating_add(up.saturating_add(down));
            s[1] += 1;
        }
        let u = self
            .units
            .entry((r.agency.clone(), r.unit.clone()))
            .or_default();
        u[0] = u[0].saturating_add(up.saturating_add(down));
        u[1] += 1;
    }

    pub(crate) fn finish(self, complete: bool, top: usize) -> Investigation {
        fn best<T>(mut v: Vec<T>, key: impl Fn(&T) -> (u64, String), top: usize) -> Vec<T> {
            v.sort_by(|a, b| {
                let (ka, kb) = (key(a), key(b));
                kb.0.cmp(&ka.0).then(ka.1.cmp(&kb.1))
            });
            v.truncate(top);
            v
        }
        let hosts = self
            .hosts
            .into_iter()
            .map(|((h, agency, unit), v)| HostTally {
                host: h.to_string(),
                agency,
                unit,
                bytes_up: v[0],
                bytes_down: v[1],
                flows: v[2],
            })
            .collect();
        let peers = self
            .peers
            .into_iter()
            .map(|(p, (v, site))| PeerTally {
                peer: p.to_string(),
                site: site.map(|(_, name)| name),
                bytes_up: v[0],
                bytes_down: v[1],
                flows: v[2],
            })
            .collect();
        let sites = self
            .sites
            .into_iter()
            .map(|(site, v)| SiteTally {
                site,
                bytes: v[0],
                flows: v[1],
            })
            .collect();
        let units = self
            .units
            .into_iter()
            .map(|((agency, unit), v)| UnitTally {
                agency,
                unit,
                bytes: v[0],
                flows: v[1],
            })
            .collect();
        Investigation {
            flows: self.flows,
            bytes_up: self.up,
            bytes_down: self.down,
            scanned: self.scanned,
            complete,
            // A host counted under two units (the inventory moved it) is
            // two rows: the unit breaks their tie, not the map's order.
            hosts: best(
                hosts,
                |h: &HostTally| {
                    (
                        h.bytes_up + h.bytes_down,
                        format!("{} {}/{}", h.host, h.agency, h.unit),
                    )
                },
                top,
            ),
            peers: best(
                peers,
                |p: &PeerTally| (p.bytes_up + p.bytes_down, p.peer.clone()),
                top,
            ),
            sites: best(sites, |s: &SiteTally| (s.bytes, s.site.clone()), top),
            units: best(
                units,
                |u: &UnitTally| (u.bytes, format!("{}/{}", u.agency, u.unit)),
                top,
            ),
        }
    }
}

/// Bytes of one unit over a range (`GET /api/v1/agencies/{code}/units`);
/// in is toward the unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitUsage {
    pub unit: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub internet_bytes_in: u64,
    pub internet_bytes_out: u64,
}

impl UnitUsage {
    /// The order every store answers in: most bytes first, then by unit.
    pub(crate) fn sort(units: &mut [UnitUsage]) {
        units.sort_by(|a, b| {
            (b.bytes_in + b.bytes_out)
                .cmp(&(a.bytes_in + a.bytes_out))
                .then(a.unit.cmp(&b.unit))
        });
    }
}

/// Which blocked attempts a search wants beside the time range and agency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockedMatch {
    /// The client's address within this network.
    pub client: Option<Net>,
    /// The target is this name or a subdomain of it.
    pub target: Option<String>,
    pub unit: Option<String>,
}

impl BlockedMatch {
    pub(crate) fn matches(&self, a: &simpul_proto::BlockedAttempt) -> bool {
        self.client.is_none_or(|n| n.contains(a.client))
            && self
                .target
                .as_deref()
                .is_none_or(|t| site_matches(&a.target, t))
            && self.unit.as_ref().is_none_or(|u| *u == a.unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let n = Net::parse("10.1.2.3/16").unwrap();
        assert_eq!(n.to_string(), "10.1.0.0/16");
        assert!(n.contains("10.1.255.1".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        assert_eq!(n.blob_range(), (vec![10, 1, 0, 0], vec![10, 1, 255, 255]));
        let all = Net::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert_eq!(all.blob_range().1, vec![255; 4]);
        let v6 = Net::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(Net::parse("10.0.0.1").unwrap().is_host());
        assert!(Net::parse("10.0.0.0/33").is_err());
        assert!(Net::parse("10.0.0/8").is_err());
        assert!(Net::parse("::/129").is_err());
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = FlowCursor {
            sort: FlowSort::Bytes,
            key: 1234,
            flow: FlowId {
                node: "dinkes-01".into(),
                boot: u64::MAX,
                flow_id: 7,
            },
        };
        let mut b = hex::decode(c.encode()).unwrap();
        assert_eq!(FlowCursor::parse(&c.encode()), Ok(c));
        assert_eq!(FlowCursor::decode("zz"), None);
        assert_eq!(FlowCursor::decode("00"), None);
        assert_eq!(FlowCursor::decode(&"78".repeat(17)), None);
        // Not UTF-8 in the node, or a node longer than any.
        b.push(0xff);
        assert_eq!(
            FlowCursor::parse(&hex::encode(&b)),
            Err(CursorError::Malformed)
        );
        b.pop();
        b.extend(std::iter::repeat_n(b'a', 256));
        assert_eq!(
            FlowCursor::parse(&hex::encode(&b)),
            Err(CursorError::Malformed)
        );
        // The earlier format (sort, key, row id) is named as such.
        let old = format!("74{}{}", "00".repeat(8), "01".repeat(8));
        assert_eq!(FlowCursor::parse(&old), Err(CursorError::Outdated));
        assert!(CursorError::Outdated
            .to_string()
            .contains("earlier version"));
    }

    /// Ties in the sort key go by (node, boot, flow id), descending, with
    /// boots and flow ids compared as unsigned numbers.
    #[test]
    fn ties_go_by_flow_identity() {
        use simpul_proto::{EndReason, RecordKind, TrafficScope};
        let row = |node: &str, flow_id: u64| FlowRow {
            node_id: node.into(),
            record: FlowRecord {
                flow_id,
                kind: RecordKind::Final,
                end_reason: EndReason::Fin,
                proto: "tcp".into(),
                src_ip: "10.0.0.1".parse().unwrap(),
                src_port: None,
                dst_ip: "192.0.2.1".parse().unwrap(),
                dst_port: None,
                vlan: None,
                vlan_inner: None,
                packets_up: 1,
                bytes_up: 10,
                packets_down: 0,
                bytes_down: 0,
                first_seen: 5,
                last_seen: 9,
                tcp_flags_up: None,
                tcp_flags_down: None,
                sni: None,
                http_host: None,
                dns_query: None,
                site: None,
                site_source: None,
                agency: "a".into(),
                unit: "u".into(),
                scope: TrafficScope::Internet,
            },
        };
        let offered = [
            ("a", 1, 3),
            ("b", 1, 1),
            ("a", u64::MAX, 1),
            ("a", 1, u64::MAX),
            ("B", 9, 9),
        ];
        let mut order = Vec::new();
        let mut f = FlowFilter {
            limit: 2,
            ..FlowFilter::default()
        };
        loop {
            let mut top = TopRows::new(&f);
            for (node, boot, id) in offered {
                top.offer(boot, row(node, id));
            }
            let page = top.page();
            order.extend(
                page.rows
                    .iter()
                    .map(|r| (r.node_id.clone(), r.record.flow_id)),
            );
            match page.next {
                Some(c) => f.cursor = FlowCursor::decode(&c),
                None => break,
            }
        }
        let want = [("b", 1), ("a", 1), ("a", u64::MAX), ("a", 3), ("B", 9)];
        let want: Vec<(String, u64)> = want.iter().map(|(n, i)| (n.to_string(), *i)).collect();
        assert_eq!(order, want);
    }
}
