//! What the NOC sees of each exporter: protocol, sampling in force,
//! templates, sequence gaps per observation domain, last export; and, per
//! stored flow, where it came from and the sampling rate its counts were
//! scaled by.
//!
//! The rate is not stored with each flow: the stored record is the agent's
//! `FlowRecord`, the same in every store. Instead each exporter keeps the
//! spells of each rate it used, as the span of flow end times exported
//! under it, and a flow's rate is the spell covering its last packet. A
//! rate change is therefore shown on the flows it applies to, not
//! back-dated; where spells overlap (a change while older flows were still
//! being exported) or a flow predates what this collector run heard, the
//! rate is "not known" rather than guessed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Serialize;
use simpul_core::netflow::{Decoded, DomainInfo};

/// Sampling spells remembered per exporter (older ones are forgotten: their
/// flows then show the rate as not known).
const MAX_SPELLS: usize = 64;
/// Exporters shown at most (the receiver itself is bounded by
/// `[netflow] max_exporters`).
const MAX_EXPORTERS: usize = 100_000;

/// Where a flow came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowOrigin {
    /// "agent", "netflow-v5", "netflow-v9", "ipfix", or "netflow" (an
    /// exporter whose protocol this collector run has not heard yet).
    pub origin: String,
    /// One packet in N was counted and the counts were multiplied by N
    /// (1: unsampled); None for agents, or when not known.
    pub sampling_interval: Option<u32>,
}

/// One rate over a span of flow end times (Unix ms, the exporter's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Spell {
    pub interval: u32,
    pub from_ms: u64,
    pub to_ms: u64,
}

/// One observation domain (IPFIX) / source id (v9) / engine (v5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DomainStatus {
    pub protocol: String,
    pub domain: u32,
    /// The rate its last data records were made with (1: unsampled).
    pub sampling_interval: u32,
    /// RFC 7012 samplingAlgorithm (1 deterministic, 2 random), 0 not told.
    pub sampling_algorithm: u8,
    pub templates: usize,
    pub options_templates: usize,
    /// Lost according to the sequence numbers: flows (v5, IPFIX) or
    /// datagrams (v9), as each protocol counts.
    pub lost: u64,
    pub datagrams: u64,
    pub records: u64,
    /// The export time in its last datagram's header (Unix ms).
    pub last_export_ms: u64,
}

/// One exporter as `GET /api/v1/netflow/exporters` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExporterStatus {
    pub node_id: String,
    pub address: String,
    /// Every flow's agency, when the exporter is mapped to one; else its
    /// flows are attributed one by one by the inventory's subnets.
    pub agency: Option<String>,
    /// Listed (config or inventory): an outage is raised when it stops.
    pub monitored: bool,
    /// The protocol of its last datagram ("netflow" when not heard in this
    /// collector run).
    pub protocol: String,
    /// Distinct rates in force now, over its domains (sorted).
    pub sampling_intervals: Vec<u32>,
    pub templates: usize,
    pub lost: u64,
    pub datagrams: u64,
    pub records: u64,
    pub decode_errors: u64,
    /// The newest export time any datagram carried (Unix ms), and when this
    /// collector last heard it (its own clock).
    pub last_export_ms: Option<u64>,
    pub last_heard_ms: Option<u64>,
    pub domains: Vec<DomainStatus>,
    /// The rates over time, oldest first (the last MAX_SPELLS).
    pub spells: VecDeque<Spell>,
}

#[derive(Debug, Default)]
struct Inner {
    by_node: HashMap<String, ExporterStatus>,
    /// (protocol, domain) → its status, per node.
    domains: HashMap<String, BTreeMap<(String, u32), DomainStatus>>,
}

/// Every exporter's status, shared by the receiver and the API.
#[derive(Debug, Default)]
pub struct Exporters {
    inner: Mutex<Inner>,
}

impl Exporters {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// An exporter known before it is heard: listed in the config, or in
    /// the node registry from an earlier run (`protocol` its last one).
    pub fn known(&self, node: &str, address: &str, agency: Option<&str>, protocol: &str) {
        self.with(|i| {
            if i.by_node.len() >= MAX_EXPORTERS || i.by_node.contains_key(node) {
                return;
            }
            i.by_node.insert(
                node.to_string(),
                ExporterStatus {
                    node_id: node.to_string(),
                    address: address.to_string(),
                    agency: agency.map(str::to_string),
                    monitored: true,
                    protocol: protocol.to_string(),
                    ..ExporterStatus::default()
                },
            );
        });
    }

