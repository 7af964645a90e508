//! `simpul-collector demo`: the collector on its embedded storage plus several
//! agencies' agents — the real agent code — replaying recorded captures at
//! their recorded speed, in a loop, over real TLS WebSocket connections.
//! Each agent also checks the traffic against a demo blocking policy, so the
//! dashboard's blocked-attempts panel has something to show.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use simpul_agent::agency::AgencyMap;
use simpul_agent::config::AgentConfig;
use simpul_agent::policy::load::parse_policy;
use simpul_agent::policy::matcher::BlockMatcher;
use simpul_agent::processor::Processor;
use simpul_proto::policy::Policy;

use crate::config::{AgencyConfig, CollectorConfig, UnitConfig};
use crate::server::Collector;

/// Captures recorded from real clients (tests/fixtures), shipped in the binary.
const PCAPS: &[(&str, &[u8])] = &[
    (
        "https.pcapng",
        include_bytes!("../../tests/fixtures/https.pcapng"),
    ),
    (
        "http.pcap",
        include_bytes!("../../tests/fixtures/http.pcap"),
    ),
    (
        "dns.pcapng",
        include_bytes!("../../tests/fixtures/dns.pcapng"),
    ),
    (
        "download.pcapng",
        include_bytes!("../../tests/fixtures/download.pcapng"),
    ),
    (
        "quic.pcapng",
        include_bytes!("../../tests/fixtures/quic.pcapng"),
    ),
    (
        "intranet.pcapng",
        include_bytes!("../../tests/fixtures/intranet.pcapng"),
    ),
    (
        "vlan.pcapng",
        include_bytes!("../../tests/fixtures/vlan.pcapng"),
    ),
    (
        "ipv6-frag.pcapng",
        include_bytes!("../../tests/fixtures/ipv6-frag.pcapng"),
    ),
];

/// (code, name, download bps, upload bps)
const AGENCIES: &[(&str, &str, u64, u64)] = &[
    (
        "diskominfo",
        "Dinas Komunikasi dan Informatika",
        4_000_000,
        2_000_000,
    ),
    ("dinkes", "Dinas Kesehatan", 3_000_000, 1_000_000),
    (
        "bappeda",
        "Badan Perencanaan Pembangunan Daerah",
        2_000_000,
        1_000_000,
    ),
    ("disdik", "Dinas Pendidikan", 3_000_000, 1_000_000),
];

pub struct DemoOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
}

pub fn demo_config(opts: &DemoOptions) -> CollectorConfig {
    let mut cfg = CollectorConfig::default();
    cfg.server.listen = Some(opts.listen);
    cfg.server.listen_tls = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.storage.data_dir = opts.data_dir.clone();
    cfg.uplink.capacity_down_bps = 20_000_000;
    cfg.uplink.capacity_up_bps = 10_000_000;
    cfg.agencies = AGENCIES
        .iter()
        .map(|(code, name, down, up)| AgencyConfig {
            code: code.to_string(),
            name: name.to_string(),
            alloc_down_bps: *down,
            alloc_up_bps: *up,
            units: vec![
                UnitConfig {
                    code: "sekretariat".into(),
                    name: "Sekretariat".into(),
                },
                UnitConfig {
                    code: "bidang-it".into(),
                    name: "Bidang Infrastruktur TI".into(),
                },
            ],
        })
        .collect();
    cfg
}

/// The agent configuration of one demo agency: the fixture clients' subnets
/// belong to it.
fn agent_config(
    agency: &str,
    collector_url: &str,
    ca: &Path,
    state_dir: &Path,
    token: &str,
) -> Result<AgentConfig> {
    let text = format!(
        r#"
[agent]
id = "{agency}-01"

[flows]
active_timeout_secs = 5
idle_timeout_secs = 15

[network]
intranet = ["10.99.0.0/16"]

[collector]
url = "{collector_url}"
ca_cert = "{ca}"
state_dir = "{state}"
enroll_token = "{token}"

[[agencies]]
code = "{agency}"

[[agencies.units]]
code = "sekretariat"
subnets = ["10.10.1.0/24", "fd00:10:10:1::/64", "10.110.0.0/24"]

[[agencies.units]]
code = "bidang-it"
subnets = ["10.10.2.0/24", "10.120.0.0/24"]
"#,
        ca = ca.display(),
        state = state_dir.display(),
    );
    AgentConfig::parse(&text, Path::new("<demo agent>")).context("demo agent config")
}

