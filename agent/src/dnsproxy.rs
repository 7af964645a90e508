//! The agency's DNS responder: answers blocked names itself, forwards the rest.
//!
//! For every query (UDP or TCP on each listen address, IPv4 and IPv6) the
//! question names are checked against a [`DomainFilter`] (blocklists with an
//! allowlist). A blocked name is answered here — NXDOMAIN, or the block-page
//! A/AAAA address, per [`BlockAction`]; a negative answer carries the
//! blocked domain's SOA so resolvers cache it (RFC 2308) — and a
//! [`BlockEvent`] goes to the configured sink. Anything else is forwarded
//! byte for byte to the upstream resolver (UDP queries over UDP from a
//! fresh random port, TCP queries over TCP) and the answer relayed
//! unchanged: same ID, same TC bit, so a truncated answer makes the client
//! retry over TCP, which is forwarded over TCP. An upstream failure or
//! timeout becomes SERVFAIL.
//!
//! Hostile input: the per-query decision ([`decide`]) is a pure function over
//! the bytes, mutation-tested; packets that are responses are dropped (no
//! reflection loops), unparseable queries with a full header get FORMERR.
//! Concurrency is bounded (in-flight UDP queries, TCP connections); excess
//! UDP queries are dropped and counted, like a kernel buffer overflow.
//!
//! The LAN's DNS is redirected here only while the responder answers:
//! [`DnsService`] probes its own listeners every second and renews the
//! redirect's live mark after each answer (see [`crate::enforce::dns_live`]).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use simple_dns::rdata::{RData, A, AAAA};
use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, OPCODE, QTYPE, RCODE, TYPE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use simpul_core::policy::domains::{DomainFilter, DomainSet, DomainSetBuilder, ListFormat};

use crate::enforce::dns_live::LiveMark;

/// TTL of block answers, seconds: how long a resolver or client may keep
/// one (an address, or the NXDOMAIN through its SOA, RFC 2308), so a name
/// unblocked by a new policy resolves again within this long.
pub const BLOCK_TTL: u32 = 60;

/// What a blocked name gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockAction {
    /// RCODE 3: the name does not exist; the authority section carries a
    /// synthetic SOA of the blocked domain whose TTL and MINIMUM are `ttl`,
    /// so resolvers cache the negative answer that long (RFC 2308).
    NxDomain { ttl: u32 },
    /// The block page: A queries get `v4`, AAAA queries `v6`; other types
    /// (and a family without an address) get an empty NOERROR answer with
    /// the SOA, as NXDOMAIN has it.
    BlockPage {
        v4: Option<Ipv4Addr>,
        v6: Option<Ipv6Addr>,
        ttl: u32,
    },
}

#[derive(Debug, Clone)]
pub struct DnsProxyConfig {
    /// UDP and TCP listen address (port 0: any free port, the same for both).
    pub listen: SocketAddr,
    /// More listen addresses, e.g. the IPv6 one beside an IPv4 `listen`
    /// (an IPv6 socket never takes IPv4: `[::]` beside `0.0.0.0` works).
    pub also_listen: Vec<SocketAddr>,
    pub upstream: SocketAddr,
    pub upstream_timeout: Duration,
    pub action: BlockAction,
    /// UDP queries being handled at once; more are dropped and counted.
    pub max_in_flight: usize,
    /// Open TCP client connections; more are closed at once.
    pub max_tcp_connections: usize,
    /// A TCP client connection idle this long is closed.
    pub tcp_idle: Duration,
}

impl DnsProxyConfig {
    pub fn new(listen: SocketAddr, upstream: SocketAddr) -> Self {
        DnsProxyConfig {
            listen,
            also_listen: Vec::new(),
            upstream,
            upstream_timeout: Duration::from_secs(2),
            action: BlockAction::NxDomain { ttl: BLOCK_TTL },
            max_in_flight: 512,
            max_tcp_connections: 64,
            tcp_idle: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DnsProxyError {
    #[error("cannot bind DNS {proto} on {addr}: {source}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load domain list {path}: {source}")]
    List {
        path: String,
        #[source]
        source: simpul_core::policy::domains::DomainsError,
    },
    #[error("invalid argument: {0}")]
    Arg(String),
    #[error("cannot open the event log {path}: {source}")]
    Events {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    #[error("upstream I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream timeout")]
    Timeout,
    #[error("upstream answer too long for DNS over TCP")]
    TooLong,
}

/// One blocked query: who asked, for what, which rule and list said no.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockEvent {
    /// RFC 3339, UTC.
    pub ts: String,
    pub client: IpAddr,
    pub name: String,
    pub qtype: String,
    pub rule: String,
    pub list: String,
    /// `udp` or `tcp`.
    pub transport: &'static str,
}

/// Where block events go (a channel sender, a log writer, …).
pub type BlockSink = Arc<dyn Fn(BlockEvent) + Send + Sync>;

#[derive(Debug, Default)]
struct Counters {
    queries_udp: AtomicU64,
    queries_tcp: AtomicU64,
    blocked: AtomicU64,
    forwarded: AtomicU64,
    upstream_errors: AtomicU64,
    malformed: AtomicU64,
    overload_dropped: AtomicU64,
}

/// Counter snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DnsStats {
    pub queries_udp: u64,
    pub queries_tcp: u64,
    pub blocked: u64,
    pub forwarded: u64,
    pub upstream_errors: u64,
    /// Unparseable or response packets (dropped, or answered FORMERR).
    pub malformed: u64,
    /// UDP queries dropped because `max_in_flight` were in progress.
    pub overload_dropped: u64,
}

/// What to do with one query message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer with `reply`; the name is blocked by `rule` of `list`.
    Block {
        reply: Vec<u8>,
        name: String,
        qtype: String,
        rule: String,
        list: String,
    },
    /// Send the query upstream unchanged.
    Forward,
    /// Answer with an error built here (FORMERR).
    Reply(Vec<u8>),
    /// Say nothing (a response, or shorter than a DNS header).
    Drop,
}

const HEADER_LEN: usize = 12;

/// A reply header with no sections: same ID, opcode and RD; QR and RA set.
fn error_reply(query: &[u8], rcode: u8) -> Option<Vec<u8>> {
    let h = query.get(..4)?;
    Some(vec![
        h[0],
        h[1],
        0x80 | (h[2] & 0x79),
        0x80 | (rcode & 0x0f),
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ])
}

/// SERVFAIL for a query (upstream failed).
pub fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    error_reply(query, 2)
}