    /// A datagram from `node` that could not be read.
    pub fn decode_error(&self, node: &str) {
        self.with(|i| {
            if let Some(e) = i.by_node.get_mut(node) {
                e.decode_errors += 1;
            }
        });
    }

    /// A datagram read: `domains` is what the decoder now holds for the
    /// exporter (templates, sampling per domain).
    #[allow(clippy::too_many_arguments)]
    pub fn heard(
        &self,
        node: &str,
        address: IpAddr,
        agency: Option<&str>,
        monitored: bool,
        d: &Decoded,
        domains: &[DomainInfo],
        now_ms: u64,
    ) {
        let protocol = d.version.map_or("netflow", |v| v.name()).to_string();
        self.with(|i| {
            if !i.by_node.contains_key(node) && i.by_node.len() >= MAX_EXPORTERS {
                return;
            }
            let ds = i.domains.entry(node.to_string()).or_default();
            for info in domains {
                let s = ds
                    .entry((info.version.name().to_string(), info.domain))
                    .or_default();
                s.protocol = info.version.name().to_string();
                s.domain = info.domain;
                s.templates = info.templates;
                s.options_templates = info.options_templates;
                s.sampling_algorithm = info.sampling.algorithm;
                // Until its data says otherwise, what its options announced.
                if s.records == 0 {
                    s.sampling_interval = info.sampling.interval.max(1);
                }
            }
            let this = ds.entry((protocol.clone(), d.domain)).or_default();
            this.protocol = protocol.clone();
            this.domain = d.domain;
            this.lost += d.lost;
            this.datagrams += 1;
            this.records += d.flows.len() as u64;
            this.last_export_ms = d.export_secs.saturating_mul(1000);
            if let Some(f) = d.flows.last() {
                this.sampling_interval = f.sampling.max(1);
            }
            let e = i.by_node.entry(node.to_string()).or_default();
            e.node_id = node.to_string();
            e.address = address.to_string();
            e.agency = agency.map(str::to_string);
            e.monitored = monitored;
            e.protocol = protocol;
            e.datagrams += 1;
            e.records += d.flows.len() as u64;
            e.lost += d.lost;
            e.last_heard_ms = Some(now_ms);
            e.last_export_ms = Some(
                e.last_export_ms
                    .unwrap_or(0)
                    .max(d.export_secs.saturating_mul(1000)),
            );
            for f in &d.flows {
                note_spell(&mut e.spells, f.sampling.max(1), f.end_ms);
            }
        });
    }

    /// Every exporter, by node id, with its domains (gathered here, not per
    /// datagram: the API asks far less often than exporters send).
    pub fn list(&self) -> Vec<ExporterStatus> {
        let mut out: Vec<ExporterStatus> = self.with(|i| {
            i.by_node
                .values()
                .map(|e| {
                    let mut e = e.clone();
                    e.domains = i
                        .domains
                        .get(&e.node_id)
                        .map(|ds| ds.values().cloned().collect())
                        .unwrap_or_default();
                    e.templates = e
                        .domains
                        .iter()
                        .map(|d| d.templates + d.options_templates)
                        .sum();
                    let mut rates: Vec<u32> = e
                        .domains
                        .iter()
                        .map(|d| d.sampling_interval.max(1))
                        .collect();
                    rates.sort_unstable();
                    rates.dedup();
                    e.sampling_intervals = rates;
                    e
                })
                .collect()
        });
        out.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        out
    }

    /// Where each of `flows` (node id, last packet in Unix ns) came from.
    pub fn origins<'a>(&self, flows: impl Iterator<Item = (&'a str, u64)>) -> Vec<FlowOrigin> {
        self.with(|i| {
            flows
                .map(|(node, last_ns)| match i.by_node.get(node) {
                    None => FlowOrigin {
                        origin: "agent".into(),
                        sampling_interval: None,
                    },
                    Some(e) => FlowOrigin {
                        origin: e.protocol.clone(),
                        sampling_interval: rate_at(&e.spells, last_ns / 1_000_000),
                    },
                })
                .collect()
        })
    }
}

