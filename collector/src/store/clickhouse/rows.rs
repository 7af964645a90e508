//! Flow rows both ways: what the writer inserts into `flow_records` and the
//! latest state of a flow as the readers (and the writer, after a restart)
//! select it.

use serde::{Deserialize, Serialize};
use simpul_proto::{FlowRecord, RecordKind};

use super::{ip_from_key, ip_key};
use crate::store::codec::{
    end_reason_code, end_reason_from, local_is_src, scope_code, scope_from, site_source_code,
    site_source_from,
};
use crate::store::StoreError;

/// `site_source` when a flow has none (sorts after every real source).
pub const NO_SOURCE: u8 = 255;

/// What a stored record credits to the top hosts and sites.
#[derive(Debug, Clone, Copy)]
pub struct Credit<'a> {
    pub agency: &'a str,
    /// Growth of the counters over the flow's previous record.
    pub up: u64,
    pub down: u64,
    pub new_flow: bool,
}

#[derive(Serialize)]
pub struct FlowOut<'a> {
    node: &'a str,
    boot: u64,
    seq: u64,
    idx: u32,
    fid: i64,
    flow_id: u64,
    is_final: u8,
    restart: u8,
    end_reason: u8,
    proto: &'a str,
    src_ip: String,
    src_port: Option<u16>,
    dst_ip: String,
    dst_port: Option<u16>,
    vlan: Option<u16>,
    vlan_inner: Option<u16>,
    packets_up: u64,
    bytes_up: u64,
    packets_down: u64,
    bytes_down: u64,
    first_seen: u64,
    last_seen: u64,
    tcp_flags_up: Option<u8>,
    tcp_flags_down: Option<u8>,
    sni: Option<&'a str>,
    http_host: Option<&'a str>,
    dns_query: Option<&'a str>,
    site: Option<&'a str>,
    site_source: u8,
    agency: &'a str,
    unit: &'a str,
    scope: u8,
    local_ip: String,
    peer_ip: String,
    has_site: u8,
    credit: u8,
    credit_agency: &'a str,
    minute: u64,
    host_up: u64,
    host_down: u64,
    new_flow: u8,
}

/// A stable row id for a flow (page order ties, cursors): the same on every
/// collector and after restarts. FNV-1a over (node, boot, flow id).
pub fn fid(node: &str, boot: u64, flow_id: u64) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node
        .as_bytes()
        .iter()
        .chain([0xff].iter())
        .chain(boot.to_be_bytes().iter())
        .chain(flow_id.to_be_bytes().iter())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h & (i64::MAX as u64)) as i64
}

/// The row of `rec` (the flow's state after this record) at (node, boot,
/// seq, idx). `credit` None: the row credits nothing (a restart close).
pub fn flow_out<'a>(
    node: &'a str,
    boot: u64,
    seq: u64,
    idx: u32,
    rec: &'a FlowRecord,
    restart: bool,
    credit: Option<Credit<'a>>,
) -> FlowOut<'a> {
    let src_local = local_is_src(rec.src_ip, rec.dst_ip);
    let (local, peer) = if src_local {
        (rec.src_ip, rec.dst_ip)
    } else {
        (rec.dst_ip, rec.src_ip)
    };
    let c = credit.unwrap_or(Credit {
        agency: "",
        up: 0,
        down: 0,
        new_flow: false,
    });
    let (host_up, host_down) = if src_local {
        (c.up, c.down)
    } else {
        (c.down, c.up)
    };
    FlowOut {
        node,
        boot,
        seq,
        idx,
        fid: fid(node, boot, rec.flow_id),
        flow_id: rec.flow_id,
        is_final: u8::from(rec.kind == RecordKind::Final),
        restart: u8::from(restart),
        end_reason: end_reason_code(rec.end_reason),
        proto: &rec.proto,
        src_ip: ip_key(rec.src_ip),
        src_port: rec.src_port,
        dst_ip: ip_key(rec.dst_ip),
        dst_port: rec.dst_port,
        vlan: rec.vlan,
        vlan_inner: rec.vlan_inner,
        packets_up: rec.packets_up,
        bytes_up: rec.bytes_up,
        packets_down: rec.packets_down,
        bytes_down: rec.bytes_down,
        first_seen: rec.first_seen,
        last_seen: rec.last_seen,
        tcp_flags_up: rec.tcp_flags_up,
        tcp_flags_down: rec.tcp_flags_down,
        sni: rec.sni.as_deref(),
        http_host: rec.http_host.as_deref(),
        dns_query: rec.dns_query.as_deref(),
        site: rec.site.as_deref(),
        site_source: rec.site_source.map_or(NO_SOURCE, site_source_code),
        agency: &rec.agency,
        unit: &rec.unit,
        scope: scope_code(rec.scope),
        local_ip: ip_key(local),
        peer_ip: ip_key(peer),
        has_site: u8::from(rec.site.is_some()),
        credit: u8::from(credit.is_some()),
        credit_agency: c.agency,
        minute: rec.last_seen / 1_000_000_000 / 60 * 60,
        host_up,
        host_down,
        new_flow: u8::from(c.new_flow),
    }
}

