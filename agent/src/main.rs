//! `simpul-agent`: replay pcaps or capture live; see `--help`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use simpul_agent::agency::AgencyMap;
use simpul_agent::attempts::Attempt;
use simpul_agent::capture::live::LiveCapture;
use simpul_agent::config::AgentConfig;
use simpul_agent::decode::{DecodeError, LinkType};
use simpul_agent::dnsproxy::{BlockAction, BlockEvent, DnsProxyConfig, DnsService};
use simpul_agent::enforce::names::NameBlocker;
use simpul_agent::enforce::{EnforceError, Enforcer, Outcome};
use simpul_agent::link::{HealthState, LinkSink, Tee, TimedSink, Uplink};
use simpul_agent::output::JsonlSink;
use simpul_agent::policy::load::{load_policy, parse_policy};
use simpul_agent::policy::matcher::{BlockMatcher, RuleHit};
use simpul_agent::processor::{Processor, ProcessorStats};
use simpul_proto::policy::Policy;

/// Where records go: JSON lines (either file optional) and the collector link
/// when the config has `[collector]`.
type Sinks = Tee<JsonlSink, Option<LinkSink>>;

#[derive(Parser)]
#[command(
    name = "simpul-agent",
    version,
    about = "Simpul edge agent: flows, site names and agency usage from packets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read pcap/pcapng files (as fast as possible, or at recorded speed
    /// with --realtime) and write their flows to files and/or the collector.
    Replay {
        /// pcap or pcapng file (repeat for several, read in order).
        #[arg(long, required = true)]
        pcap: Vec<PathBuf>,
        /// agent.toml (agencies, intranet, timeouts, [collector]); defaults
        /// apply without it. With [collector], records stream to the collector.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Final flow records, one JSON object per line (optional when the
        /// config has a [collector] section).
        #[arg(long)]
        flows_out: Option<PathBuf>,
        /// Also write interim (active-timeout) records to --flows-out.
        #[arg(long)]
        interim: bool,
        /// Per-second counters per agency/unit, one JSON object per line.
        #[arg(long)]
        counters_out: Option<PathBuf>,
        /// Print the summary as JSON instead of text.
        #[arg(long)]
        json_summary: bool,
        /// Pace packets at their recorded speed with timestamps shifted to
        /// now, so the replay looks like live capture.
        #[arg(long)]
        realtime: bool,
        /// With --realtime: start over at the end, until interrupted.
        #[arg(long = "loop", requires = "realtime")]
        looping: bool,
        /// Check the traffic against this policy's blocking rules (nothing is
        /// enforced in a replay): blocked attempts go to --blocked-out and
        /// to the collector.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Blocked attempts, one JSON object per line (appended).
        #[arg(long, requires = "policy")]
        blocked_out: Option<PathBuf>,
    },
    /// Capture live on the configured interfaces. With [enforce], the last
    /// good policy and then enforce.policy_file are applied first.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Bandwidth/access policy: check, show the kernel plan, apply once.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Debugging tool: run only the DNS responder — blocked names get
    /// NXDOMAIN (or the block-page address), the rest go to --upstream.
    #[command(hide = true)]
    DnsProxy(simpul_agent::dnsproxy::DnsProxyArgs),
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Validate a policy file (TOML or JSON); every problem with its place.
    Check {
        file: PathBuf,
        /// agent.toml: unit codes, [enforce] uplink. Without it only the
        /// policy's own structure is checked.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the nft and tc batches the policy becomes on this node.
    Plan {
        file: PathBuf,
        #[arg(long)]
        config: PathBuf,
        /// Plan for this time (RFC 3339) instead of now (schedules).
        #[arg(long)]
        at: Option<String>,
    },
    /// Validate and apply a policy now, then exit (the kernel keeps it).
    Apply {
        file: PathBuf,
        #[arg(long)]
        config: PathBuf,
        /// Apply the rates of this time (RFC 3339) instead of now: previews
        /// and tests of schedule windows.
        #[arg(long)]
        at: Option<String>,
    },
}

