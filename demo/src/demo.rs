//! The demo: the collector on its embedded storage plus several agencies'
//! agents — the real agent component — replaying recorded captures at their
//! recorded speed, in a loop, over real TLS WebSocket connections. The
//! inventory and the agencies' policies are files in the data directory
//! (`demo/inventory.toml`, `demo/policies/`): edit them while the demo runs
//! and the collector signs, versions and pushes the change to the agents.
//! Each agent checks its traffic against its agency's blocking rules, so the
//! dashboard's blocked-attempts panel has something to show.
//!
//! DEMO BEHAVIOUR, so the outage monitor has something to show within
//! seconds: two more agents of Dinas Pendidikan — the router of a kecamatan
//! office and a school behind it — reach the collector through a flaky
//! rural link ([`flaky_link`]) that is cut now and then; and one enrolled
//! node of Bappeda is switched off and never connects.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::province::AgencyDef;
use anyhow::{Context, Result};
use simpul_agent::agent::{Agent, AgentOptions, Capture, Outputs};
use simpul_agent::config::{AgentConfig, CollectorConfig as AgentLink};
use simpul_collector::config::CollectorConfig;
use simpul_collector::inventory::Inventories;
use simpul_collector::server::Collector;
use simpul_collector::store::{ControlStore, Store, StoreConfig};
use tokio::sync::watch;

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
    /// Agencies (the first four are the demo's own; more make a
    /// province-sized demo, up to [`crate::rewrite::MAX_AGENCIES`]).
    pub agencies: usize,
    /// Real agents in all (at least the demo's own six).
    pub agents: usize,
}

/// The demo's usual agents: one per first agency and the two behind the
/// rural link.
pub const USUAL_AGENTS: usize = 6;

impl DemoOptions {
    fn agencies(&self) -> Vec<AgencyDef> {
        crate::province::agencies(AGENCIES, self.agencies)
    }

    /// The agents beyond the usual ones: (agency index, node id).
    fn extra_nodes(&self) -> Vec<(usize, String)> {
        crate::province::extra_nodes(
            &self.agencies(),
            AGENCIES.len(),
            self.agents.saturating_sub(USUAL_AGENTS),
        )
    }

    /// Checks the sizes asked for.
    pub fn check(&self) -> Result<()> {
        let most = crate::rewrite::MAX_AGENCIES.min(crate::province::max_named(AGENCIES.len()));
        anyhow::ensure!(
            (AGENCIES.len()..=most).contains(&self.agencies),
            "--agencies must be {}..={most} (the demo gives each its own addresses)",
            AGENCIES.len()
        );
        anyhow::ensure!(
            (USUAL_AGENTS..=1000).contains(&self.agents),
            "--agents must be {USUAL_AGENTS}..=1000"
        );
        Ok(())
    }

    /// The first line of the demo's inventory: which size made it.
    fn size_line(&self) -> String {
        format!(
            "# simpul-demo size: {} agencies, {} agents\n",
            self.agencies, self.agents
        )
    }
}

/// Where the demo keeps its inventory, policies, captures and agents.
fn demo_dir(opts: &DemoOptions) -> PathBuf {
    opts.data_dir.join("demo")
}

pub fn demo_config(opts: &DemoOptions) -> CollectorConfig {
    let mut cfg = CollectorConfig::default();
    cfg.server.listen = Some(opts.listen);
    cfg.server.listen_tls = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.storage.data_dir = opts.data_dir.clone();
    cfg.inventory.file = Some(demo_dir(opts).join("inventory.toml"));
    cfg.policy.dir = Some(demo_dir(opts).join("policies"));
    // Every demo agent connects from this host: room for all of them
    // beside the browsers.
    cfg.server.max_connections_per_address =
        cfg.server.max_connections_per_address.max(opts.agents + 64);
    // The demo NOC is in WIB (times in notifications).
    cfg.notify.utc_offset = "+07:00".into();
    // A router that exports NetFlow instead of running the agent.
    cfg.netflow.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.netflow.exporter = vec![simpul_collector::netflow::ExporterConfig {
        address: std::net::IpAddr::from([127, 0, 0, 1]),
        agency: Some(crate::exporter::AGENCY.into()),
        node_id: Some(crate::exporter::NODE.into()),
    }];
    cfg
}