/// The record columns selected as a flow's latest state (aliased `x_…`:
/// an alias named like a column would shadow it inside the aggregates).
const STATE_COLS: [&str; 29] = [
    "fid",
    "is_final",
    "restart",
    "end_reason",
    "proto",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "vlan",
    "vlan_inner",
    "packets_up",
    "bytes_up",
    "packets_down",
    "bytes_down",
    "first_seen",
    "last_seen",
    "tcp_flags_up",
    "tcp_flags_down",
    "sni",
    "http_host",
    "dns_query",
    "site",
    "site_source",
    "agency",
    "unit",
    "scope",
    "local_ip",
    "peer_ip",
];

/// `node, boot, flow_id` and every state column as of the flow's latest row.
pub fn latest_select() -> String {
    let mut s = String::from("node, boot, flow_id");
    for c in STATE_COLS {
        s.push_str(&format!(", argMax({c}, (seq, idx)) AS x_{c}"));
    }
    s
}

/// A flow's latest state as selected by [`latest_select`].
#[derive(Debug, Deserialize)]
pub struct StateRow {
    pub node: String,
    pub boot: u64,
    pub flow_id: u64,
    pub x_fid: i64,
    pub x_is_final: u8,
    pub x_restart: u8,
    x_end_reason: u8,
    x_proto: String,
    x_src_ip: String,
    x_src_port: Option<u16>,
    x_dst_ip: String,
    x_dst_port: Option<u16>,
    x_vlan: Option<u16>,
    x_vlan_inner: Option<u16>,
    x_packets_up: u64,
    pub x_bytes_up: u64,
    x_packets_down: u64,
    pub x_bytes_down: u64,
    pub x_first_seen: u64,
    pub x_last_seen: u64,
    x_tcp_flags_up: Option<u8>,
    x_tcp_flags_down: Option<u8>,
    x_sni: Option<String>,
    x_http_host: Option<String>,
    x_dns_query: Option<String>,
    x_site: Option<String>,
    x_site_source: u8,
    pub x_agency: String,
    x_unit: String,
    x_scope: u8,
}

impl StateRow {
    pub fn record(self) -> Result<(String, i64, FlowRecord), StoreError> {
        const T: &str = "flow_records";
        let rec = FlowRecord {
            flow_id: self.flow_id,
            kind: if self.x_is_final == 1 {
                RecordKind::Final
            } else {
                RecordKind::Interim
            },
            end_reason: end_reason_from(i64::from(self.x_end_reason))?,
            proto: self.x_proto,
            src_ip: ip_from_key(&self.x_src_ip, T)?,
            src_port: self.x_src_port,
            dst_ip: ip_from_key(&self.x_dst_ip, T)?,
            dst_port: self.x_dst_port,
            vlan: self.x_vlan,
            vlan_inner: self.x_vlan_inner,
            packets_up: self.x_packets_up,
            bytes_up: self.x_bytes_up,
            packets_down: self.x_packets_down,
            bytes_down: self.x_bytes_down,
            first_seen: self.x_first_seen,
            last_seen: self.x_last_seen,
            tcp_flags_up: self.x_tcp_flags_up,
            tcp_flags_down: self.x_tcp_flags_down,
            sni: self.x_sni,
            http_host: self.x_http_host,
            dns_query: self.x_dns_query,
            site: self.x_site,
            site_source: match self.x_site_source {
                NO_SOURCE => None,
                c => Some(site_source_from(i64::from(c))?),
            },
            agency: self.x_agency,
            unit: self.x_unit,
            scope: scope_from(i64::from(self.x_scope))?,
        };
        Ok((self.node, self.x_fid, rec))
    }
}
