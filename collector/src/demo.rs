//! `simpul-collector demo`: the collector on its embedded storage plus several
//! agencies' agents — the real agent code — replaying recorded captures at
//! their recorded speed, in a loop, over real TLS WebSocket connections.
//! Each agent also checks the traffic against a demo blocking policy, so the
//! dashboard's blocked-attempts panel has something to show.
//!
//! DEMO BEHAVIOUR, so the outage monitor has something to show within
//! seconds: two more agents of Dinas Pendidikan — the router of a kecamatan
//! office and a school behind it — reach the collector through a flaky
//! rural link ([`flaky_link`]) that is cut now and then; and one enrolled
//! node of Bappeda is switched off and never connects.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use simpul_agent::agency::AgencyMap;
use simpul_agent::config::AgentConfig;
use simpul_agent::policy::load::parse_policy;
use simpul_agent::policy::matcher::BlockMatcher;
use simpul_agent::processor::Processor;
use simpul_proto::policy::Policy;

use tokio::sync::watch;

use crate::config::{AgencyConfig, CollectorConfig, TopologyEntry, UnitConfig};
use crate::server::{agency_defs, Collector};
use crate::store::{Store, StoreConfig};

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

/// DEMO BEHAVIOUR: the router of a kecamatan office (critical: the schools
/// of the district hang off it) and a school behind it, whose agents reach
/// the collector through [`flaky_link`].
const FLAKY_HUB: &str = "disdik-kec-01";
const FLAKY_SCHOOL: &str = "disdik-sd-01";
const FLAKY_AGENCY: &str = "disdik";
/// The flaky link's first cut comes soon after the start (past the
/// monitor's startup grace of ~12 s), then one every `LINK_UP_FOR`.
const FIRST_CUT_AFTER: Duration = Duration::from_secs(20);
const LINK_CUT_FOR: Duration = Duration::from_secs(45);
/// Longer than the flap window (10 min) so that each cut shows as one
/// outage and one recovery, not as flapping.
const LINK_UP_FOR: Duration = Duration::from_secs(11 * 60);
/// DEMO DATA: enrolled, switched off, never connects: DOWN once the
/// monitor's startup grace has passed.
const SWITCHED_OFF: (&str, &str) = ("bappeda", "bappeda-02");

pub struct DemoOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
}

pub fn demo_config(opts: &DemoOptions) -> CollectorConfig {
    let mut cfg = CollectorConfig::default();
    cfg.server.listen = Some(opts.listen);
    cfg.server.listen_tls = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.storage.data_dir = opts.data_dir.clone();
    // The demo NOC is in WIB (times in notifications).
    cfg.notify.utc_offset = "+07:00".into();
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
    // The kecamatan router is the school's parent: when it goes, the
    // school's silence is one grouped outage, not two alarms.
    cfg.nodes.topology = vec![
        TopologyEntry {
            node: FLAKY_HUB.into(),
            parent: None,
            criticality: Some("critical".into()),
        },
        TopologyEntry {
            node: FLAKY_SCHOOL.into(),
            parent: Some(FLAKY_HUB.into()),
            criticality: Some("minor".into()),
        },
    ];
    cfg
}