/// DEMO DATA: the province's inventory. Each agency owns the fixture client
/// networks moved to its own addresses (see `rewrite`); the kecamatan
/// router is the school's parent, so when it goes, the school's silence is
/// one grouped outage, not two alarms.
fn demo_inventory(opts: &DemoOptions) -> String {
    let agencies = opts.agencies();
    // The central uplink carries every agency's guaranteed rate (the
    // usual demo's 20/10 Mbit/s; more for a province).
    let down: u64 = agencies.iter().map(|a| a.down_bps).sum();
    let up: u64 = agencies.iter().map(|a| a.up_bps).sum();
    let (down, up) = (down.max(20_000_000), up.max(10_000_000));
    let mut t = opts.size_line();
    t.push_str(&format!(
        "# Demo inventory (made by simpul-demo; edit it while the demo runs).\n\
         intranet = [\"10.99.0.0/16\"]\n\
         uplink = {{ down_bps = {down}, up_bps = {up} }}\n",
    ));
    for (i, a) in agencies.iter().enumerate() {
        let (code, name) = (&a.code, &a.name);
        let (sek, it) = crate::rewrite::subnets(i as u8);
        t.push_str(&format!(
            "\n[[agencies]]\ncode = \"{code}\"\nname = \"{name}\"\n\
             [[agencies.units]]\ncode = \"sekretariat\"\nname = \"Sekretariat\"\nsubnets = {sek:?}\n\
             [[agencies.units]]\ncode = \"bidang-it\"\nname = \"Bidang Infrastruktur TI\"\nsubnets = {it:?}\n"
        ));
    }
    let usual = agencies
        .iter()
        .take(AGENCIES.len())
        .map(|a| (a.code.clone(), format!("{}-01", a.code)));
    let extra = opts
        .extra_nodes()
        .into_iter()
        .map(|(i, node)| (agencies[i].code.clone(), node));
    for (code, node) in usual.chain(extra) {
        t.push_str(&format!(
            "\n[[nodes]]\nid = \"{node}\"\nagency = \"{code}\"\nuplink = {{ down_bps = 10000000, up_bps = 5000000 }}\n"
        ));
    }
    t.push_str(&format!(
        "\n[[nodes]]\nid = \"{FLAKY_HUB}\"\nagency = \"{FLAKY_AGENCY}\"\ncriticality = \"critical\"\n\
         \n[[nodes]]\nid = \"{FLAKY_SCHOOL}\"\nagency = \"{FLAKY_AGENCY}\"\nparent = \"{FLAKY_HUB}\"\ncriticality = \"minor\"\n\
         \n[[nodes]]\nid = \"{}\"\nagency = \"{}\"\n\
         \n[[nodes]]\nid = \"{}\"\nagency = \"{}\"\n",
        SWITCHED_OFF.1,
        SWITCHED_OFF.0,
        crate::exporter::NODE,
        crate::exporter::AGENCY
    ));
    t
}

/// Write the demo's inventory and policies unless they are there already
/// (an operator's edits survive a restart of the demo).
fn write_demo_files(opts: &DemoOptions) -> Result<()> {
    let dir = demo_dir(opts);
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies)
        .with_context(|| format!("cannot create {}", policies.display()))?;
    let inv = dir.join("inventory.toml");
    match std::fs::read_to_string(&inv) {
        Ok(text) => {
            // Another size's inventory would leave agents without a node.
            let made = text.lines().find(|l| l.starts_with("# simpul-demo size:"));
            let wanted = opts.size_line();
            let usual = opts.agencies == AGENCIES.len() && opts.agents == USUAL_AGENTS;
            if made.map_or(!usual, |l| l != wanted.trim_end()) {
                anyhow::bail!(
                    "{} was made for another demo size ({}); use another --data-dir",
                    inv.display(),
                    made.unwrap_or("the usual demo")
                );
            }
        }
        Err(_) => std::fs::write(&inv, demo_inventory(opts))
            .with_context(|| format!("cannot write {}", inv.display()))?,
    }
    for (i, a) in opts.agencies().iter().enumerate() {
        let p = policies.join(format!("{}.toml", a.code));
        if !p.exists() {
            std::fs::write(&p, demo_policy(a, i))
                .with_context(|| format!("cannot write {}", p.display()))?;
        }
    }
    Ok(())
}