/// Decide about one DNS query message. Pure; never panics on any input.
pub fn decide(query: &[u8], filter: &DomainFilter, action: &BlockAction) -> Decision {
    if query.len() < HEADER_LEN || query[2] & 0x80 != 0 {
        return Decision::Drop;
    }
    let packet = match Packet::parse(query) {
        Ok(p) => p,
        Err(_) => return error_reply(query, 1).map_or(Decision::Drop, Decision::Reply),
    };
    if packet.opcode() != OPCODE::StandardQuery {
        return Decision::Forward;
    }
    for q in &packet.questions {
        let mut name = Vec::with_capacity(64);
        for (i, label) in q.qname.as_bytes().enumerate() {
            if i > 0 {
                name.push(b'.');
            }
            name.extend_from_slice(label);
        }
        let Some(m) = filter.check(&name) else {
            continue;
        };
        let qtype = match q.qtype {
            QTYPE::TYPE(t) => format!("{t:?}"),
            other => format!("{other:?}"),
        };
        let reply = match block_reply(&packet, action, m.rule) {
            Some(r) => r,
            None => match error_reply(query, 2) {
                Some(r) => r,
                None => return Decision::Drop,
            },
        };
        return Decision::Block {
            reply,
            name: String::from_utf8_lossy(&name).to_ascii_lowercase(),
            qtype,
            rule: m.rule.to_string(),
            list: m.list_name.to_string(),
        };
    }
    Decision::Forward
}

fn block_reply(query: &Packet<'_>, action: &BlockAction, rule: &str) -> Option<Vec<u8>> {
    let mut reply = Packet::new_reply(query.id());
    reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
    if query.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    reply.questions = query.questions.clone();
    let ttl = match action {
        BlockAction::NxDomain { ttl } => {
            *reply.rcode_mut() = RCODE::NameError;
            *ttl
        }
        BlockAction::BlockPage { v4, v6, ttl } => {
            for q in &query.questions {
                let rdata = match (q.qtype, v4, v6) {
                    (QTYPE::TYPE(TYPE::A), Some(a), _) => RData::A(A {
                        address: u32::from(*a),
                    }),
                    (QTYPE::TYPE(TYPE::AAAA), _, Some(a)) => RData::AAAA(AAAA {
                        address: u128::from(*a),
                    }),
                    _ => continue,
                };
                reply
                    .answers
                    .push(ResourceRecord::new(q.qname.clone(), CLASS::IN, *ttl, rdata));
            }
            *ttl
        }
    };
    // NXDOMAIN, and NODATA (a block page without an address of the asked
    // type): without an SOA a resolver may not cache the answer at all
    // (RFC 2308 §5) and asks again for every client.
    if reply.answers.is_empty() {
        if let Some(q) = query.questions.first() {
            reply
                .name_servers
                .push(blocked_soa(blocked_zone(&q.qname, rule), ttl));
        }
    }
    reply.build_bytes_vec_compressed().ok()
}

/// SOA MNAME and RNAME of block answers: names under `.invalid` (RFC
/// 6761), so nothing ever resolves or mails them.
pub const BLOCK_SOA_MNAME: &str = "blocked.simpul.invalid";
pub const BLOCK_SOA_RNAME: &str = "hostmaster.simpul.invalid";

/// The zone the negative answer is about: the blocking rule's domain when
/// it is the asked name or one of its parents (a resolver accepts an SOA
/// only at or above the name asked), else the asked name itself. Taken
/// from the question's own labels, so it is a parent whatever bytes they
/// hold.
fn blocked_zone<'a>(qname: &simple_dns::Name<'a>, rule: &str) -> simple_dns::Name<'a> {
    let labels = qname.get_labels();
    let rule: Vec<&str> = rule.split('.').filter(|l| !l.is_empty()).collect();
    if rule.is_empty() || rule.len() > labels.len() {
        return qname.clone();
    }
    let tail = &labels[labels.len() - rule.len()..];
    let same = tail
        .iter()
        .zip(&rule)
        .all(|(l, r)| l.as_ref().eq_ignore_ascii_case(r.as_bytes()));
    if same {
        simple_dns::Name::new_with_labels(tail)
    } else {
        qname.clone()
    }
}

/// The synthetic SOA of a blocked zone: owner TTL and MINIMUM both `ttl`,
/// so the negative answer is cached exactly as long as a block-page
/// address would be. SERIAL, REFRESH, RETRY and EXPIRE matter only to
/// secondaries, which a synthetic zone has none of.
fn blocked_soa<'a>(zone: simple_dns::Name<'a>, ttl: u32) -> ResourceRecord<'a> {
    let soa = simple_dns::rdata::SOA {
        mname: simple_dns::Name::new_unchecked(BLOCK_SOA_MNAME),
        rname: simple_dns::Name::new_unchecked(BLOCK_SOA_RNAME),
        serial: 1,
        refresh: 3600,
        retry: 600,
        expire: 86_400,
        minimum: ttl,
    };
    ResourceRecord::new(zone, CLASS::IN, ttl, RData::SOA(soa))
}

struct Shared {
    config: DnsProxyConfig,
    filter: RwLock<Arc<DomainFilter>>,
    /// What blocked names get (starts as `config.action`; follows the policy).
    action: RwLock<BlockAction>,
    sink: BlockSink,
    counters: Counters,
    /// The [`Probe`]'s sockets: datagrams from them are answered at once,
    /// outside the counters and the filter.
    probes: Vec<SocketAddr>,
}

#[derive(Clone, Copy)]
enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

