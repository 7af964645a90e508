//! NetFlow v5/v9 and IPFIX in: routers that cannot run the agent (MikroTik
//! Traffic Flow and the like) export flows to `[netflow] listen`; the
//! receiver ([`receiver`]) decodes them with `simpul_core::netflow`, turns
//! them into the agent's records ([`convert`]: sampling applied, agency and
//! unit from the exporter map or the inventory's subnets) and hands them to
//! the same writer as agent batches. Each exporter is a node: its export
//! stream is its heartbeat.

pub mod api;
pub mod convert;
pub mod receiver;
pub mod status;

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;
use simpul_proto::{valid_code, Problem};

/// `[netflow]`: disabled unless `listen` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetflowConfig {
    /// UDP address the exporters send to (NetFlow v5, v9 and IPFIX on one
    /// port; the version is in each datagram).
    pub listen: Option<SocketAddr>,
    /// Exporters by address: their agency and node id.
    pub exporter: Vec<ExporterConfig>,
    /// Take datagrams from exporters not listed (attributed by the
    /// inventory's subnets, node id `nf-<address>`). Off by default: UDP
    /// source addresses are easily forged, and a forged exporter would
    /// write flows into agencies' figures.
    pub accept_unlisted: bool,
    /// Exporters remembered at most (templates, sequence numbers).
    pub max_exporters: usize,
    /// Templates one exporter may define, all its domains together.
    pub max_templates_per_exporter: usize,
    /// The socket's kernel receive buffer (bursts of export datagrams).
    pub receive_buffer_bytes: usize,
}

impl Default for NetflowConfig {
    fn default() -> Self {
        NetflowConfig {
            listen: None,
            exporter: Vec::new(),
            accept_unlisted: false,
            max_exporters: 1024,
            max_templates_per_exporter: 512,
            receive_buffer_bytes: 8 << 20,
        }
    }
}

/// `[[netflow.exporter]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterConfig {
    /// The exporter's source address, as the datagrams arrive.
    pub address: IpAddr,
    /// Every flow of this exporter is this agency's (else: the node's
    /// agency in the inventory, else the inventory's subnets per flow).
    pub agency: Option<String>,
    /// The node it shows as (else `nf-<address>`); list it in the
    /// inventory's nodes for its parent and criticality.
    pub node_id: Option<String>,
}

impl NetflowConfig {
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, e) in self.exporter.iter().enumerate() {
            let place = format!("netflow.exporter[{i}]");
            if !seen.insert(e.address) {
                out.push(Problem::new(
                    &place,
                    format!("address {} listed twice", e.address),
                ));
            }
            for (key, v) in [("agency", &e.agency), ("node_id", &e.node_id)] {
                if let Some(v) = v.as_deref().filter(|v| !valid_code(v)) {
                    out.push(Problem::new(
                        format!("{place}.{key}"),
                        format!("{v:?} is not a code (letters, digits, '-', '_'; 64 at most)"),
                    ));
                }
            }
        }
        if !(1..=1_000_000).contains(&self.max_exporters)
            || self.exporter.len() > self.max_exporters
        {
            out.push(Problem::new(
                "netflow.max_exporters",
                "must be 1..1000000 and at least the exporters listed",
            ));
        }
        if !(1..=65_536).contains(&self.max_templates_per_exporter) {
            out.push(Problem::new(
                "netflow.max_templates_per_exporter",
                "must be 1..65536",
            ));
        }
        out
    }

    /// The node id of an exporter not given one.
    pub fn default_node_id(address: IpAddr) -> String {
        let a = address.to_string().replace(['.', ':'], "-");
        format!("nf-{a}")
    }
}

/// Bind `[netflow] listen` and start the receiver; the bound address.
pub fn start(
    state: &crate::state::AppState,
) -> anyhow::Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>> {
    let Some(addr) = state.config.netflow.listen else {
        return Ok(None);
    };
    seed_exporters(state);
    let socket = receiver::bind(addr, state.config.netflow.receive_buffer_bytes)?;
    let local = socket.local_addr()?;
    tracing::info!(listen = %local, "NetFlow/IPFIX receiver listening");
    let task = tokio::spawn(receiver::run(state.clone(), socket));
    Ok(Some((local, task)))
}

/// Exporters known before they speak: those listed, and those the node
/// registry remembers from earlier runs (their flows are in the store; the
/// flows API must not call them agents' flows after a restart).
fn seed_exporters(state: &crate::state::AppState) {
    for e in &state.config.netflow.exporter {
        let node = e
            .node_id
            .clone()
            .unwrap_or_else(|| NetflowConfig::default_node_id(e.address));
        state.netflow.known(
            &node,
            &e.address.to_string(),
            e.agency.as_deref(),
            "netflow",
        );
    }
    let timeout = std::time::Duration::from_secs(state.config.nodes.down_after_secs);
    match state.control.nodes(std::time::SystemTime::now(), timeout) {
        Ok(nodes) => {
            for n in nodes
                .iter()
                .filter(|n| n.hostname.as_deref() == Some(receiver::EXPORTER_HOSTNAME))
            {
                state.netflow.known(
                    &n.node_id,
                    n.address.as_deref().unwrap_or(""),
                    Some(&n.agency),
                    n.agent_version.as_deref().unwrap_or("netflow"),
                );
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read which nodes are NetFlow exporters")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::CollectorConfig;

    fn parse(extra: &str) -> Result<CollectorConfig, String> {
        CollectorConfig::parse(extra, Path::new("/etc/simpul/collector.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn disabled_unless_listen_is_set() {
        let cfg = parse("").expect("defaults");
        assert!(cfg.netflow.listen.is_none());
        assert!(!cfg.netflow.accept_unlisted);
    }

    #[test]
    fn exporters_map_to_agencies_and_nodes() {
        let cfg = parse(
            "[netflow]\nlisten = \"0.0.0.0:2055\"\n[[netflow.exporter]]\naddress = \"10.1.0.1\"\nagency = \"dinkes\"\nnode_id = \"dinkes-mt1\"\n",
        )
        .expect("valid");
        assert_eq!(cfg.netflow.exporter[0].agency.as_deref(), Some("dinkes"));
        assert_eq!(
            super::NetflowConfig::default_node_id("10.1.0.1".parse().expect("ip")),
            "nf-10-1-0-1"
        );
        assert_eq!(
            super::NetflowConfig::default_node_id("2001:db8::1".parse().expect("ip")),
            "nf-2001-db8--1"
        );
    }

    #[test]
    fn bad_exporters_are_refused_with_their_place() {
        let e = parse(
            "[netflow]\nlisten = \"0.0.0.0:2055\"\nmax_templates_per_exporter = 0\n[[netflow.exporter]]\naddress = \"10.1.0.1\"\nagency = \"Dinas Kesehatan\"\n[[netflow.exporter]]\naddress = \"10.1.0.1\"\n",
        )
        .expect_err("invalid");
        assert!(e.contains("netflow.exporter[0].agency"), "{e}");
        assert!(
            e.contains("netflow.exporter[1]: address 10.1.0.1 listed twice"),
            "{e}"
        );
        assert!(e.contains("netflow.max_templates_per_exporter"), "{e}");
        let e = parse("[netflow]\nlisten = \"0.0.0.0:2055\"\nport = 9\n").expect_err("unknown key");
        assert!(e.contains("port"), "{e}");
    }
}