/// A stored flow as the API shows it: the row and where it came from.
#[derive(Debug, Serialize)]
pub struct FlowWithOrigin<'a> {
    #[serde(flatten)]
    pub row: &'a crate::store::FlowRow,
    #[serde(flatten)]
    pub origin: FlowOrigin,
}

impl Exporters {
    /// `rows` with their origin and sampling.
    pub fn annotate<'a>(&self, rows: &'a [crate::store::FlowRow]) -> Vec<FlowWithOrigin<'a>> {
        let origins = self.origins(
            rows.iter()
                .map(|r| (r.node_id.as_str(), r.record.last_seen)),
        );
        rows.iter()
            .zip(origins)
            .map(|(row, origin)| FlowWithOrigin { row, origin })
            .collect()
    }

    /// Add `origin` and `sampling_interval` to each flow object of a JSON
    /// array made from `rows` (same order).
    pub fn annotate_json(&self, rows: &[crate::store::FlowRow], json: &mut serde_json::Value) {
        let Some(arr) = json.as_array_mut() else {
            return;
        };
        let origins = self.origins(
            rows.iter()
                .map(|r| (r.node_id.as_str(), r.record.last_seen)),
        );
        for (v, o) in arr.iter_mut().zip(origins) {
            if let Some(m) = v.as_object_mut() {
                m.insert("origin".into(), o.origin.into());
                m.insert("sampling_interval".into(), o.sampling_interval.into());
            }
        }
    }
}

/// Widen the newest spell if the rate is unchanged, else start a new one.
fn note_spell(spells: &mut VecDeque<Spell>, interval: u32, end_ms: u64) {
    if let Some(s) = spells.back_mut().filter(|s| s.interval == interval) {
        s.from_ms = s.from_ms.min(end_ms);
        s.to_ms = s.to_ms.max(end_ms);
        return;
    }
    if spells.len() >= MAX_SPELLS {
        spells.pop_front();
    }
    spells.push_back(Spell {
        interval,
        from_ms: end_ms,
        to_ms: end_ms,
    });
}

/// The one rate whose spells cover `t_ms`; None when none does or when
/// spells of different rates do.
fn rate_at(spells: &VecDeque<Spell>, t_ms: u64) -> Option<u32> {
    let mut found = None;
    for s in spells
        .iter()
        .filter(|s| s.from_ms <= t_ms && t_ms <= s.to_ms)
    {
        match found {
            None => found = Some(s.interval),
            Some(r) if r == s.interval => {}
            Some(_) => return None,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_gets_the_rate_in_force_when_it_ended_and_never_a_guess() {
        let mut s = VecDeque::new();
        for t in [1_000, 2_000, 3_000] {
            note_spell(&mut s, 10, t);
        }
        for t in [5_000, 6_000] {
            note_spell(&mut s, 100, t);
        }
        // A late flow of the old rate overlaps the new spell's start.
        note_spell(&mut s, 10, 5_500);
        assert_eq!(rate_at(&s, 2_500), Some(10));
        assert_eq!(rate_at(&s, 5_000), Some(100));
        assert_eq!(rate_at(&s, 5_500), None, "two rates cover it: not known");
        assert_eq!(rate_at(&s, 500), None, "before anything heard");
        assert_eq!(rate_at(&s, 9_000), None);
        for t in 0..(MAX_SPELLS as u64 * 2) {
            note_spell(&mut s, 1 + (t % 2) as u32, 10_000 + t);
        }
        assert_eq!(s.len(), MAX_SPELLS);
        assert_eq!(rate_at(&s, 2_500), None, "forgotten spells are not guessed");
    }

    #[test]
    fn agents_and_unheard_exporters() {
        let x = Exporters::default();
        x.known("dinkes-mt1", "10.1.0.1", Some("dinkes"), "netflow");
        let o = x.origins([("dinkes-01", 5), ("dinkes-mt1", 5)].into_iter());
        assert_eq!(o[0].origin, "agent");
        assert_eq!(
            (o[1].origin.as_str(), o[1].sampling_interval),
            ("netflow", None)
        );
    }
}