impl Shared {
    fn filter(&self) -> Arc<DomainFilter> {
        match self.filter.read() {
            Ok(f) => f.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn handle(&self, query: &[u8], client: IpAddr, transport: Transport) -> Option<Vec<u8>> {
        let filter = self.filter();
        let action = match self.action.read() {
            Ok(a) => *a,
            Err(poisoned) => *poisoned.into_inner(),
        };
        match decide(query, &filter, &action) {
            Decision::Drop => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                None
            }
            Decision::Reply(r) => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                Some(r)
            }
            Decision::Block {
                reply,
                name,
                qtype,
                rule,
                list,
            } => {
                self.counters.blocked.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%client, %name, %qtype, %rule, %list, transport = transport.name(), "DNS query blocked");
                (self.sink)(BlockEvent {
                    ts: now_rfc3339(),
                    client,
                    name,
                    qtype,
                    rule,
                    list,
                    transport: transport.name(),
                });
                Some(reply)
            }
            Decision::Forward => {
                let res = match transport {
                    Transport::Udp => self.forward_udp(query).await,
                    Transport::Tcp => self.forward_tcp(query).await,
                };
                match res {
                    Ok(r) => {
                        self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                        Some(r)
                    }
                    Err(e) => {
                        self.counters
                            .upstream_errors
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(upstream = %self.config.upstream, error = %e, "DNS forward failed");
                        servfail(query)
                    }
                }
            }
        }
    }

    async fn forward_udp(&self, query: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        let bind: SocketAddr = if self.config.upstream.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(bind).await?;
        sock.connect(self.config.upstream).await?;
        sock.send(query).await?;
        let mut buf = vec![0u8; 65_535];
        let wait = async {
            loop {
                let n = sock.recv(&mut buf).await?;
                // Only the answer to this query (same ID) counts.
                if n >= HEADER_LEN && buf[..2] == query[..2] {
                    return Ok::<usize, std::io::Error>(n);
                }
            }
        };
        let n = tokio::time::timeout(self.config.upstream_timeout, wait)
            .await
            .map_err(|_| UpstreamError::Timeout)??;
        buf.truncate(n);
        Ok(buf)
    }

    async fn forward_tcp(&self, query: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        let len = u16::try_from(query.len()).map_err(|_| UpstreamError::TooLong)?;
        let exchange = async {
            let mut s = TcpStream::connect(self.config.upstream).await?;
            let mut msg = Vec::with_capacity(query.len() + 2);
            msg.extend_from_slice(&len.to_be_bytes());
            msg.extend_from_slice(query);
            s.write_all(&msg).await?;
            let mut lb = [0u8; 2];
            s.read_exact(&mut lb).await?;
            let mut reply = vec![0u8; usize::from(u16::from_be_bytes(lb))];
            s.read_exact(&mut reply).await?;
            Ok::<Vec<u8>, std::io::Error>(reply)
        };
        Ok(tokio::time::timeout(self.config.upstream_timeout, exchange)
            .await
            .map_err(|_| UpstreamError::Timeout)??)
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A running responder; its tasks stop when it is dropped.
pub struct DnsProxy {
    shared: Arc<Shared>,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    /// Every UDP listen address (the first is `udp_addr`).
    listening: Vec<SocketAddr>,
    probe: Arc<Probe>,
    tasks: Vec<JoinHandle<()>>,
}

/// A UDP socket on `addr`; an IPv6 one never takes IPv4 too, so `[::]`
/// and `0.0.0.0` can both be listened on.
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// A TCP listener on `addr` (IPv6 only for an IPv6 address, as
/// [`bind_udp`]); SO_REUSEADDR so a restart binds while old connections
/// linger in TIME_WAIT.
fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

/// UDP and TCP on `want` (TCP on the port UDP got, for port 0).
fn bind_pair(want: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr), DnsProxyError> {
    let bind_err = |proto, addr| {
        move |source| DnsProxyError::Bind {
            proto,
            addr,
            source,
        }
    };
    let udp = bind_udp(want).map_err(bind_err("udp", want))?;
    let udp_addr = udp.local_addr().map_err(bind_err("udp", want))?;
    let tcp_want = SocketAddr::new(want.ip(), udp_addr.port());
    let tcp = bind_tcp(tcp_want).map_err(bind_err("tcp", tcp_want))?;
    let tcp_addr = tcp.local_addr().map_err(bind_err("tcp", tcp_want))?;
    Ok((udp, tcp, tcp_addr))
}

impl DnsProxy {
    /// Bind UDP and TCP on every listen address and start serving on the
    /// current tokio runtime.
    pub async fn start(
        config: DnsProxyConfig,
        filter: DomainFilter,
        sink: BlockSink,
    ) -> Result<DnsProxy, DnsProxyError> {
        let mut bound = Vec::new();
        for want in std::iter::once(config.listen).chain(config.also_listen.iter().copied()) {
            bound.push(bind_pair(want)?);
        }
        let mut listening = Vec::new();
        for (udp, _, _) in &bound {
            listening.push(udp.local_addr().map_err(|source| DnsProxyError::Bind {
                proto: "udp",
                addr: config.listen,
                source,
            })?);
        }
        let probe = Arc::new(Probe::new(&listening).await?);
        let shared = Arc::new(Shared {
            filter: RwLock::new(Arc::new(filter)),
            action: RwLock::new(config.action),
            sink,
            counters: Counters::default(),
            probes: probe.sources(),
            config,
        });
        let udp_addr = listening[0];
        let tcp_addr = bound[0].2;
        let mut tasks = Vec::new();
        for (udp, tcp, _) in bound {
            tasks.push(tokio::spawn(serve_udp(Arc::new(udp), shared.clone())));
            tasks.push(tokio::spawn(serve_tcp(tcp, shared.clone())));
        }
        let addrs: Vec<String> = listening.iter().map(ToString::to_string).collect();
        tracing::info!(listen = %addrs.join(" "), upstream = %shared.config.upstream, "DNS responder listening (UDP and TCP)");
        Ok(DnsProxy {
            shared,
            udp_addr,
            tcp_addr,
            listening,
            probe,
            tasks,
        })
    }

    /// Every UDP (and TCP) listen address.
    pub fn listening(&self) -> &[SocketAddr] {
        &self.listening
    }

    /// The self-check of the listeners (see [`Probe`]).
    pub fn probe(&self) -> Arc<Probe> {
        self.probe.clone()
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// Swap in a new blocklist/allowlist; queries in progress finish with the old one.
    pub fn set_filter(&self, filter: DomainFilter) {
        self.handle().set_filter(filter);
    }

    /// Change what blocked names get (NXDOMAIN or a block page).
    pub fn set_action(&self, action: BlockAction) {
        self.handle().set_action(action);
    }

    /// A handle that changes the rules from another thread.
    pub fn handle(&self) -> DnsHandle {
        DnsHandle(self.shared.clone())
    }

    pub fn stats(&self) -> DnsStats {
        let c = &self.shared.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DnsStats {
            queries_udp: g(&c.queries_udp),
            queries_tcp: g(&c.queries_tcp),
            blocked: g(&c.blocked),
            forwarded: g(&c.forwarded),
            upstream_errors: g(&c.upstream_errors),
            malformed: g(&c.malformed),
            overload_dropped: g(&c.overload_dropped),
        }
    }
}

impl Drop for DnsProxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot probe the DNS listener {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the DNS listener {addr} did not answer its probe within {millis} ms")]
    Silent { addr: SocketAddr, millis: u128 },
}

/// Whether the responder answers: one UDP socket per listener, connected
/// to it, whose datagrams the listener's task answers itself (a header
/// with the same ID). An answer proves the socket is open and its task
/// runs on a runtime that is not stuck; the DNS redirect is renewed only
/// on that proof.
pub struct Probe {
    socks: Vec<(UdpSocket, SocketAddr)>,
    next_id: std::sync::atomic::AtomicU16,
}

impl Probe {
    async fn new(listeners: &[SocketAddr]) -> Result<Probe, DnsProxyError> {
        let mut socks = Vec::new();
        for &l in listeners {
            // A wildcard listener is reached on loopback.
            let to = match l.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, l.port()).into(),
                IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, l.port()).into(),
                _ => l,
            };
            let any: SocketAddr = if to.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let err = |source| DnsProxyError::Bind {
                proto: "udp (probe)",
                addr: to,
                source,
            };
            let sock = UdpSocket::bind(any).await.map_err(err)?;
            sock.connect(to).await.map_err(err)?;
            socks.push((sock, to));
        }
        Ok(Probe {
            socks,
            next_id: std::sync::atomic::AtomicU16::new(1),
        })
    }

    /// Where probes come from, as the listeners see them.
    fn sources(&self) -> Vec<SocketAddr> {
        self.socks
            .iter()
            .filter_map(|(s, _)| s.local_addr().ok())
            .collect()
    }

    /// Ask every listener once; each must answer within `wait`.
    pub async fn check(&self, wait: Duration) -> Result<(), ProbeError> {
        for (sock, addr) in &self.socks {
            let addr = *addr;
            let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_be_bytes();
            let query = [id[0], id[1], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            let io = |source| ProbeError::Io { addr, source };
            sock.send(&query).await.map_err(io)?;
            let mut buf = [0u8; 512];
            let answer = async {
                loop {
                    let n = sock.recv(&mut buf).await?;
                    // An earlier probe's late answer is not this one's.
                    if n >= HEADER_LEN && buf[..2] == id && buf[2] & 0x80 != 0 {
                        return Ok::<(), std::io::Error>(());
                    }
                }
            };
            match tokio::time::timeout(wait, answer).await {
                Ok(r) => r.map_err(io)?,
                Err(_) => {
                    return Err(ProbeError::Silent {
                        addr,
                        millis: wait.as_millis(),
                    })
                }
            }
        }
        Ok(())
    }
}