/// The agent configuration of one demo node of `agency`: the fixture
/// clients' subnets belong to it.
fn agent_config(
    agency: &str,
    node: &str,
    collector_url: &str,
    ca: &Path,
    state_dir: &Path,
    token: &str,
) -> Result<AgentConfig> {
    let text = format!(
        r#"
[agent]
id = "{node}"

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

/// One demo agent: its node, and whether its link runs through the flaky
/// rural link.
struct DemoNode {
    agency: &'static str,
    node: String,
    policy: usize,
    flaky: bool,
}

/// Run until Ctrl-C.
pub async fn run(opts: DemoOptions) -> Result<()> {
    let cfg = demo_config(&opts);
    enroll_switched_off(&cfg)?;
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

    // The rural link: a relay in front of the collector's TLS port.
    let relay = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("demo: cannot listen for the flaky link")?;
    let relay_port = relay.local_addr()?.port();
    let (link_up, link_state) = watch::channel(true);
    let link_tasks = [
        tokio::spawn(flaky_link(relay, tls_addr, link_state)),
        tokio::spawn(cut_now_and_then(link_up)),
    ];

    let mut nodes: Vec<DemoNode> = AGENCIES
        .iter()
        .enumerate()
        .map(|(i, (code, _, _, _))| DemoNode {
            agency: code,
            node: format!("{code}-01"),
            policy: i,
            flaky: false,
        })
        .collect();
    let flaky_policy = AGENCIES
        .iter()
        .position(|a| a.0 == FLAKY_AGENCY)
        .unwrap_or(0);
    for node in [FLAKY_HUB, FLAKY_SCHOOL] {
        nodes.push(DemoNode {
            agency: FLAKY_AGENCY,
            node: node.to_string(),
            policy: flaky_policy,
            flaky: true,
        });
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut agents = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let state_dir = opts.data_dir.join("demo").join("agents").join(&n.node);
        std::fs::create_dir_all(&state_dir)?;
        let token = collector.enrollment_token(n.agency, &n.node).await?;
        let port = if n.flaky { relay_port } else { tls_addr.port() };
        let url = format!("wss://localhost:{port}{}", simpul_proto::wire::AGENT_PATH);
        let agent_cfg = agent_config(n.agency, &n.node, &url, &ca, &state_dir, &token)?;
        let policy = parse_policy(
            &demo_policy(n.agency, n.policy),
            Path::new("<demo policy>"),
            &agent_cfg,
        )
        .context("demo policy")?;
        // Each agent starts at a different capture so the wall is not
        // uniform; the small sites behind the rural link replay the small
        // captures only.
        let mut order = if n.flaky {
            small_captures(&pcaps)
        } else {
            pcaps.clone()
        };
        let len = order.len().max(1);
        order.rotate_left(i % len);
        let stop = stop.clone();
        agents.push(
            std::thread::Builder::new()
                .name(format!("demo-{}", n.node))
                .spawn(move || {
                    if let Err(e) = run_agent(&agent_cfg, &policy, &order, &stop) {
                        tracing::error!(node = %agent_cfg.agent.id, error = %e, "demo agent failed");
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
    println!(
        "Demo outages: {FLAKY_HUB} and {FLAKY_SCHOOL} (behind it) connect through a flaky link \
         (127.0.0.1:{relay_port}) cut for {} s after {} s and every {} min; {} is switched off.",
        LINK_CUT_FOR.as_secs(),
        FIRST_CUT_AFTER.as_secs(),
        LINK_UP_FOR.as_secs() / 60,
        SWITCHED_OFF.1
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
    for t in link_tasks {
        t.abort();
    }
    collector.stop().await;
    Ok(())
}

/// The captures of a few kilobytes (not the bulk download).
fn small_captures(pcaps: &[PathBuf]) -> Vec<PathBuf> {
    let small: Vec<PathBuf> = PCAPS
        .iter()
        .zip(pcaps)
        .filter(|((_, bytes), _)| bytes.len() < 64 * 1024)
        .map(|(_, p)| p.clone())
        .collect();
    if small.is_empty() {
        pcaps.to_vec()
    } else {
        small
    }
}

/// DEMO DATA: enroll the switched-off node before the collector starts, the
/// way every node is enrolled (a one-time token traded for a credential,
/// as `simpul-collector token` and an agent's first Enroll do), as if its
/// router had been installed earlier. No agent ever runs for it, so the
/// outage monitor, which watches every enrolled node from its start, finds
/// it silent. The credential is not kept: nothing will use it.
fn enroll_switched_off(cfg: &CollectorConfig) -> Result<()> {
    let (agency, node) = SWITCHED_OFF;
    let store = Store::open(&cfg.storage.data_dir, StoreConfig::default())
        .context("demo: cannot open storage")?;
    let enrolled = store
        .reader()?
        .nodes(
            SystemTime::now(),
            Duration::from_secs(cfg.nodes.down_after_secs),
        )?
        .iter()
        .any(|n| n.node_id == node);
    if enrolled {
        return Ok(());
    }
    let mut w = store.writer()?;
    w.sync_agencies(&agency_defs(&cfg.agencies))
        .context("demo: cannot store agencies")?;
    let token = w.create_enrollment_token(agency, node, Duration::from_secs(60))?;
    w.enroll(node, &token)
        .map_err(|e| anyhow::anyhow!("demo: cannot enroll {node}: {e}"))?;
    Ok(())
}

/// DEMO BEHAVIOUR: the rural link between the kecamatan office (and the
/// school behind it) and the collector — a TCP relay in front of the
/// collector's TLS port. TLS runs end to end through it: the agents talk to
/// the real collector and check its certificate as always. While the link
/// is cut, open connections break and new ones are dropped at once; the
/// agents notice, keep their batches in their spool, reconnect with
/// backoff and deliver what they kept once it is back, as over a real
/// flaky link.
async fn flaky_link(
    listener: tokio::net::TcpListener,
    collector: SocketAddr,
    up: watch::Receiver<bool>,
) {
    loop {
        let inbound = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "demo link: accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if !*up.borrow() {
            drop(inbound);
            continue;
        }
        let mut up = up.clone();
        tokio::spawn(async move {
            let mut inbound = inbound;
            let mut outbound = match tokio::net::TcpStream::connect(collector).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "demo link: cannot reach the collector");
                    return;
                }
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                // The cut: both connections are dropped.
                _ = up.wait_for(|up| !*up) => {}
            }
        });
    }
}

/// DEMO BEHAVIOUR: cut the rural link for `LINK_CUT_FOR`, first after
/// `FIRST_CUT_AFTER`, then every `LINK_UP_FOR`.
async fn cut_now_and_then(up: watch::Sender<bool>) {
    let mut wait = FIRST_CUT_AFTER;
    loop {
        tokio::time::sleep(wait).await;
        tracing::warn!(
            nodes = %format!("{FLAKY_HUB}, {FLAKY_SCHOOL}"),
            secs = LINK_CUT_FOR.as_secs(),
            "demo: the rural link is cut"
        );
        up.send_replace(false);
        tokio::time::sleep(LINK_CUT_FOR).await;
        tracing::info!("demo: the rural link is back");
        up.send_replace(true);
        wait = LINK_UP_FOR;
    }
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
            let cfg = agent_config(
                code,
                &format!("{code}-01"),
                "wss://localhost:1/x",
                dir.path(),
                dir.path(),
                "t",
            )
            .unwrap();
            let policy = parse_policy(&demo_policy(code, i), Path::new("<demo>"), &cfg)
                .unwrap_or_else(|e| panic!("{code}: {e}"));
            assert!(BlockMatcher::new(&policy, &cfg).blocks_names() || policy.blocking.block_quic);
        }
    }
}
