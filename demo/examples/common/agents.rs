// Shared by several examples, each using a part of it.
#![allow(dead_code)]

//! The benchmarks' fleet: a real collector in this process and real agents
//! (the agent's own link and control thread, as `simpul-agent run` wires
//! them in collector mode, with no enforcer: `[enforce]` naming no
//! interfaces), each with its own state directory, all on loopback TLS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use simpul_agent::control::{Control, ControlSettings, Source};
use simpul_agent::link::{HealthState, LinkOptions, Uplink};
use simpul_collector::config::CollectorConfig;
use simpul_collector::server::Collector;
use simpul_proto::inventory::{Agency, Capacity, Inventory, Node, Unit};
use simpul_proto::wire::feature;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `agencies` agencies of two units each; `nodes` spread over them.
pub fn inventory(agencies: &[String], nodes: &[(String, usize)]) -> Inventory {
    let uplink = Some(Capacity {
        down_bps: 200_000_000,
        up_bps: 100_000_000,
    });
    Inventory {
        intranet: vec!["10.0.0.0/8".into()],
        agencies: agencies
            .iter()
            .enumerate()
            .map(|(a, code)| Agency {
                code: code.clone(),
                name: format!("Agency {a}"),
                units: (0..2)
                    .map(|u| Unit {
                        code: format!("unit{u}"),
                        name: format!("Unit {u}"),
                        subnets: vec![format!("10.{}.{u}.0/24", a + 1)],
                    })
                    .collect(),
            })
            .collect(),
        nodes: nodes
            .iter()
            .map(|(id, a)| Node {
                id: id.clone(),
                agency: agencies[*a].clone(),
                uplink,
                ..Node::default()
            })
            .collect(),
        ..Inventory::default()
    }
}

pub struct Agent {
    pub node: String,
    pub state_dir: std::path::PathBuf,
    pub uplink: Uplink,
    /// Kept open as the agent keeps its processor's sink (no records).
    _sink: simpul_agent::link::LinkSink,
    pub control: Control,
}

pub struct Fleet {
    pub collector: Collector,
    pub agents: Vec<Agent>,
    pub codes: Vec<String>,
    /// (node id, agency index)
    pub node_ids: Vec<(String, usize)>,
    pub http: std::net::SocketAddr,
    /// Seconds until every agent held its inventory.
    pub connect_secs: f64,
}

/// A collector in `dir` (default settings but the per-address connection
/// cap: every link comes from 127.0.0.1) and `nodes` agents over
/// `agencies` agencies, every one connected and holding its inventory.
pub async fn start(dir: &std::path::Path, nodes: usize, agencies: usize) -> anyhow::Result<Fleet> {
    let cfg_text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\nmax_connections = 4096\nmax_connections_per_address = 4096\n[storage]\ndata_dir = \"{}\"\n",
        dir.join("data").display()
    );
    let cfg = CollectorConfig::parse(&cfg_text, std::path::Path::new("bench.toml"))?;
    let collector = Collector::start(cfg).await?;
    let codes: Vec<String> = (0..agencies).map(|a| format!("agency{a:02}")).collect();
    let node_ids: Vec<(String, usize)> = (0..nodes)
        .map(|i| {
            let a = i % agencies;
            (format!("{}-{:03}", codes[a], i / agencies), a)
        })
        .collect();
    collector
        .state
        .inventory
        .set(&inventory(&codes, &node_ids))?;
    let tls = collector
        .tls_addr
        .ok_or_else(|| anyhow::anyhow!("no TLS listener"))?;
    let http = collector
        .http_addr
        .ok_or_else(|| anyhow::anyhow!("no HTTP listener"))?;
    let ca = dir.join("data/tls/ca.pem");

    let started = Instant::now();
    let mut agents = Vec::new();
    for (node, _) in &node_ids {
        let token = collector.enrollment_token(node).await?;
        let mut c = simpul_agent::config::CollectorConfig::new(format!(
            "wss://127.0.0.1:{}/api/v1/agent",
            tls.port()
        ));
        c.enroll_token = Some(token);
        c.ca_cert = Some(ca.clone());
        let state_dir = dir.join(node);
        let health = Arc::new(HealthState::new());
        let (tx, rx) = crossbeam_channel::bounded(64);
        let options = LinkOptions {
            features: vec![
                feature::INVENTORY.into(),
                feature::POLICY.into(),
                feature::LISTS.into(),
            ],
            inbox: Some(tx),
        };
        let agent = tokio::task::block_in_place(|| -> anyhow::Result<Agent> {
            let (uplink, sink) = Uplink::start(&c, node, &state_dir, health.clone(), options)?;
            let control = Control::start(
                ControlSettings {
                    node_id: node.clone(),
                    state_dir: state_dir.clone(),
                    enforcer: None,
                    always_allow: Vec::new(),
                    health,
                    link: Some(uplink.control()),
                },
                Source::Collector { inbox: rx },
            )?;
            Ok(Agent {
                node: node.clone(),
                state_dir: state_dir.clone(),
                uplink,
                _sink: sink,
                control,
            })
        })?;
        agents.push(agent);
    }
    let have_inventory = async {
        loop {
            let n = agents
                .iter()
                .filter(|a| a.control.in_force().current().node.is_some())
                .count();
            if n == nodes {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(300), have_inventory)
        .await
        .map_err(|_| anyhow::anyhow!("not every agent got its inventory in 300 s"))?;
    Ok(Fleet {
        connect_secs: started.elapsed().as_secs_f64(),
        collector,
        agents,
        codes,
        node_ids,
        http,
    })
}

/// An admin API token on the fleet's collector.
pub fn admin_token(c: &Collector) -> anyhow::Result<String> {
    let (t, _) = c
        .state
        .access
        .create_api_token(&simpul_collector::store::NewApiToken {
            name: "bench",
            role: &simpul_collector::auth::Role::Admin,
            kiosk: false,
            created_by: "bench",
            now_ms: now_ms(),
            expires_ms: None,
        })?;
    Ok(t)
}

impl Fleet {
    /// Stop every agent (links first), then the collector.
    pub async fn stop(self) {
        for a in self.agents {
            let Agent {
                uplink, control, ..
            } = a;
            tokio::task::block_in_place(|| {
                control.stop();
                uplink.stop_within(Duration::from_millis(100));
            });
        }
        self.collector.stop().await;
    }
}