async fn serve_udp(sock: Arc<UdpSocket>, shared: Arc<Shared>) {
    let limit = Arc::new(Semaphore::new(shared.config.max_in_flight.max(1)));
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "DNS UDP receive failed");
                continue;
            }
        };
        if shared.probes.contains(&peer) {
            if let Some(r) = error_reply(&buf[..n], 0) {
                let _ = sock.send_to(&r, peer).await;
            }
            continue;
        }
        shared.counters.queries_udp.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            shared
                .counters
                .overload_dropped
                .fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let query = buf[..n].to_vec();
        let (sock, shared) = (sock.clone(), shared.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(reply) = shared.handle(&query, peer.ip(), Transport::Udp).await {
                if let Err(e) = sock.send_to(&reply, peer).await {
                    tracing::debug!(%peer, error = %e, "DNS UDP reply failed");
                }
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    let limit = Arc::new(Semaphore::new(shared.config.max_tcp_connections.max(1)));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "DNS TCP accept failed");
                // E.g. out of file descriptors: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            shared
                .counters
                .overload_dropped
                .fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = serve_tcp_conn(stream, peer.ip(), &shared).await {
                tracing::debug!(%peer, error = %e, "DNS TCP connection ended");
            }
        });
    }
}

/// Queries on one connection, answered in order, until EOF or idle.
async fn serve_tcp_conn(
    mut stream: TcpStream,
    client: IpAddr,
    shared: &Shared,
) -> std::io::Result<()> {
    let idle = shared.config.tcp_idle;
    loop {
        let mut lb = [0u8; 2];
        match tokio::time::timeout(idle, stream.read_exact(&mut lb)).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r?,
        };
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(lb))];
        tokio::time::timeout(idle, stream.read_exact(&mut query))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        shared.counters.queries_tcp.fetch_add(1, Ordering::Relaxed);
        let Some(reply) = shared.handle(&query, client, Transport::Tcp).await else {
            return Ok(());
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return Ok(());
        };
        let mut msg = Vec::with_capacity(reply.len() + 2);
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(&reply);
        stream.write_all(&msg).await?;
    }
}

/// `simpul-agent dns-proxy`: run the responder alone (debugging and tests).
#[derive(Debug, Clone, clap::Args)]
pub struct DnsProxyArgs {
    /// UDP and TCP address to answer on. Repeatable (an IPv4 and an IPv6
    /// address, say).
    #[arg(long, default_value = "127.0.0.1:53")]
    pub listen: Vec<SocketAddr>,
    /// Resolver to forward allowed queries to.
    #[arg(long)]
    pub upstream: SocketAddr,
    /// Blocklist file, `[NAME=]PATH` (NAME is the list/category reported in
    /// events; default the file stem). Repeatable.
    #[arg(long)]
    pub blocklist: Vec<String>,
    /// Allowlist file (names and their subdomains never blocked). Repeatable.
    #[arg(long)]
    pub allowlist: Vec<PathBuf>,
    /// List syntax: plain, hosts, adblock or auto (per line).
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// Answer blocked A queries with this block-page address instead of NXDOMAIN.
    #[arg(long)]
    pub block_v4: Option<Ipv4Addr>,
    /// Answer blocked AAAA queries with this block-page address instead of NXDOMAIN.
    #[arg(long)]
    pub block_v6: Option<Ipv6Addr>,
    /// TTL of block answers, seconds: block-page addresses, and the SOA
    /// that NXDOMAIN carries for negative caching.
    #[arg(long, default_value_t = BLOCK_TTL)]
    pub block_ttl: u32,
    /// Append one JSON line per blocked query to this file.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Upstream timeout, milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// UDP queries handled at once.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
}

/// Load the lists named on the command line into a filter.
pub fn load_filter(
    blocklists: &[String],
    allowlists: &[PathBuf],
    format: ListFormat,
) -> Result<DomainFilter, DnsProxyError> {
    let mut block = DomainSetBuilder::new();
    let mut names = Vec::new();
    for (i, spec) in blocklists.iter().enumerate() {
        let (name, path) = match spec.split_once('=') {
            Some((n, p)) if !n.is_empty() && !n.contains('/') => (n.to_string(), PathBuf::from(p)),
            _ => {
                let p = PathBuf::from(spec);
                let stem = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (stem, p)
            }
        };
        let id = u16::try_from(i).map_err(|_| DnsProxyError::Arg("too many blocklists".into()))?;
        let report = add_list(&mut block, &path, format, id)?;
        tracing::info!(list = %name, path = %path.display(), added = report.0, invalid = report.1, "blocklist loaded");
        names.push(name);
    }
    let mut allow = DomainSetBuilder::new();
    for path in allowlists {
        add_list(&mut allow, path, format, 0)?;
    }
    Ok(DomainFilter::new(block.build(), allow.build(), names))
}