/// DEMO DATA: the blocking policy of demo agency number `i`. Its rules are
/// picked so that the recorded fixture traffic (tests/fixtures/README.md)
/// hits them: SNI `mail.example.com`, `sso.example.go.id`, QUIC
/// `video.example.com`, HTTP `www.example.com`/`news.example.com`, the echo
/// service on tcp/7000, QUIC itself. A replay enforces nothing (the traffic
/// still shows on the wall); the agent's policy matcher reports what it
/// would have blocked as `BlockedAttempt`s, which travel through the same
/// link, spool, WebSocket and ingest as a live agent's.
fn demo_policy(a: &AgencyDef, i: usize) -> String {
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
    let (code, name, down, up) = (&a.code, &a.name, a.down_bps, a.up_bps);
    format!(
        r#"# Demo policy of {name} (made by simpul-demo; edit it while the demo
# runs: the collector signs the change and every node of the agency
# enforces it within a second). Rates in bits per second.
agency = "{code}"
[allocation]
download = {{ rate_bps = {down}, ceil_bps = {ceil_down} }}
upload = {{ rate_bps = {up}, ceil_bps = {ceil_up} }}
[blocking]
{blocking}
"#,
        ceil_down = down * 2,
        ceil_up = up * 2,
    )
}

/// One demo agent: its node, its agency's number (for its captures), and
/// whether its link runs through the flaky rural link.
struct DemoNode {
    node: String,
    agency: usize,
    flaky: bool,
}

/// The agent configuration of one demo node.
fn agent_config(node: &str, url: &str, ca: &Path, state_dir: &Path, token: &str) -> AgentConfig {
    let mut cfg = AgentConfig::default();
    cfg.agent.id = node.to_string();
    cfg.agent.state_dir = state_dir.to_owned();
    cfg.flows.active_timeout_secs = 5;
    cfg.flows.idle_timeout_secs = 15;
    let mut link = AgentLink::new(url);
    link.ca_cert = Some(ca.to_owned());
    link.enroll_token = Some(token.to_string());
    cfg.collector = Some(link);
    cfg
}

/// The captures of agency `i`, its client addresses moved to its subnets.
/// The agencies a province-sized demo adds replay the small captures only
/// (not the bulk download), so 120 agents fit on a small machine.
fn agency_captures(dir: &Path, i: usize) -> Result<Vec<PathBuf>> {
    let dir = dir.join(format!("agency-{i}"));
    std::fs::create_dir_all(&dir)?;
    let mut out = Vec::new();
    let added = i >= AGENCIES.len();
    for (name, bytes) in PCAPS {
        if added && bytes.len() >= SMALL_CAPTURE {
            continue;
        }
        let p = dir.join(name).with_extension("pcap");
        crate::rewrite::rewrite_capture(bytes, &p, i as u8)?;
        out.push(p);
    }
    Ok(out)
}

/// Agents started at once.
const START_AT_ONCE: usize = 8;