fn main() {
    simpul_agent::logging::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay {
            pcap,
            config,
            flows_out,
            interim,
            counters_out,
            json_summary,
            realtime,
            looping,
            policy,
            blocked_out,
        } => replay(&ReplayArgs {
            pcaps: &pcap,
            config: config.as_deref(),
            flows_out: flows_out.as_deref(),
            interim,
            counters_out: counters_out.as_deref(),
            json_summary,
            realtime,
            looping,
            policy: policy.as_deref(),
            blocked_out: blocked_out.as_deref(),
        }),
        Command::Run { config } => run(&config),
        Command::Policy { action } => policy_command(action),
        Command::DnsProxy(args) => simpul_agent::dnsproxy::run_cli(&args).map_err(Into::into),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load(config: Option<&Path>) -> Result<(AgentConfig, AgencyMap)> {
    let cfg = match config {
        Some(p) => AgentConfig::load(p)?,
        None => AgentConfig::default(),
    };
    let label = config.unwrap_or(Path::new("<defaults>"));
    let map = cfg.agency_map(label)?;
    Ok((cfg, map))
}

struct ReplayArgs<'a> {
    pcaps: &'a [PathBuf],
    config: Option<&'a Path>,
    flows_out: Option<&'a Path>,
    interim: bool,
    counters_out: Option<&'a Path>,
    json_summary: bool,
    realtime: bool,
    looping: bool,
    policy: Option<&'a Path>,
    blocked_out: Option<&'a Path>,
}

/// Start the collector link when the config has `[collector]`.
fn start_link(
    cfg: &AgentConfig,
    health: &Arc<HealthState>,
) -> Result<(Option<Uplink>, Option<LinkSink>)> {
    match &cfg.collector {
        Some(c) => {
            let (uplink, sink) =
                Uplink::start(c, health.clone()).context("cannot start the collector link")?;
            Ok((Some(uplink), Some(sink)))
        }
        None => Ok((None, None)),
    }
}

/// Hand the last records to the link and deliver them for a bounded time.
fn stop_link(
    proc: &mut Processor<Sinks>,
    uplink: Option<Uplink>,
) -> Option<simpul_agent::link::StopReport> {
    if let Some(link) = proc.sink_mut().1.as_mut() {
        link.seal_now();
    }
    uplink.map(Uplink::stop)
}

fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handler")?;
    }
    Ok(stop)
}

fn replay(a: &ReplayArgs<'_>) -> Result<()> {
    let (cfg, map) = load(a.config)?;
    if a.flows_out.is_none() && cfg.collector.is_none() {
        bail!("--flows-out is required unless the config has a [collector] section");
    }
    let matcher = match a.policy {
        Some(path) => Some(Arc::new(BlockMatcher::new(&load_policy(path, &cfg)?, &cfg))),
        None => None,
    };
    let jsonl = JsonlSink::create_all(a.flows_out, a.counters_out, a.blocked_out, a.interim)
        .context("cannot create the output files")?;
    let health = Arc::new(HealthState::new());
    let (uplink, link) = start_link(&cfg, &health)?;
    let to_collector = link.is_some();
    let mut proc = Processor::new(&cfg, map, Tee(jsonl, link));
    proc.guard_mut().set_matcher(matcher);
    // The collector wants interim records (long flows show up live); the
    // JSONL sink still writes them only with --interim.
    proc.set_interim_records(a.interim || to_collector);
    let started = Instant::now();
    let mut truncated = Vec::new();
    let outcomes = if a.realtime {
        let stop = stop_flag()?;
        let summary = simpul_agent::replay::replay_realtime_with(
            a.pcaps,
            &mut proc,
            a.looping,
            &stop,
            |p, now| {
                p.sink_mut().on_tick(now);
                health.record_processor(p);
            },
        )?;
        if summary.stopped {
            tracing::info!(passes = summary.passes, "replay interrupted");
        }
        summary.files
    } else {
        simpul_agent::replay::replay_files(a.pcaps, &mut proc)?
    };
    for outcome in outcomes {
        if let Some(off) = outcome.truncated_at {
            tracing::warn!(file = %outcome.path.display(), offset = off, "file ends inside a record (capture cut short); read up to there");
            truncated.push(outcome.path.display().to_string());
        }
    }
    proc.finish();
    health.record_processor(&proc);
    proc.sink_mut()
        .0
        .flush()
        .context("cannot write the output files")?;
    let report = stop_link(&mut proc, uplink);
    let secs = started.elapsed().as_secs_f64();
    let flows = if a.flows_out.is_some() {
        proc.sink().0.flows_written
    } else {
        let s = proc.stats();
        s.records_final + if a.interim { s.records_interim } else { 0 }
    };
    print_summary(proc.stats(), flows, secs, a.json_summary, &truncated);
    if let Some(r) = report {
        let sealed = proc.sink().1.as_ref().map_or(0, |l| l.sealed_batches);
        if r.spooled_batches > 0 {
            eprintln!(
                "collector: {sealed} batches sealed, {} not yet acknowledged (spooled for the next run)",
                r.spooled_batches
            );
        } else if !a.json_summary {
            println!("collector   {sealed} batches delivered");
        }
    }
    Ok(())
}