fn add_list(
    b: &mut DomainSetBuilder,
    path: &Path,
    format: ListFormat,
    id: u16,
) -> Result<(u64, u64), DnsProxyError> {
    let report = b
        .add_path(path, format, id)
        .map_err(|source| DnsProxyError::List {
            path: path.display().to_string(),
            source,
        })?;
    for bad in &report.first_invalid {
        tracing::warn!(path = %path.display(), line = bad.line, entry = %bad.text, reason = %bad.reason, "invalid list entry skipped");
    }
    Ok((report.added, report.invalid))
}

/// Run until SIGINT/SIGTERM; the final counters are logged.
pub fn run_cli(args: &DnsProxyArgs) -> Result<(), DnsProxyError> {
    let format: ListFormat = args
        .format
        .parse()
        .map_err(|e| DnsProxyError::Arg(format!("{e}")))?;
    let filter = load_filter(&args.blocklist, &args.allowlist, format)?;
    let Some((&listen, more)) = args.listen.split_first() else {
        return Err(DnsProxyError::Arg("--listen: at least one address".into()));
    };
    let mut config = DnsProxyConfig::new(listen, args.upstream);
    config.also_listen = more.to_vec();
    config.upstream_timeout = Duration::from_millis(args.timeout_ms.max(1));
    config.max_in_flight = args.max_in_flight;
    config.action = if args.block_v4.is_some() || args.block_v6.is_some() {
        BlockAction::BlockPage {
            v4: args.block_v4,
            v6: args.block_v6,
            ttl: args.block_ttl,
        }
    } else {
        BlockAction::NxDomain {
            ttl: args.block_ttl,
        }
    };
    let sink: BlockSink = match &args.events {
        Some(path) => jsonl_sink(path)?,
        None => Arc::new(|_| {}),
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(DnsProxyError::Runtime)?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DnsProxyError::Runtime)?;
    rt.block_on(async move {
        let proxy = DnsProxy::start(config, filter, sink).await?;
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let s = proxy.stats();
        tracing::info!(
            queries_udp = s.queries_udp,
            queries_tcp = s.queries_tcp,
            blocked = s.blocked,
            forwarded = s.forwarded,
            upstream_errors = s.upstream_errors,
            malformed = s.malformed,
            overload_dropped = s.overload_dropped,
            "DNS responder stopped"
        );
        Ok(())
    })
}

/// Changes the responder's rules from any thread.
#[derive(Clone)]
pub struct DnsHandle(Arc<Shared>);

impl DnsHandle {
    pub fn set_filter(&self, filter: DomainFilter) {
        let new = Arc::new(filter);
        match self.0.filter.write() {
            Ok(mut f) => *f = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    pub fn set_action(&self, action: BlockAction) {
        match self.0.action.write() {
            Ok(mut a) => *a = action,
            Err(poisoned) => *poisoned.into_inner() = action,
        }
    }
}

/// The responder on a thread of its own (with its own runtime), for the
/// synchronous agent: `set_filter` and `stats` work from any thread.
pub struct DnsService {
    proxy: Option<DnsProxy>,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
    mark: Option<Arc<LiveMark>>,
}

/// How often the responder probes itself and renews the redirect's live
/// mark (which lasts
/// [`simpul_core::enforce::dns_redirect::LIVE_TIMEOUT_SECS`]).
pub const LIVE_RENEW_EVERY: Duration = Duration::from_secs(1);
/// How long a listener has to answer its probe.
const PROBE_WAIT: Duration = Duration::from_millis(500);

/// Renew `mark` after every probe the responder answers, from its own
/// runtime: a stuck runtime renews nothing. The first renewal follows the
/// first answer, so the redirect never points at a responder not yet
/// serving.
async fn keep_redirect_live(probe: Arc<Probe>, mark: Arc<LiveMark>) {
    let mut tick = tokio::time::interval(LIVE_RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match probe.check(PROBE_WAIT).await {
            Ok(()) => {
                let m = mark.clone();
                // `nft` runs off the runtime so answers are not held up.
                if let Err(e) = tokio::task::spawn_blocking(move || m.renew()).await {
                    tracing::warn!(error = %e, "renewing the DNS redirect's live mark failed");
                }
            }
            Err(e) => mark.not_answering(&e),
        }
    }
}

impl DnsService {
    /// Start the responder; with `mark`, the DNS redirect follows it (see
    /// [`crate::enforce::dns_live`]).
    pub fn start(
        config: DnsProxyConfig,
        filter: DomainFilter,
        sink: BlockSink,
        mark: Option<LiveMark>,
    ) -> Result<DnsService, DnsProxyError> {
        let mark = mark.map(Arc::new);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(DnsProxyError::Runtime)?;
        let stop = Arc::new(tokio::sync::Notify::new());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let stop = stop.clone();
            let mark = mark.clone();
            std::thread::Builder::new()
                .name("simpul-dns".into())
                .spawn(move || {
                    rt.block_on(async move {
                        match DnsProxy::start(config, filter, sink).await {
                            Ok(p) => {
                                if let Some(m) = mark {
                                    tokio::spawn(keep_redirect_live(p.probe(), m));
                                }
                                let _ = tx.send(Ok(p));
                                stop.notified().await;
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e));
                            }
                        }
                    });
                })
                .map_err(DnsProxyError::Runtime)?
        };
        let proxy = rx
            .recv()
            .map_err(|_| DnsProxyError::Arg("the DNS thread ended before it started".into()))??;
        Ok(DnsService {
            proxy: Some(proxy),
            stop,
            thread: Some(thread),
            mark,
        })
    }

    pub fn set_filter(&self, filter: DomainFilter) {
        if let Some(p) = &self.proxy {
            p.set_filter(filter);
        }
    }

    pub fn set_action(&self, action: BlockAction) {
        if let Some(p) = &self.proxy {
            p.set_action(action);
        }
    }

    pub fn stats(&self) -> DnsStats {
        self.proxy.as_ref().map(DnsProxy::stats).unwrap_or_default()
    }

    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.proxy.as_ref().map(DnsProxy::udp_addr)
    }

    /// A handle that changes the rules from another thread (None once stopped).
    pub fn handle(&self) -> Option<DnsHandle> {
        self.proxy.as_ref().map(DnsProxy::handle)
    }

    /// Every listen address (none once stopped).
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.proxy
            .as_ref()
            .map(|p| p.listening().to_vec())
            .unwrap_or_default()
    }

    /// The redirect lapses first (the LAN's DNS goes to the resolvers its
    /// clients ask), then the sockets close.
    fn shut_down(&mut self) {
        if let Some(m) = self.mark.take() {
            m.lapse();
        }
        self.proxy = None;
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stop serving; the final counters are logged.
    pub fn stop(mut self) {
        let s = self.stats();
        self.shut_down();
        tracing::info!(
            queries_udp = s.queries_udp,
            queries_tcp = s.queries_tcp,
            blocked = s.blocked,
            forwarded = s.forwarded,
            upstream_errors = s.upstream_errors,
            "DNS responder stopped"
        );
    }
}