/// Run until SIGINT or SIGTERM.
pub async fn run(opts: DemoOptions) -> Result<()> {
    opts.check()?;
    write_demo_files(&opts)?;
    let cfg = demo_config(&opts);
    enroll_switched_off(&cfg)?;
    let collector = Collector::start(cfg.clone()).await?;
    let tls_addr = collector.tls_addr.context("demo needs the TLS listener")?;
    let ca = collector
        .tls
        .ca_cert
        .clone()
        .context("demo uses the generated CA")?;

    let pcap_dir = demo_dir(&opts).join("pcaps");
    let captures: Vec<Vec<PathBuf>> = (0..opts.agencies)
        .map(|i| agency_captures(&pcap_dir, i))
        .collect::<Result<_>>()?;

    // The rural link: a relay in front of the collector's TLS port.
    let relay = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("demo: cannot listen for the flaky link")?;
    let relay_port = relay.local_addr()?.port();
    let (link_up, link_state) = watch::channel(true);
    let mut link_tasks = vec![
        tokio::spawn(flaky_link(relay, tls_addr, link_state)),
        tokio::spawn(cut_now_and_then(link_up)),
    ];
    if let Some(to) = collector.netflow_addr {
        link_tasks.push(tokio::spawn(crate::exporter::run(to)));
    }

    let mut nodes: Vec<DemoNode> = AGENCIES
        .iter()
        .enumerate()
        .map(|(i, (code, _, _, _))| DemoNode {
            node: format!("{code}-01"),
            agency: i,
            flaky: false,
        })
        .collect();
    let flaky_agency = AGENCIES
        .iter()
        .position(|a| a.0 == FLAKY_AGENCY)
        .unwrap_or(0);
    for node in [FLAKY_HUB, FLAKY_SCHOOL] {
        nodes.push(DemoNode {
            node: node.to_string(),
            agency: flaky_agency,
            flaky: true,
        });
    }
    for (agency, node) in opts.extra_nodes() {
        nodes.push(DemoNode {
            node,
            agency,
            flaky: false,
        });
    }

    // Started a few at a time: a province's worth one by one takes long.
    let mut agents = Vec::new();
    let mut starting = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let state_dir = demo_dir(&opts).join("agents").join(&n.node);
        let token = collector.enrollment_token(&n.node).await?;
        let port = if n.flaky { relay_port } else { tls_addr.port() };
        let url = format!("wss://localhost:{port}{}", simpul_proto::wire::AGENT_PATH);
        let agent_cfg = agent_config(&n.node, &url, &ca, &state_dir, &token);
        // Each agent starts at a different capture so the wall is not
        // uniform; the small sites behind the rural link replay the small
        // captures only.
        let mut order = if n.flaky {
            small_captures(&captures[n.agency])
        } else {
            captures[n.agency].clone()
        };
        let len = order.len().max(1);
        order.rotate_left(i % len);
        let options = AgentOptions {
            capture: Capture::Replay {
                pcaps: order,
                realtime: true,
                looping: true,
            },
            outputs: Outputs::default(),
            fixed: None,
            // The flaky ones may start while their link is cut.
            wait_for_inventory: Some(Duration::from_secs(if n.flaky { 1 } else { 10 })),
            enforce: false,
        };
        let node = n.node.clone();
        starting.push(tokio::task::spawn_blocking(move || {
            Agent::start(agent_cfg, options).with_context(|| format!("demo agent {node}"))
        }));
        if starting.len() >= START_AT_ONCE {
            for s in starting.drain(..) {
                agents.push(s.await??);
            }
        }
    }
    for s in starting {
        agents.push(s.await??);
    }

    // The officer's agency: one whose node is up (so its page has traffic).
    let officer_agency = "dinkes";
    let creds = crate::accounts::ensure(
        collector.state.access.as_ref(),
        &opts.data_dir,
        officer_agency,
    )
    .context("demo: cannot create the demo accounts")?;
    if let Some(addr) = collector.http_addr {
        println!("Dashboard: http://{addr}/");
        println!(
            "Wall (kiosk, read-only): http://{addr}/?kiosk={}",
            creds.kiosk_token
        );
    }
    println!(
        "Log in as (ROLE USERNAME PASSWORD; also in {}):",
        crate::accounts::credentials_path(&opts.data_dir).display()
    );
    for l in &creds.lines {
        println!("  {l}");
    }
    println!(
        "Agents connect to wss://localhost:{}{} (CA: {})",
        tls_addr.port(),
        simpul_proto::wire::AGENT_PATH,
        ca.display()
    );
    println!(
        "Inventory and policies: {} and {} (edit them: the agents follow within seconds)",
        demo_dir(&opts).join("inventory.toml").display(),
        demo_dir(&opts).join("policies").display()
    );
    println!(
        "Demo outages: {FLAKY_HUB} and {FLAKY_SCHOOL} (behind it) connect through a flaky link \
         (127.0.0.1:{relay_port}) cut for {} s after {} s and every {} min; {} is switched off.",
        LINK_CUT_FOR.as_secs(),
        FIRST_CUT_AFTER.as_secs(),
        LINK_UP_FOR.as_secs() / 60,
        SWITCHED_OFF.1
    );
    if let Some(to) = collector.netflow_addr {
        println!(
            "NetFlow: {} (a router of {}) exports NetFlow v9 sampled 1:{} to {to}",
            crate::exporter::NODE,
            crate::exporter::AGENCY,
            crate::exporter::SAMPLING
        );
    }
    println!("Press Ctrl-C to stop.");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    crate::stop_signal().await?;
    tracing::info!("stopping demo");
    // All at once: each waits a few seconds for its link to drain, which
    // one after another is minutes for a province.
    let stopping: Vec<_> = agents
        .into_iter()
        .map(|a| tokio::task::spawn_blocking(move || a.stop()))
        .collect();
    for s in stopping {
        let _ = s.await;
    }
    for t in link_tasks {
        t.abort();
    }
    collector.stop().await;
    Ok(())
}

