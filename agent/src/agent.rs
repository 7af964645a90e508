//! The agent as one component: [`Agent::start`] wires capture (live or a
//! replay), the processor, the outputs, the collector link, the control
//! thread (inventory, policy, enforcement), the DNS responder and the
//! name-triggered refusals; [`Agent::stop`] ends them in reverse order.
//!
//! ```text
//!   capture/replay ──frames──► packet thread: Processor ──► JSONL + LinkSink ──► link
//!   (or fanout rings ──► shard threads, a Processor each ──records──► packet thread)
//!                                   ▲ AgencyMap, BlockMatcher                     │
//!   control thread ──InForce────────┘  (inventory, policy, Enforcer) ◄─inventory,─┘
//!        ▲ standalone files                                              signed policy
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use simpul_core::agency::AgencyMap;
use simpul_core::attempts::Attempt;
use simpul_core::decode::LinkType;
use simpul_core::policy::matcher::{BlockMatcher, RuleHit};
use simpul_core::processor::{Processor, ProcessorStats, Tee};
use simpul_proto::inventory::Inventory;
use simpul_proto::policy::Policy;
use simpul_proto::wire::feature;

use crate::capture::live::{InterfaceStats, LiveCapture, LiveError};
use crate::capture::name_lane::NameLaneHooks;
use crate::config::AgentConfig;
use crate::control::{Control, ControlSettings, InForce, Snapshot, Source};
use crate::dnsproxy::{BlockAction, BlockEvent, DnsProxyConfig, DnsService};
use crate::enforce::names::NameBlocker;
use crate::enforce::Enforcer;
use crate::export::{IpfixSink, IpfixTotals};
use crate::link::{HealthState, LinkOptions, LinkSink, StopReport, TimedSink, Uplink};
use crate::live_shards::Shards;
use crate::output::JsonlSink;
use crate::replay::FileOutcome;

/// Where records go: JSON lines (files optional), the collector link and
/// the IPFIX export.
pub type Sinks = Tee<JsonlSink, Tee<Option<LinkSink>, Option<IpfixSink>>>;