impl Drop for DnsService {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// A sink appending each event as one JSON line (flushed per event).
pub fn jsonl_sink(path: &Path) -> Result<BlockSink, DnsProxyError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| DnsProxyError::Events {
            path: path.display().to_string(),
            source,
        })?;
    let file = Mutex::new(file);
    Ok(Arc::new(move |ev: BlockEvent| {
        let Ok(mut line) = serde_json::to_vec(&ev) else {
            return;
        };
        line.push(b'\n');
        let mut f = match file.lock() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        if let Err(e) = f.write_all(&line) {
            tracing::warn!(error = %e, "cannot write a block event");
        }
    }))
}

/// An empty filter (nothing blocked).
pub fn empty_filter() -> DomainFilter {
    DomainFilter::new(DomainSet::default(), DomainSet::default(), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::Question;

    fn filter() -> DomainFilter {
        let block = DomainSet::from_lines("judi.com\n||slot.xyz^\n".as_bytes(), ListFormat::Auto)
            .expect("read");
        let allow =
            DomainSet::from_lines("ok.judi.com\n".as_bytes(), ListFormat::Plain).expect("read");
        DomainFilter::new(block, allow, vec!["judi".into()])
    }

    fn query(id: u16, name: &str, qtype: TYPE) -> Vec<u8> {
        let mut p = Packet::new_query(id);
        p.set_flags(PacketFlag::RECURSION_DESIRED);
        p.questions.push(Question::new(
            simple_dns::Name::new_unchecked(name),
            QTYPE::TYPE(qtype),
            simple_dns::QCLASS::CLASS(CLASS::IN),
            false,
        ));
        p.build_bytes_vec().expect("build query")
    }

    #[test]
    fn decisions() {
        let f = filter();
        let nx = BlockAction::NxDomain { ttl: 60 };
        match decide(&query(7, "www.JUDI.com", TYPE::A), &f, &nx) {
            Decision::Block {
                reply,
                rule,
                list,
                name,
                qtype,
            } => {
                let p = Packet::parse(&reply).expect("reply parses");
                assert_eq!(p.id(), 7);
                assert_eq!(p.rcode(), RCODE::NameError);
                assert!(p.has_flags(PacketFlag::RESPONSE));
                assert!(p.has_flags(PacketFlag::RECURSION_DESIRED));
                assert_eq!(p.questions.len(), 1);
                assert_eq!((rule.as_str(), list.as_str()), ("judi.com", "judi"));
                assert_eq!((name.as_str(), qtype.as_str()), ("www.judi.com", "A"));
            }
            d => panic!("{d:?}"),
        }
        assert_eq!(
            decide(&query(1, "ok.judi.com", TYPE::A), &f, &nx),
            Decision::Forward
        );
        assert_eq!(
            decide(&query(1, "a.ok.judi.com", TYPE::A), &f, &nx),
            Decision::Forward
        );
        assert_eq!(
            decide(&query(1, "example.com", TYPE::A), &f, &nx),
            Decision::Forward
        );
        let page = BlockAction::BlockPage {
            v4: Some(Ipv4Addr::new(10, 9, 9, 9)),
            v6: None,
            ttl: 30,
        };
        let Decision::Block { reply, .. } = decide(&query(2, "m.slot.xyz", TYPE::A), &f, &page)
        else {
            panic!("not blocked")
        };
        let p = Packet::parse(&reply).expect("reply parses");
        assert_eq!(p.rcode(), RCODE::NoError);
        assert_eq!(p.answers.len(), 1);
        assert_eq!(
            p.answers[0].rdata,
            RData::A(A {
                address: 0x0a09_0909
            })
        );
        let Decision::Block { reply, .. } = decide(&query(3, "slot.xyz", TYPE::AAAA), &f, &page)
        else {
            panic!("not blocked")
        };
        let p = Packet::parse(&reply).expect("reply parses");
        assert_eq!((p.rcode(), p.answers.len()), (RCODE::NoError, 0));
        // A response is never answered; garbage with a header gets FORMERR.
        let mut resp = query(4, "x.com", TYPE::A);
        resp[2] |= 0x80;
        assert_eq!(decide(&resp, &f, &nx), Decision::Drop);
        assert_eq!(decide(&[1, 2, 3], &f, &nx), Decision::Drop);
        let mut bad = query(5, "x.com", TYPE::A);
        bad.truncate(15);
        let Decision::Reply(r) = decide(&bad, &f, &nx) else {
            panic!("no FORMERR")
        };
        assert_eq!((r[0], r[1], r[3] & 0x0f), (0, 5, 1));
    }

    /// The SOA in a negative answer, parsed back: (owner, TTL, SOA).
    fn soa_of(reply: &[u8]) -> (String, u32, simple_dns::rdata::SOA<'static>) {
        let p = Packet::parse(reply).expect("reply parses");
        assert_eq!(p.name_servers.len(), 1, "one SOA in the authority section");
        let rr = &p.name_servers[0];
        let RData::SOA(soa) = &rr.rdata else {
            panic!("not an SOA: {:?}", rr.rdata)
        };
        (rr.name.to_string(), rr.ttl, soa.clone().into_owned())
    }

    #[test]
    fn nxdomain_carries_the_blocked_zones_soa() {
        let f = filter();
        let nx = BlockAction::NxDomain { ttl: 60 };
        let Decision::Block { reply, .. } = decide(&query(7, "a.www.JUDI.com", TYPE::A), &f, &nx)
        else {
            panic!("not blocked")
        };
        let p = Packet::parse(&reply).expect("reply parses");
        assert_eq!(p.rcode(), RCODE::NameError);
        assert!(p.answers.is_empty());
        let (owner, ttl, soa) = soa_of(&reply);
        // The rule's domain, a parent of the name asked: in bailiwick.
        assert_eq!(owner.to_ascii_lowercase(), "judi.com");
        assert_eq!(ttl, 60);
        assert_eq!(
            soa.minimum, 60,
            "negative TTL = min(TTL, MINIMUM) = the block TTL"
        );
        assert_eq!(soa.mname.to_string(), BLOCK_SOA_MNAME);
        assert_eq!(soa.rname.to_string(), BLOCK_SOA_RNAME);
        assert_eq!(soa.serial, 1);

        // The project's own decoder reads the reply as NXDOMAIN for the name.
        let m = simpul_core::dpi::dns::parse(&reply).expect("core decoder");
        assert_eq!((m.rcode, m.is_response), (3, true));
        assert_eq!(m.query.as_deref(), Some("a.www.judi.com"));
        assert!(m.addresses.is_empty());

        // Another TTL, another rule (adblock syntax): the same shape.
        let Decision::Block { reply, .. } = decide(
            &query(8, "deep.sub.slot.xyz", TYPE::AAAA),
            &f,
            &BlockAction::NxDomain { ttl: 15 },
        ) else {
            panic!("not blocked")
        };
        let (owner, ttl, soa) = soa_of(&reply);
        assert_eq!((owner.as_str(), ttl, soa.minimum), ("slot.xyz", 15, 15));
    }

    #[test]
    fn block_page_without_an_address_is_nodata_with_the_soa() {
        let f = filter();
        let page = BlockAction::BlockPage {
            v4: Some(Ipv4Addr::new(10, 9, 9, 9)),
            v6: None,
            ttl: 30,
        };
        let Decision::Block { reply, .. } = decide(&query(2, "judi.com", TYPE::MX), &f, &page)
        else {
            panic!("not blocked")
        };
        let p = Packet::parse(&reply).expect("reply parses");
        assert_eq!((p.rcode(), p.answers.len()), (RCODE::NoError, 0));
        let (owner, ttl, soa) = soa_of(&reply);
        assert_eq!((owner.as_str(), ttl, soa.minimum), ("judi.com", 30, 30));
        // An answer of the block page's address needs no SOA.
        let Decision::Block { reply, .. } = decide(&query(3, "judi.com", TYPE::A), &f, &page)
        else {
            panic!("not blocked")
        };
        let p = Packet::parse(&reply).expect("reply parses");
        assert_eq!((p.answers.len(), p.name_servers.len()), (1, 0));
    }

    #[test]
    fn the_soa_owner_is_the_rule_only_on_a_label_boundary() {
        let zone = |q: &str, rule: &str| {
            blocked_zone(&simple_dns::Name::new_unchecked(q), rule).to_string()
        };
        assert_eq!(zone("a.b.judi.com", "judi.com"), "judi.com");
        assert_eq!(zone("JUDI.com", "judi.com"), "JUDI.com");
        assert_eq!(zone("xjudi.com", "judi.com"), "xjudi.com");
        assert_eq!(zone("judi.com", "www.judi.com"), "judi.com");
        assert_eq!(zone("judi.com", ""), "judi.com");
    }

    #[test]
    fn probes_are_answered_apart_from_queries_and_fail_once_stopped() {
        rt().block_on(async {
            let v4 = DnsProxy::start(
                DnsProxyConfig::new(
                    "127.0.0.1:0".parse().expect("addr"),
                    "127.0.0.1:9".parse().expect("addr"),
                ),
                empty_filter(),
                Arc::new(|_| {}),
            )
            .await
            .expect("start v4");
            // The IPv6 wildcard on the same port as an IPv4 listener: the
            // IPv6 socket is IPv6-only, or this bind would fail.
            let port = v4.udp_addr().port();
            let mut cfg = DnsProxyConfig::new(
                "127.0.0.2:0".parse().expect("addr"),
                "127.0.0.1:9".parse().expect("addr"),
            );
            cfg.also_listen = vec![SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))];
            let both = DnsProxy::start(cfg, filter(), Arc::new(|_| {}))
                .await
                .expect("start with an IPv6 listener");
            assert_eq!(both.listening().len(), 2);
            assert_eq!(both.listening()[1].port(), port);

            let probe = both.probe();
            for _ in 0..3 {
                probe.check(Duration::from_secs(2)).await.expect("answered");
            }
            assert_eq!(both.stats(), DnsStats::default(), "probes are not queries");
            // A blocked name over IPv6 is answered by the IPv6 listener.
            let s = UdpSocket::bind("[::1]:0").await.expect("bind v6");
            s.send_to(
                &query(0x66, "judi.com", TYPE::AAAA),
                (Ipv6Addr::LOCALHOST, port),
            )
            .await
            .expect("send");
            let mut buf = vec![0u8; 512];
            let n = tokio::time::timeout(Duration::from_secs(5), s.recv(&mut buf))
                .await
                .expect("reply in time")
                .expect("recv");
            let p = Packet::parse(&buf[..n]).expect("parse");
            assert_eq!((p.id(), p.rcode()), (0x66, RCODE::NameError));
            assert_eq!(both.stats().queries_udp, 1);

            drop(both);
            tokio::task::yield_now().await;
            let e = probe
                .check(Duration::from_millis(300))
                .await
                .expect_err("a stopped responder does not answer");
            eprintln!("probe of a stopped responder: {e}");
            v4.probe()
                .check(Duration::from_secs(2))
                .await
                .expect("the other still answers");
        });
    }

    /// Mutation fuzzing: flips, truncations, insertions and random bytes
    /// against both actions; nothing may panic.
    #[test]
    fn hostile_packets_never_panic() {
        let f = filter();
        let actions = [
            BlockAction::NxDomain { ttl: 30 },
            BlockAction::BlockPage {
                v4: Some(Ipv4Addr::LOCALHOST),
                v6: Some(Ipv6Addr::LOCALHOST),
                ttl: 1,
            },
        ];
        let seeds = [
            query(1, "www.judi.com", TYPE::A),
            query(2, "slot.xyz", TYPE::AAAA),
            query(3, "example.com", TYPE::MX),
            query(4, "a.b.c.d.e.f.g.judi.com", TYPE::TXT),
        ];
        let mut x: u64 = 0x1234_5678_9abc_def0;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..60_000 {
            let mut m = seeds[i % seeds.len()].clone();
            for _ in 0..1 + rnd() % 4 {
                let r = rnd();
                match r % 5 {
                    0 if !m.is_empty() => {
                        let at = (r >> 8) as usize % m.len();
                        m[at] ^= 1 << ((r >> 3) % 8);
                    }
                    1 if !m.is_empty() => {
                        let at = (r >> 8) as usize % m.len();
                        m[at] = (r >> 32) as u8;
                    }
                    2 => {
                        let at = (r >> 8) as usize % (m.len() + 1);
                        m.truncate(at);
                    }
                    3 => {
                        let at = (r >> 8) as usize % (m.len() + 1);
                        m.insert(at, (r >> 40) as u8);
                    }
                    _ => m.extend((0..r % 40).map(|k| (r >> (k % 56)) as u8)),
                }
            }
            // Compression pointers and counts are the interesting fields.
            if i % 7 == 0 && m.len() > 12 {
                m[5] = (rnd() % 4) as u8;
                m[7] = (rnd() % 4) as u8;
            }
            let _ = decide(&m, &f, &actions[i % 2]);
        }
        for len in 0..300 {
            let garbage: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            let _ = decide(&garbage, &f, &actions[len % 2]);
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// A fake upstream: answers A 192.0.2.1 (TC set for `big.test`) over
    /// UDP, and the same over TCP with TC clear.
    async fn fake_upstream() -> (SocketAddr, JoinHandle<()>, JoinHandle<()>) {
        fn answer(q: &[u8], tcp: bool) -> Option<Vec<u8>> {
            let p = Packet::parse(q).ok()?;
            let mut r = p.clone().into_reply();
            let name = p.questions.first()?.qname.to_string();
            if name == "big.test" && !tcp {
                r.set_flags(PacketFlag::TRUNCATION);
            } else {
                r.answers.push(ResourceRecord::new(
                    p.questions.first()?.qname.clone(),
                    CLASS::IN,
                    300,
                    RData::A(A {
                        address: 0xc000_0201,
                    }),
                ));
            }
            r.build_bytes_vec().ok()
        }
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = udp.local_addr().expect("addr");
        let tcp = TcpListener::bind(addr).await.expect("bind tcp");
        let u = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                if let Some(r) = answer(&buf[..n], false) {
                    let _ = udp.send_to(&r, peer).await;
                }
            }
        });
        let t = tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                let mut lb = [0u8; 2];
                if s.read_exact(&mut lb).await.is_err() {
                    continue;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(lb))];
                if s.read_exact(&mut q).await.is_err() {
                    continue;
                }
                if let Some(r) = answer(&q, true) {
                    let mut msg = (r.len() as u16).to_be_bytes().to_vec();
                    msg.extend_from_slice(&r);
                    let _ = s.write_all(&msg).await;
                }
            }
        });
        (addr, u, t)
    }

    async fn ask_udp(server: SocketAddr, q: &[u8]) -> Vec<u8> {
        let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        s.send_to(q, server).await.expect("send");
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.recv(&mut buf))
            .await
            .expect("reply in time")
            .expect("recv");
        buf.truncate(n);
        buf
    }

    async fn ask_tcp(server: SocketAddr, q: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(server).await.expect("connect");
        let mut msg = (q.len() as u16).to_be_bytes().to_vec();
        msg.extend_from_slice(q);
        s.write_all(&msg).await.expect("write");
        let mut lb = [0u8; 2];
        s.read_exact(&mut lb).await.expect("len");
        let mut r = vec![0u8; usize::from(u16::from_be_bytes(lb))];
        s.read_exact(&mut r).await.expect("msg");
        r
    }

    #[test]
    fn serves_blocks_and_forwards() {
        rt().block_on(async {
            let (up, _u, _t) = fake_upstream().await;
            let events = Arc::new(Mutex::new(Vec::new()));
            let ev = events.clone();
            let sink: BlockSink = Arc::new(move |e| ev.lock().expect("lock").push(e));
            let cfg = DnsProxyConfig::new("127.0.0.1:0".parse().expect("addr"), up);
            let proxy = DnsProxy::start(cfg, filter(), sink).await.expect("start");
            let srv = proxy.udp_addr();

            let raw = ask_udp(srv, &query(0x1111, "x.judi.com", TYPE::A)).await;
            let r = Packet::parse(&raw).expect("parse");
            assert_eq!((r.id(), r.rcode()), (0x1111, RCODE::NameError));

            let q = query(0x2222, "example.com", TYPE::A);
            let raw = ask_udp(srv, &q).await;
            let r = Packet::parse(&raw).expect("parse");
            assert_eq!((r.id(), r.answers.len()), (0x2222, 1));

            // Truncated answers are relayed with TC; the TCP retry works.
            let q = query(0x3333, "big.test", TYPE::A);
            let r = ask_udp(srv, &q).await;
            assert!(Packet::parse(&r)
                .expect("parse")
                .has_flags(PacketFlag::TRUNCATION));
            let r = ask_tcp(proxy.tcp_addr(), &q).await;
            let p = Packet::parse(&r).expect("parse");
            assert_eq!((p.id(), p.answers.len()), (0x3333, 1));
            let r = ask_tcp(proxy.tcp_addr(), &query(0x4444, "slot.xyz", TYPE::A)).await;
            assert_eq!(Packet::parse(&r).expect("parse").rcode(), RCODE::NameError);

            let s = proxy.stats();
            assert_eq!((s.queries_udp, s.queries_tcp), (3, 2));
            assert_eq!((s.blocked, s.forwarded, s.upstream_errors), (2, 3, 0));
            let ev = events.lock().expect("lock").clone();
            assert_eq!(ev.len(), 2);
            assert_eq!(
                (ev[0].name.as_str(), ev[0].rule.as_str()),
                ("x.judi.com", "judi.com")
            );
            assert_eq!((ev[1].transport, ev[1].list.as_str()), ("tcp", "judi"));
            assert_eq!(ev[0].client, IpAddr::V4(Ipv4Addr::LOCALHOST));
        });
    }

    #[test]
    fn upstream_timeout_is_servfail() {
        rt().block_on(async {
            // A bound socket that never answers.
            let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            let mut cfg = DnsProxyConfig::new(
                "127.0.0.1:0".parse().expect("addr"),
                silent.local_addr().expect("addr"),
            );
            cfg.upstream_timeout = Duration::from_millis(200);
            let proxy = DnsProxy::start(cfg, empty_filter(), Arc::new(|_| {}))
                .await
                .expect("start");
            let r = ask_udp(proxy.udp_addr(), &query(9, "example.com", TYPE::A)).await;
            let p = Packet::parse(&r).expect("parse");
            assert_eq!((p.id(), p.rcode()), (9, RCODE::ServerFailure));
            assert_eq!(proxy.stats().upstream_errors, 1);
        });
    }
}