fn print_summary(s: &ProcessorStats, flows: u64, secs: f64, json: bool, truncated: &[String]) {
    let pps = if secs > 0.0 {
        s.frames as f64 / secs
    } else {
        0.0
    };
    let errors: serde_json::Map<String, serde_json::Value> = DecodeError::ALL
        .iter()
        .filter(|e| s.decode_errors[e.index()] > 0)
        .map(|e| (e.name().to_string(), s.decode_errors[e.index()].into()))
        .collect();
    if json {
        let v = serde_json::json!({
            "frames": s.frames, "packets": s.packets, "bytes": s.bytes, "flows": flows,
            "errors": errors, "fragments": s.fragments, "orphan_fragments": s.orphan_fragments,
            "dns_messages": s.dns_messages, "seconds": secs, "packets_per_second": pps,
            "truncated_files": truncated,
        });
        println!("{v}");
        return;
    }
    println!("frames      {}", s.frames);
    println!("packets     {} (IP)", s.packets);
    println!("bytes       {} (IP layer)", s.bytes);
    println!("flows       {flows}");
    if errors.is_empty() {
        println!("errors      none");
    } else {
        for (k, v) in &errors {
            println!("errors      {k}: {v}");
        }
    }
    println!(
        "named       sni {} quic {} http {} dns {}",
        s.named_sni, s.named_quic, s.named_http, s.named_dns
    );
    println!("seconds     {secs:.3}");
    println!("packets/s   {pps:.0}");
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn run(config: &Path) -> Result<()> {
    let (cfg, map) = load(Some(config))?;
    let jsonl = JsonlSink::create_all(
        cfg.output.flows_jsonl.as_deref(),
        cfg.output.counters_jsonl.as_deref(),
        cfg.output.blocked_jsonl.as_deref(),
        true,
    )
    .context("cannot open output files")?;
    if cfg.collector.is_none() && cfg.output.flows_jsonl.is_none() {
        tracing::warn!(
            "neither [collector] nor output.flows_jsonl is configured: flow records go nowhere"
        );
    }
    let stop = stop_flag()?;
    // Enforcement first: the last good policy is in force before the
    // collector is reachable or any packet is looked at.
    let rules = Arc::new(RulesInForce::default());
    let health = Arc::new(HealthState::new());
    let enforcer = start_enforcement(&cfg, &stop, &rules, &health);
    let (uplink, link) = start_link(&cfg, &health)?;
    let mut proc = Processor::new(&cfg, map, Tee(jsonl, link));
    let names = start_name_blocker(&cfg, &mut proc);
    let (dns_events_tx, dns_events) = crossbeam_channel::bounded(DNS_EVENT_QUEUE);
    let dns = start_dns(&cfg, dns_events_tx)?;
    let mut rules_seen = u64::MAX;
    let (capture, batches) = LiveCapture::start(&cfg.capture)?;
    health.set_interfaces(capture.stats());
    tracing::info!(agent = %cfg.agent.id, "agent running");
    let mut last_flush = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(m) = rules.changed(&mut rules_seen) {
            adopt_rules(m, &mut proc, dns.as_ref());
        }
        while let Ok(ev) = dns_events.try_recv() {
            proc.record_attempt(dns_attempt(ev));
        }
        match batches.recv_timeout(Duration::from_millis(200)) {
            Ok(batch) => {
                for (ts, frame) in batch.iter() {
                    proc.handle_frame(LinkType::Ethernet, ts, frame);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => proc.tick(now_ns()),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        // Sealing is a clock comparison until due; the link never blocks here.
        proc.sink_mut().1.on_tick(Instant::now());
        if last_flush.elapsed() >= Duration::from_secs(1) {
            last_flush = Instant::now();
            proc.tick(now_ns());
            health.record_processor(&proc);
            if let Err(e) = proc.sink_mut().0.flush() {
                tracing::warn!(error = %e, "cannot flush output");
            }
        }
    }
    tracing::info!("stopping: draining capture and ending flows");
    let stats: Vec<_> = capture.stats().to_vec();
    capture.stop();
    if let Some(d) = dns {
        d.stop();
    }
    while let Ok(ev) = dns_events.try_recv() {
        proc.record_attempt(dns_attempt(ev));
    }
    if let Some(n) = names {
        // The entries stay in the kernel until they time out.
        n.stop();
    }
    while let Ok(batch) = batches.try_recv() {
        for (ts, frame) in batch.iter() {
            proc.handle_frame(LinkType::Ethernet, ts, frame);
        }
    }
    proc.finish();
    health.record_processor(&proc);
    proc.sink_mut().0.flush().context("cannot flush output")?;
    stop_link(&mut proc, uplink);
    if let Some(t) = enforcer {
        // The kernel state stays in force after the agent exits.
        let _ = t.join();
    }
    for s in &stats {
        use std::sync::atomic::Ordering::Relaxed;
        tracing::info!(
            interface = %s.name,
            frames = s.frames.load(Relaxed),
            kernel_packets = s.kernel_packets.load(Relaxed),
            kernel_drops = s.kernel_drops.load(Relaxed),
            queue_drops = s.queue_drops.load(Relaxed),
            "capture totals"
        );
    }
    let st = proc.stats();
    let errors: Vec<String> = DecodeError::ALL
        .iter()
        .filter(|e| st.decode_errors[e.index()] > 0)
        .map(|e| format!("{}={}", e.name(), st.decode_errors[e.index()]))
        .collect();
    tracing::info!(
        packets = st.packets,
        bytes = st.bytes,
        decode_errors = %errors.join(","),
        flows = st.records_final,
        "agent stopped"
    );
    Ok(())
}

fn policy_command(action: PolicyAction) -> Result<()> {
    match action {
        PolicyAction::Check { file, config } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let cfg = match &config {
                Some(c) => AgentConfig::load(c)?,
                None => {
                    let policy = Policy::parse(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                    structure_only_config(&policy)
                }
            };
            let policy = parse_policy(&text, &file, &cfg)?;
            println!(
                "{}: policy {} for agency {} is valid ({} units, {} schedules{})",
                file.display(),
                policy.version,
                policy.agency,
                policy.allocation.units.len(),
                policy.schedules.len(),
                if config.is_none() {
                    "; unit codes and uplink not checked without --config"
                } else {
                    ""
                }
            );
            Ok(())
        }
        PolicyAction::Plan { file, config, at } => {
            let cfg = AgentConfig::load(&config)?;
            let policy = load_policy(&file, &cfg)?;
            let now = parse_at(at.as_deref())?;
            let leaf = simpul_agent::enforce::apply::detect_leaf_qdisc();
            let plan = simpul_agent::enforce::plan::plan(&policy, &cfg, now, leaf)?;
            println!(
                "# policy {} schedule {}",
                plan.policy_version,
                plan.schedule.as_deref().unwrap_or("(base rates)")
            );
            for c in &plan.classes {
                println!(
                    "# class {:<6} {:<28} down {}/{} up {}/{} bps (rate/ceil)",
                    c.classid,
                    c.name,
                    c.download.rate_bps,
                    c.download.ceil_bps,
                    c.upload.rate_bps,
                    c.upload.ceil_bps
                );
            }
            println!("# ---- nft -f - ----\n{}", plan.nft);
            println!("# ---- tc -batch - ----\n{}", plan.tc);
            Ok(())
        }
        PolicyAction::Apply { file, config, at } => {
            let cfg = AgentConfig::load(&config)?;
            let policy = load_policy(&file, &cfg)?;
            let now = parse_at(at.as_deref())?;
            let mut enforcer = Enforcer::new(cfg);
            enforcer.assume_last_good(now);
            match enforcer.enforce(policy, now)? {
                Outcome::Applied {
                    version,
                    schedule,
                    millis,
                } => println!(
                    "policy {version} applied in {millis} ms (schedule {})",
                    schedule.as_deref().unwrap_or("none")
                ),
                Outcome::Unchanged => println!("policy unchanged"),
            }
            Ok(())
        }
    }
}

/// `--at`: an RFC 3339 time, or now.
fn parse_at(at: Option<&str>) -> Result<time::OffsetDateTime> {
    match at {
        Some(t) => time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .with_context(|| format!("--at {t:?} is not an RFC 3339 time")),
        None => Ok(time::OffsetDateTime::now_utc()),
    }
}

/// A config whose only agency is the policy's, with every unit the policy
/// names: `policy check` without `--config` checks the structure only.
fn structure_only_config(policy: &Policy) -> AgentConfig {
    let mut codes: std::collections::BTreeSet<String> =
        policy.allocation.units.keys().cloned().collect();
    codes.extend(policy.suspension.units.iter().cloned());
    for s in &policy.schedules {
        codes.extend(s.units.keys().cloned());
    }
    let mut cfg = AgentConfig::default();
    cfg.agencies.push(simpul_agent::config::AgencyConfig {
        code: policy.agency.clone(),
        name: String::new(),
        units: codes
            .into_iter()
            .map(|code| simpul_agent::config::UnitConfig {
                code,
                name: String::new(),
                subnets: Vec::new(),
            })
            .collect(),
    });
    cfg
}

/// DNS block events waiting for the capture loop; more are dropped (the DNS
/// answer itself is never held up).
const DNS_EVENT_QUEUE: usize = 10_000;

/// The blocking rules of the policy in force, handed from the enforcement
/// thread to the capture loop and the DNS responder.
#[derive(Default)]
struct RulesInForce {
    matcher: std::sync::Mutex<Option<Arc<BlockMatcher>>>,
    generation: std::sync::atomic::AtomicU64,
}

impl RulesInForce {
    fn publish(&self, m: Option<Arc<BlockMatcher>>) {
        match self.matcher.lock() {
            Ok(mut g) => *g = m,
            Err(p) => *p.into_inner() = m,
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The rules, if they changed since generation `*seen`.
    fn changed(&self, seen: &mut u64) -> Option<Option<Arc<BlockMatcher>>> {
        let g = self.generation.load(Ordering::Acquire);
        if g == *seen {
            return None;
        }
        *seen = g;
        Some(match self.matcher.lock() {
            Ok(m) => m.clone(),
            Err(p) => p.into_inner().clone(),
        })
    }
}

/// New blocking rules: the packet path's checks and the DNS responder.
fn adopt_rules(
    m: Option<Arc<BlockMatcher>>,
    proc: &mut Processor<Tee<JsonlSink, Option<LinkSink>>>,
    dns: Option<&DnsService>,
) {
    if let Some(d) = dns {
        let filter = m
            .as_ref()
            .map_or_else(simpul_agent::dnsproxy::empty_filter, |m| {
                m.domains().clone()
            });
        d.set_filter(filter);
        d.set_action(match m.as_ref().and_then(|m| m.block_page) {
            Some(std::net::IpAddr::V4(v4)) => BlockAction::BlockPage {
                v4: Some(v4),
                v6: None,
                ttl: 60,
            },
            Some(std::net::IpAddr::V6(v6)) => BlockAction::BlockPage {
                v4: None,
                v6: Some(v6),
                ttl: 60,
            },
            None => BlockAction::NxDomain,
        });
    }
    tracing::info!(
        policy = m.as_ref().map(|m| m.version),
        "blocking rules in force for events and names"
    );
    proc.guard_mut().set_matcher(m);
}

/// A DNS responder block event as an attempt for the collector.
fn dns_attempt(ev: BlockEvent) -> Attempt {
    Attempt {
        ts: now_ns(),
        client: ev.client,
        hit: RuleHit {
            method: simpul_proto::BlockMethod::Dns,
            rule: ev.rule,
            list: ev.list,
        },
        target: ev.name,
        server: None,
        port: Some(53),
        proto: ev.transport.to_string(),
    }
}

/// With `[enforce]`: the table for name-triggered refusals, fed by the
/// processor's guard. Without nftables the agent still reports attempts.
fn start_name_blocker(
    cfg: &AgentConfig,
    proc: &mut Processor<Tee<JsonlSink, Option<LinkSink>>>,
) -> Option<NameBlocker> {
    if !cfg.enforce.enabled() {
        return None;
    }
    match NameBlocker::start(cfg.enforce.name_block_secs) {
        Ok((n, tx)) => {
            proc.guard_mut().set_kernel(tx);
            Some(n)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot set up name-triggered refusals; blocked names are still reported and answered by DNS");
            None
        }
    }
}

/// With `[enforce.dns]`: the agency's DNS responder; its block events go
/// to `events`. Rules arrive with the policy (nothing is blocked before).
fn start_dns(
    cfg: &AgentConfig,
    events: crossbeam_channel::Sender<BlockEvent>,
) -> Result<Option<DnsService>> {
    let Some(d) = cfg.enforce.dns.as_ref().filter(|_| cfg.enforce.enabled()) else {
        return Ok(None);
    };
    let mut c = DnsProxyConfig::new(d.listen, d.upstream);
    c.upstream_timeout = Duration::from_millis(d.upstream_timeout_ms.max(1));
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink: simpul_agent::dnsproxy::BlockSink = Arc::new(move |ev| {
        if events.try_send(ev).is_err() && dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!("DNS block events are arriving faster than they are reported; dropping (counted once)");
        }
    });
    let svc = DnsService::start(c, simpul_agent::dnsproxy::empty_filter(), sink)
        .with_context(|| format!("cannot start the DNS responder on {}", d.listen))?;
    Ok(Some(svc))
}

/// With `[enforce]`: apply the last good policy, then `policy_file`, and keep
/// enforcing in a thread (schedule windows, suspension expiry, edits of the
/// policy file) until `stop`. Failures are logged; the state in force stays.
/// Each change of the blocking rules is published to `rules`.
fn start_enforcement(
    cfg: &AgentConfig,
    stop: &Arc<AtomicBool>,
    rules: &Arc<RulesInForce>,
    health: &Arc<HealthState>,
) -> Option<std::thread::JoinHandle<()>> {
    if !cfg.enforce.enabled() {
        return None;
    }
    let mut enforcer = Enforcer::new(cfg.clone());
    let now = time::OffsetDateTime::now_utc();
    match enforcer.restore_last_good(now) {
        Ok(Some(v)) => tracing::info!(version = v, "last good policy restored"),
        Ok(None) => tracing::info!("no last good policy on disk"),
        Err(e) => {
            health.policy_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "cannot restore the last good policy")
        }
    }
    let file = cfg.enforce.policy_file.clone();
    let mut last_text: Option<String> = None;
    let failures = health.clone();
    let load_file = move |enforcer: &mut Enforcer, last_text: &mut Option<String>| {
        let Some(path) = &file else { return };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                if last_text.is_some() || enforcer.policy().is_none() {
                    tracing::error!(path = %path.display(), error = %e, "cannot read the policy file");
                }
                return;
            }
        };
        if last_text.as_deref() == Some(text.as_str()) {
            return;
        }
        *last_text = Some(text.clone());
        let result = parse_policy(&text, path, enforcer.config())
            .map_err(EnforceError::from)
            .and_then(|p| enforcer.enforce(p, time::OffsetDateTime::now_utc()));
        if let Err(e) = result {
            failures.policy_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "policy file refused; the policy in force stays");
        }
    };
    load_file(&mut enforcer, &mut last_text);
    // The rules follow the policy in force (not a refused one).
    let publish = {
        let (rules, cfg, health) = (rules.clone(), cfg.clone(), health.clone());
        let mut published: Option<(u64, simpul_proto::policy::Blocking)> = None;
        move |enforcer: &Enforcer| {
            health.policy_version.store(
                enforcer.policy().map_or(0, |p| p.version),
                Ordering::Relaxed,
            );
            let now = enforcer.policy().map(|p| (p.version, p.blocking.clone()));
            if now == published {
                return;
            }
            rules.publish(
                enforcer
                    .policy()
                    .map(|p| Arc::new(BlockMatcher::new(p, &cfg))),
            );
            published = now;
        }
    };
    let mut publish = publish;
    publish(&enforcer);
    let stop = stop.clone();
    let health = health.clone();
    Some(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(250));
            load_file(&mut enforcer, &mut last_text);
            if let Err(e) = enforcer.tick(time::OffsetDateTime::now_utc()) {
                health.policy_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "cannot apply the policy for the current time");
            }
            publish(&enforcer);
        }
    }))
}