/// DNS block events waiting for the packet thread; more are dropped (the
/// DNS answer itself is never held up).
const DNS_EVENT_QUEUE: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot open the output files: {0}")]
    Output(std::io::Error),
    #[error("cannot start the collector link: {0}")]
    Link(#[from] crate::link::LinkError),
    #[error("cannot start capture: {0}")]
    Capture(#[from] LiveError),
    #[error("cannot start the DNS responder on {listen}: {cause}")]
    Dns {
        listen: std::net::SocketAddr,
        cause: crate::dnsproxy::DnsProxyError,
    },
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot create the state directory {path}: {cause}")]
    StateDir {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{0}")]
    Replay(#[from] crate::capture::file::FileError),
    #[error("the packet thread panicked")]
    Panicked,
    #[error("{0}")]
    Ipfix(#[from] crate::export::ipfix::IpfixError),
}

/// Where packets come from.
#[derive(Debug, Clone)]
pub enum Capture {
    /// AF_PACKET on `[capture] interfaces`.
    Live,
    /// Capture files, as fast as possible or at their recorded speed
    /// (timestamps shifted to now), optionally looping.
    Replay {
        pcaps: Vec<PathBuf>,
        realtime: bool,
        looping: bool,
    },
}

/// JSON-lines files besides `[output]` (the replay command's flags).
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub flows: Option<PathBuf>,
    pub counters: Option<PathBuf>,
    pub blocked: Option<PathBuf>,
    /// Interim records in the flows file too.
    pub interim: bool,
}

pub struct AgentOptions {
    pub capture: Capture,
    pub outputs: Outputs,
    /// Check traffic against this policy and this inventory instead of the
    /// configured source, enforcing nothing (`replay --policy`).
    pub fixed: Option<(Option<Inventory>, Option<Policy>)>,
    /// With a collector and no inventory kept yet: wait this long for the
    /// collector's before the first packet (a replay would otherwise
    /// attribute its first seconds to "unknown").
    pub wait_for_inventory: Option<Duration>,
    /// Touch the kernel (`[enforce]`) at all; a replay never does.
    pub enforce: bool,
}

/// What a finished run did.
#[derive(Debug, Default)]
pub struct Report {
    pub stats: ProcessorStats,
    /// Records written to the flows file.
    pub flows_written: u64,
    pub files: Vec<FileOutcome>,
    pub link: Option<StopReport>,
    pub sealed_batches: u64,
    /// With `[export.ipfix]`: what was exported.
    pub ipfix: Option<IpfixTotals>,
    pub interfaces: Vec<(String, u64, u64, u64, u64)>,
    pub seconds: f64,
}

/// A running agent.
pub struct Agent {
    stop: Arc<AtomicBool>,
    packets: Option<JoinHandle<Result<Report, AgentError>>>,
    control: Option<Control>,
    names: Option<NameBlocker>,
    dns: Option<DnsService>,
    health: Arc<HealthState>,
}

impl Agent {
    pub fn start(cfg: AgentConfig, opts: AgentOptions) -> Result<Agent, AgentError> {
        let state_dir = cfg.agent.state_dir.clone();
        crate::state_files::create_private_dir(&state_dir).map_err(|cause| {
            AgentError::StateDir {
                path: state_dir.clone(),
                cause,
            }
        })?;
        let health = Arc::new(HealthState::new());
        let o = &opts.outputs;
        let jsonl = JsonlSink::create_all(
            o.flows.as_deref().or(cfg.output.flows_jsonl.as_deref()),
            o.counters
                .as_deref()
                .or(cfg.output.counters_jsonl.as_deref()),
            o.blocked.as_deref().or(cfg.output.blocked_jsonl.as_deref()),
            o.interim || matches!(opts.capture, Capture::Live),
        )
        .map_err(AgentError::Output)?;

        // The link first (its inbox feeds the control thread); nothing is
        // sent before the processor has records.
        let (inbox_tx, inbox_rx) = crossbeam_channel::bounded(64);
        let (uplink, link_sink) = match (&cfg.collector, &opts.fixed) {
            (Some(c), None) => {
                let options = LinkOptions {
                    features: vec![
                        feature::INVENTORY.into(),
                        feature::POLICY.into(),
                        feature::LISTS.into(),
                    ],
                    inbox: Some(inbox_tx),
                };
                let (u, s) = Uplink::start(c, &cfg.agent.id, &state_dir, health.clone(), options)?;
                (Some(u), Some(s))
            }
            (Some(c), Some(_)) => {
                let (u, s) = Uplink::start(
                    c,
                    &cfg.agent.id,
                    &state_dir,
                    health.clone(),
                    LinkOptions::default(),
                )?;
                (Some(u), Some(s))
            }
            (None, _) => (None, None),
        };
        if uplink.is_none()
            && cfg.output.flows_jsonl.is_none()
            && o.flows.is_none()
            && cfg.export.ipfix.is_none()
        {
            tracing::warn!(
                "neither [collector] nor a flows file is configured: flow records go nowhere"
            );
        }

        // Enforcement before any packet: the last good policy is in force
        // before the collector is reachable.
        let enforcer = if opts.enforce {
            cfg.enforce_target().map(|t| {
                let mut e = Enforcer::new(t);
                e.offload_mode(cfg.enforce.offload_mode());
                e.offload_state(&state_dir.join(crate::enforce::offloads::STATE_FILE));
                e
            })
        } else {
            None
        };
        let source = match (&opts.fixed, &cfg.collector, &cfg.standalone) {
            (Some((inv, pol)), _, _) => Source::Fixed {
                inventory: inv.clone().map(Box::new),
                policy: pol.clone().map(Box::new),
            },
            (None, Some(_), _) => Source::Collector { inbox: inbox_rx },
            (None, None, Some(s)) => Source::Standalone {
                inventory_file: s.inventory_file.clone(),
                policy_file: s.policy_file.clone(),
            },
            (None, None, None) => {
                tracing::warn!("no [collector] and no [standalone] inventory: every address is attributed to \"unknown\"");
                Source::Fixed {
                    inventory: None,
                    policy: None,
                }
            }
        };
        let control = Control::start(
            ControlSettings {
                node_id: cfg.agent.id.clone(),
                state_dir: state_dir.clone(),
                enforcer,
                always_allow: cfg.always_allowed(),
                health: health.clone(),
                link: uplink.as_ref().map(Uplink::control),
            },
            source,
        )
        .map_err(AgentError::Thread)?;
        let in_force = control.in_force();
        if let (Some(wait), Some(_)) = (opts.wait_for_inventory, &uplink) {
            let deadline = Instant::now() + wait;
            if in_force.current().node.is_none() {
                tracing::info!(
                    secs = wait.as_secs(),
                    "waiting for the collector's inventory"
                );
            }
            while in_force.current().node.is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if in_force.current().node.is_none() {
                tracing::warn!(
                    "no inventory from the collector yet; starting with every address \"unknown\""
                );
            }
        }

        let ipfix = cfg
            .export
            .ipfix
            .as_ref()
            .map(|c| IpfixSink::start(c, cfg.flows.max_flows))
            .transpose()?;
        if let Some(s) = &ipfix {
            // Only ever set here, once per agent.
            let _ = health.ipfix.set(s.stats());
        }
        // IPFIX gets a long flow's interim records too, as deltas.
        let exporting = ipfix.is_some();
        let mut proc = Processor::new(
            &cfg.processor_config(),
            AgencyMap::empty(),
            Tee(jsonl, Tee(link_sink, ipfix)),
        );
        let to_collector = uplink.is_some();
        proc.set_interim_records(
            o.interim || to_collector || exporting || matches!(opts.capture, Capture::Live),
        );

        let enforcing = opts.enforce && cfg.enforce.enabled();
        let mut name_lane = None;
        let names = if enforcing {
            match NameBlocker::start(cfg.enforce.name_block_secs, cfg.enforce.name_resets) {
                Ok((n, tx)) => {
                    let _ = health.name_block.set(n.stats.clone());
                    let guard = proc.guard_mut();
                    name_lane = Some(NameLaneHooks {
                        claims: guard.share_claims(),
                        kernel: tx.clone(),
                        hold_ns: guard.hold_ns(),
                    });
                    guard.set_kernel(tx);
                    Some(n)
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up name-triggered refusals; blocked names are still reported and answered by DNS");
                    None
                }
            }
        } else {
            None
        };
        let (dns_tx, dns_rx) = crossbeam_channel::bounded(DNS_EVENT_QUEUE);
        let dns = if enforcing {
            start_dns(&cfg, dns_tx)?
        } else {
            None
        };

        let stop = Arc::new(AtomicBool::new(false));
        let name_hooks = name_lane.clone();
        let live = match &opts.capture {
            Capture::Live => {
                let (capture, batches) = LiveCapture::start_with_lane(&cfg.capture, name_lane)?;
                health.set_interfaces(capture.stats());
                Some((capture, batches))
            }
            Capture::Replay { .. } => None,
        };
        let ctx = PacketLoop {
            proc,
            uplink,
            in_force,
            seen: u64::MAX,
            dns_events: dns_rx,
            dns_filter: dns.as_ref().and_then(DnsService::handle),
            health: health.clone(),
            stop: stop.clone(),
            current: Snapshot::default(),
            name_hooks,
        };
        let capture = opts.capture.clone();
        let packets = std::thread::Builder::new()
            .name("simpul-packets".into())
            .spawn(move || ctx.run(capture, live))
            .map_err(AgentError::Thread)?;
        tracing::info!(agent = %cfg.agent.id, "agent running");
        Ok(Agent {
            stop,
            packets: Some(packets),
            control: Some(control),
            names,
            dns,
            health,
        })
    }

    /// Set to end the run (what SIGINT and SIGTERM do).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    pub fn health(&self) -> Arc<HealthState> {
        self.health.clone()
    }

    /// Whether the packet source ended by itself (a replay).
    pub fn is_finished(&self) -> bool {
        self.packets.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stop and wait: the last records are flushed and handed to the link,
    /// which delivers for a bounded time and spools the rest. The kernel
    /// keeps enforcing what is in force.
    pub fn stop(mut self) -> Result<Report, AgentError> {
        self.stop.store(true, Ordering::Release);
        self.finish()
    }

    /// Wait for the packet source to end (a replay without `looping`), or
    /// for a stop.
    pub fn wait(mut self) -> Result<Report, AgentError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<Report, AgentError> {
        let report = match self.packets.take() {
            Some(h) => h.join().map_err(|_| AgentError::Panicked)?,
            None => Ok(Report::default()),
        };
        if let Some(d) = self.dns.take() {
            d.stop();
        }
        if let Some(n) = self.names.take() {
            // The entries stay in the kernel until they time out.
            n.stop();
        }
        if let Some(c) = self.control.take() {
            c.stop();
        }
        report
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The packet thread's state.
struct PacketLoop {
    proc: Processor<Sinks>,
    uplink: Option<Uplink>,
    in_force: Arc<InForce>,
    seen: u64,
    dns_events: crossbeam_channel::Receiver<BlockEvent>,
    dns_filter: Option<crate::dnsproxy::DnsHandle>,
    health: Arc<HealthState>,
    stop: Arc<AtomicBool>,
    current: Snapshot,
    /// What a live shard's guard needs to refuse names (when they are).
    name_hooks: Option<NameLaneHooks>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl PacketLoop {
    fn run(
        mut self,
        capture: Capture,
        live: Option<(
            LiveCapture,
            crossbeam_channel::Receiver<crate::capture::live::Batch>,
        )>,
    ) -> Result<Report, AgentError> {
        let started = Instant::now();
        self.adopt();
        let mut report = Report::default();
        match (capture, live) {
            (Capture::Live, Some((mut capture, batches))) => {
                let stats = capture.stats().to_vec();
                let rings = capture.take_shards();
                match capture.take_inline() {
                    Some(mut ring) => self.live_loop(
                        |proc| {
                            if ring.poll(200, |ts, frame| {
                                proc.handle_frame(LinkType::Ethernet, ts, frame)
                            }) == 0
                            {
                                proc.tick(now_ns());
                            }
                            true
                        },
                        |health, proc| health.record_processor(proc),
                    ),
                    None if !rings.is_empty() => {
                        let shards = match Shards::start(
                            rings,
                            &self.proc,
                            self.name_hooks.as_ref(),
                            &self.in_force,
                            |p, current, s| adopt_snapshot(p, current, s, None, false),
                        ) {
                            Ok(s) => s,
                            Err(e) => {
                                capture.stop();
                                self.shutdown();
                                return Err(AgentError::Thread(e));
                            }
                        };
                        let shards = std::cell::RefCell::new(shards);
                        self.live_loop(
                            |proc| {
                                shards
                                    .borrow_mut()
                                    .receive(proc, Duration::from_millis(200))
                            },
                            |health, _| shards.borrow().record_health(health),
                        );
                        tracing::info!("stopping: the shards end their flows");
                        shards.into_inner().finish(&mut self.proc);
                    }
                    None => self.live(&batches),
                }
                tracing::info!("stopping: draining capture and ending flows");
                capture.stop();
                while let Ok(batch) = batches.try_recv() {
                    for (ts, frame) in batch.iter() {
                        self.proc.handle_frame(LinkType::Ethernet, ts, frame);
                    }
                }
                report.interfaces = interface_totals(&stats);
            }
            (
                Capture::Replay {
                    pcaps,
                    realtime: true,
                    looping,
                },
                _,
            ) => {
                let stop = self.stop.clone();
                let summary = crate::replay::replay_realtime_with(
                    &pcaps,
                    &mut self.proc,
                    looping,
                    &stop,
                    |p, now| {
                        p.sink_mut().on_tick(now);
                        self.health.record_processor(p);
                        if let Some(s) = self.in_force.changed(&mut self.seen) {
                            adopt_snapshot(p, &mut self.current, s, self.dns_filter.as_ref(), true);
                        }
                        while let Ok(ev) = self.dns_events.try_recv() {
                            p.record_attempt(dns_attempt(ev));
                        }
                    },
                );
                match summary {
                    Ok(s) => {
                        if s.stopped {
                            tracing::info!(passes = s.passes, "replay interrupted");
                        }
                        report.files = s.files;
                    }
                    Err(e) => {
                        self.shutdown();
                        return Err(e.into());
                    }
                }
            }
            (Capture::Replay { pcaps, .. }, _) => {
                match crate::replay::replay_files(&pcaps, &mut self.proc) {
                    Ok(f) => report.files = f,
                    Err(e) => {
                        self.shutdown();
                        return Err(e.into());
                    }
                }
            }
            (Capture::Live, None) => {}
        }
        let (sealed, link) = self.shutdown();
        report.ipfix = self.proc.sink_mut().1 .1.as_mut().map(IpfixSink::finish);
        report.stats = self.proc.stats().clone();
        report.flows_written = self.proc.sink().0.flows_written;
        report.sealed_batches = sealed;
        report.link = link;
        report.seconds = started.elapsed().as_secs_f64();
        let st = &report.stats;
        tracing::info!(
            packets = st.packets,
            bytes = st.bytes,
            decode_errors = st.decode_error_total(),
            flows = st.records_final,
            "agent stopped"
        );
        Ok(report)
    }

    /// Take up what the control thread published since last time.
    fn adopt(&mut self) {
        if let Some(s) = self.in_force.changed(&mut self.seen) {
            adopt_snapshot(
                &mut self.proc,
                &mut self.current,
                s,
                self.dns_filter.as_ref(),
                true,
            );
        }
    }

    fn live(&mut self, batches: &crossbeam_channel::Receiver<crate::capture::live::Batch>) {
        self.live_loop(
            |proc| match batches.recv_timeout(Duration::from_millis(200)) {
                Ok(batch) => {
                    for (ts, frame) in batch.iter() {
                        proc.handle_frame(LinkType::Ethernet, ts, frame);
                    }
                    true
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    proc.tick(now_ns());
                    true
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => false,
            },
            |health, proc| health.record_processor(proc),
        );
    }

    /// Run `next` (handle what arrived within ~200 ms; false = the source
    /// ended) until stopped, with the policy, DNS events, link and output
    /// kept up around it; `record` puts the packet counters in the health
    /// once a second.
    fn live_loop<F, H>(&mut self, mut next: F, mut record: H)
    where
        F: FnMut(&mut Processor<Sinks>) -> bool,
        H: FnMut(&HealthState, &Processor<Sinks>),
    {
        let mut last_flush = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            self.adopt();
            while let Ok(ev) = self.dns_events.try_recv() {
                self.proc.record_attempt(dns_attempt(ev));
            }
            if !next(&mut self.proc) {
                break;
            }
            // Sealing is a clock comparison until due; the link never blocks here.
            self.proc.sink_mut().1.on_tick(Instant::now());
            if last_flush.elapsed() >= Duration::from_secs(1) {
                last_flush = Instant::now();
                self.proc.tick(now_ns());
                record(&self.health, &self.proc);
                if let Err(e) = self.proc.sink_mut().0.flush() {
                    tracing::warn!(error = %e, "cannot flush output");
                }
            }
        }
    }

    /// End every flow, flush the files, hand the rest to the link and stop
    /// it (it delivers for a bounded time; the spool keeps what is left).
    fn shutdown(&mut self) -> (u64, Option<StopReport>) {
        while let Ok(ev) = self.dns_events.try_recv() {
            self.proc.record_attempt(dns_attempt(ev));
        }
        self.proc.finish();
        self.health.record_processor(&self.proc);
        if let Err(e) = self.proc.sink_mut().0.flush() {
            tracing::error!(error = %e, "cannot write the output files");
        }
        let sealed = match self.proc.sink_mut().1 .0.as_mut() {
            Some(link) => {
                link.seal_now();
                link.sealed_batches
            }
            None => 0,
        };
        (sealed, self.uplink.take().map(Uplink::stop))
    }
}

/// New inventory and/or rules: the processor, its checks and the DNS
/// responder; `log` for the one processor that speaks for the others.
fn adopt_snapshot<S: simpul_core::processor::RecordSink>(
    proc: &mut Processor<S>,
    current: &mut Snapshot,
    s: Snapshot,
    dns: Option<&crate::dnsproxy::DnsHandle>,
    log: bool,
) {
    let same_node = match (&current.node, &s.node) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        (None, None) => true,
        _ => false,
    };
    if !same_node {
        let map = s
            .node
            .as_deref()
            .map_or_else(AgencyMap::empty, AgencyMap::new);
        if log {
            tracing::info!(
                inventory = s.node.as_ref().map(|n| n.inventory_version),
                "attribution follows the inventory in force"
            );
        }
        proc.set_agencies(map);
    }
    let same_rules = match (&current.matcher, &s.matcher) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    };
    if !same_rules {
        if let Some(d) = dns {
            set_dns_rules(d, s.matcher.as_deref());
        }
        if log {
            tracing::info!(
                policy = s.matcher.as_ref().map(|m| m.version),
                "blocking rules in force for events and names"
            );
        }
        proc.guard_mut().set_matcher(s.matcher.clone());
    }
    *current = s;
}

fn set_dns_rules(d: &crate::dnsproxy::DnsHandle, m: Option<&BlockMatcher>) {
    d.set_filter(m.map_or_else(crate::dnsproxy::empty_filter, |m| m.domains().clone()));
    d.set_action(match m.and_then(|m| m.block_page) {
        Some(std::net::IpAddr::V4(v4)) => BlockAction::BlockPage {
            v4: Some(v4),
            v6: None,
            ttl: crate::dnsproxy::BLOCK_TTL,
        },
        Some(std::net::IpAddr::V6(v6)) => BlockAction::BlockPage {
            v4: None,
            v6: Some(v6),
            ttl: crate::dnsproxy::BLOCK_TTL,
        },
        None => BlockAction::NxDomain {
            ttl: crate::dnsproxy::BLOCK_TTL,
        },
    });
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

/// With `[enforce.dns]`: the agency's DNS responder; its block events go
/// to `events`. Rules arrive with the policy (nothing is blocked before).
fn start_dns(
    cfg: &AgentConfig,
    events: crossbeam_channel::Sender<BlockEvent>,
) -> Result<Option<DnsService>, AgentError> {
    let Some(d) = cfg.enforce.dns.as_ref().filter(|_| cfg.enforce.enabled()) else {
        return Ok(None);
    };
    let mut c = DnsProxyConfig::new(d.listen, d.upstream);
    c.also_listen.extend(d.listen6);
    c.upstream_timeout = Duration::from_millis(d.upstream_timeout_ms.max(1));
    // The redirect (in the policy's plan) follows this responder's answers.
    let mark = cfg
        .enforce
        .lan_interface
        .as_deref()
        .filter(|_| d.redirect)
        .map(crate::enforce::dns_live::LiveMark::new);
    let dropped = Arc::new(AtomicU64::new(0));
    let sink: crate::dnsproxy::BlockSink = Arc::new(move |ev| {
        if events.try_send(ev).is_err() && dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!("DNS block events are arriving faster than they are reported; dropping (counted once)");
        }
    });
    DnsService::start(c, crate::dnsproxy::empty_filter(), sink, mark)
        .map(Some)
        .map_err(|cause| AgentError::Dns {
            listen: d.listen,
            cause,
        })
}

fn interface_totals(stats: &[Arc<InterfaceStats>]) -> Vec<(String, u64, u64, u64, u64)> {
    use std::sync::atomic::Ordering::Relaxed;
    stats
        .iter()
        .map(|s| {
            tracing::info!(
                interface = %s.name,
                frames = s.frames.load(Relaxed),
                kernel_packets = s.kernel_packets.load(Relaxed),
                kernel_drops = s.kernel_drops.load(Relaxed),
                queue_drops = s.queue_drops.load(Relaxed),
                per_thread = %s.per_thread_text(),
                "capture totals"
            );
            (
                s.name.clone(),
                s.frames.load(Relaxed),
                s.kernel_packets.load(Relaxed),
                s.kernel_drops.load(Relaxed),
                s.queue_drops.load(Relaxed),
            )
        })
        .collect()
}