/// DEMO DATA: the blocking policy of demo agency number `i`. Its rules are
/// picked so that the recorded fixture traffic (tests/fixtures/README.md)
/// hits them: SNI `mail.example.com`, `sso.example.go.id`, QUIC
/// `video.example.com`, HTTP `www.example.com`/`news.example.com`, the echo
/// service on tcp/7000, QUIC itself. A replay enforces nothing (the traffic
/// still shows on the wall); the agent's policy matcher reports what it
/// would have blocked as `BlockedAttempt`s, which travel through the same
/// link, spool, WebSocket and ingest as a live agent's.
fn demo_policy(agency: &str, i: usize) -> String {
    let blocking = match i % 4 {
        0 => {
            r#"domains = ["mail.example.com"]
ports = [{ proto = "tcp", port = 7000 }]
enabled_categories = ["judi"]
[blocking.categories]
judi = ["sso.example.go.id"]"#
        }
        1 => {
            r#"domains = ["www.example.com"]
enabled_categories = ["hiburan"]
[blocking.categories]
hiburan = ["video.example.com", "news.example.com"]"#
        }
        2 => {
            r#"domains = ["example.com"]
allow_domains = ["news.example.com"]
ports = [{ proto = "tcp", port = 7000 }]"#
        }
        _ => {
            r#"enabled_categories = ["hiburan"]
block_quic = true
[blocking.categories]
hiburan = ["news.example.com", "mail.example.com"]"#
        }
    };
    format!(
        r#"version = 1
agency = "{agency}"
[allocation]
download = {{ rate_bps = 1000000, ceil_bps = 2000000 }}
upload = {{ rate_bps = 500000, ceil_bps = 1000000 }}
[blocking]
{blocking}
"#
    )
}

/// Run until Ctrl-C.
pub async fn run(opts: DemoOptions) -> Result<()> {
    let cfg = demo_config(&opts);
    let collector = Collector::start(cfg.clone()).await?;
    let tls_addr = collector.tls_addr.context("demo needs the TLS listener")?;
    let ca = collector
        .tls
        .ca_cert
        .clone()
        .context("demo uses the generated CA")?;

    let pcap_dir = opts.data_dir.join("demo").join("pcaps");
    std::fs::create_dir_all(&pcap_dir)?;
    let mut pcaps = Vec::new();
    for (name, bytes) in PCAPS {
        let p = pcap_dir.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))?;
        pcaps.push(p);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut agents = Vec::new();
    for (i, (code, _, _, _)) in AGENCIES.iter().enumerate() {
        let node = format!("{code}-01");
        let state_dir = opts.data_dir.join("demo").join("agents").join(&node);
        std::fs::create_dir_all(&state_dir)?;
        let token = collector.enrollment_token(code, &node).await?;
        let url = format!(
            "wss://localhost:{}{}",
            tls_addr.port(),
            simpul_proto::wire::AGENT_PATH
        );
        let agent_cfg = agent_config(code, &url, &ca, &state_dir, &token)?;
        let policy = parse_policy(
            &demo_policy(code, i),
            Path::new("<demo policy>"),
            &agent_cfg,
        )
        .context("demo policy")?;
        // Each agency starts at a different capture so the wall is not uniform.
        let mut order = pcaps.clone();
        order.rotate_left(i % pcaps.len());
        let stop = stop.clone();
        agents.push(
            std::thread::Builder::new()
                .name(format!("demo-{code}"))
                .spawn(move || {
                    if let Err(e) = run_agent(&agent_cfg, &policy, &order, &stop) {
                        tracing::error!(agency = %agent_cfg.agent.id, error = %e, "demo agent failed");
                    }
                })?,
        );
    }

    if let Some(addr) = collector.http_addr {
        println!("Dashboard: http://{addr}/");
    }
    println!(
        "Agents connect to wss://localhost:{}{} (CA: {})",
        tls_addr.port(),
        simpul_proto::wire::AGENT_PATH,
        ca.display()
    );
    println!("Press Ctrl-C to stop.");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    tokio::signal::ctrl_c().await.ok();
    tracing::info!("stopping demo");
    stop.store(true, Ordering::SeqCst);
    for a in agents {
        let _ = tokio::task::spawn_blocking(move || a.join()).await;
    }
    collector.stop().await;
    Ok(())
}

fn run_agent(
    cfg: &AgentConfig,
    policy: &Policy,
    pcaps: &[PathBuf],
    stop: &AtomicBool,
) -> Result<()> {
    let label = Path::new("<demo agent>");
    let map = AgencyMap::new(
        &cfg.agencies,
        &cfg.subnet_assignments(label)?,
        cfg.intranet_networks(label)?,
    );
    let collector = cfg
        .collector
        .as_ref()
        .context("demo agent has a [collector] section")?;
    let health = Arc::new(simpul_agent::link::HealthState::new());
    let (uplink, sink) = simpul_agent::link::Uplink::start(collector, health.clone())?;
    let mut proc = Processor::new(cfg, map, sink);
    proc.guard_mut()
        .set_matcher(Some(Arc::new(BlockMatcher::new(policy, cfg))));
    simpul_agent::replay::replay_realtime_with(pcaps, &mut proc, true, stop, |p, now| {
        health.record_processor(p);
        simpul_agent::link::TimedSink::on_tick(p.sink_mut(), now);
    })?;
    proc.finish();
    proc.sink_mut().seal_now();
    uplink.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_policies_are_valid_and_block_something() {
        let dir = tempfile::tempdir().unwrap();
        for (i, (code, _, _, _)) in AGENCIES.iter().enumerate() {
            let cfg =
                agent_config(code, "wss://localhost:1/x", dir.path(), dir.path(), "t").unwrap();
            let policy = parse_policy(&demo_policy(code, i), Path::new("<demo>"), &cfg)
                .unwrap_or_else(|e| panic!("{code}: {e}"));
            assert!(BlockMatcher::new(&policy, &cfg).blocks_names() || policy.blocking.block_quic);
        }
    }
}