/// Captures smaller than this are "small" (all but the bulk download).
const SMALL_CAPTURE: usize = 64 * 1024;

/// The captures of a few kilobytes (not the bulk download).
fn small_captures(pcaps: &[PathBuf]) -> Vec<PathBuf> {
    let small: Vec<PathBuf> = PCAPS
        .iter()
        .zip(pcaps)
        .filter(|((_, bytes), _)| bytes.len() < SMALL_CAPTURE)
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
    let store = Arc::new(
        Store::open(&cfg.storage.data_dir, StoreConfig::default())
            .context("demo: cannot open storage")?,
    );
    let enrolled = store
        .nodes(std::time::SystemTime::now(), Duration::from_secs(10))?
        .iter()
        .any(|n| n.node_id == node);
    if enrolled {
        return Ok(());
    }
    // The registry learns the agencies from the inventory.
    Inventories::load(store.clone(), cfg.inventory.file.clone())?;
    let token = store.create_enrollment_token(agency, node, Duration::from_secs(60))?;
    store
        .enroll(node, &token)
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

#[cfg(test)]
mod tests {
    use super::*;
    use simpul_core::inventory::NodeView;
    use simpul_core::policy::{validate, PolicyScope};
    use simpul_proto::policy::Policy;
    use simpul_proto::Inventory;

    fn opts(agencies: usize, agents: usize) -> DemoOptions {
        DemoOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: PathBuf::from("unused"),
            agencies,
            agents,
        }
    }

    /// The usual demo and the province-sized one: valid inventories (no
    /// overlapping subnets), every agent's node in it, every policy valid
    /// on its nodes, guaranteed rates within the central uplink.
    #[test]
    fn demo_inventory_and_policies_are_valid_and_block_something() {
        for o in [opts(4, USUAL_AGENTS), opts(60, 120)] {
            o.check().unwrap();
            let inv = Inventory::parse(&demo_inventory(&o)).unwrap();
            simpul_core::inventory::validate(&inv).unwrap();
            assert_eq!(inv.agencies.len(), o.agencies);
            // Every agent but the two behind the rural link has an uplink.
            let with_uplink = inv.nodes.iter().filter(|n| n.uplink.is_some()).count();
            assert_eq!(with_uplink, o.agents - 2);
            let uplink = inv.uplink.unwrap();
            let (mut down, mut up) = (0, 0);
            for (i, a) in o.agencies().iter().enumerate() {
                let code = &a.code;
                let view = NodeView::from_inventory(&inv, &format!("{code}-01")).unwrap();
                let mut p = Policy::parse(&demo_policy(a, i)).unwrap();
                p.version = 1;
                let scope = PolicyScope {
                    agency: Some(&view.agency),
                    uplink: simpul_core::inventory::agency_uplink(&inv, code),
                };
                validate(&p, &scope).unwrap_or_else(|e| panic!("{code}: {e:?}"));
                assert!(
                    !p.blocking.domains.is_empty()
                        || !p.blocking.enabled_categories.is_empty()
                        || p.blocking.block_quic
                );
                down += p.allocation.download.rate_bps;
                up += p.allocation.upload.rate_bps;
            }
            assert!(down <= uplink.down_bps && up <= uplink.up_bps);
        }
        assert!(opts(61, 120).check().is_err());
        assert!(opts(60, 5).check().is_err());
    }
}
