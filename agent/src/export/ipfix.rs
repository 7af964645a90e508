//! `[export.ipfix]`: the agent's flows as IPFIX over UDP to nfcapd, ntopng,
//! Akvorado or any RFC 7011 collector. The encoding is
//! `simpul_core::ipfix_out`; here are the socket, the clock and the counters.
//!
//! The sink sits beside the JSONL output and the collector link, so it sees
//! the same records: interim records become deltas since the flow's last
//! export, the final one the rest. Sending never blocks the packet thread
//! (a non-blocking socket; a full buffer or an unreachable collector is a
//! counted send error, the message is gone — UDP export has no retry).

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use simpul_core::ipfix_out::delta::biflow;
use simpul_core::ipfix_out::encode::IP_UDP_OVERHEAD;
use simpul_core::ipfix_out::{Deltas, Encoder, EncoderSettings, SettingsError};
use simpul_core::processor::RecordSink;
use simpul_proto::{BlockedAttempt, CounterSample, FlowRecord, Problem};

use crate::link::TimedSink;

/// A partly filled message waits at most this long for more records.
const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// Retry a collector name that did not resolve this often.
const RESOLVE_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpfixConfig {
    /// "HOST:PORT" of the collector (nfcapd's -p, Akvorado's 2055 or 4739).
    pub collector: String,
    /// Re-send the templates this often (a collector that restarted knows
    /// them again within this time).
    #[serde(default = "default_refresh_secs")]
    pub template_refresh_secs: u64,
    /// … and every this many messages (0 = by time only).
    #[serde(default = "default_refresh_messages")]
    pub template_refresh_messages: u32,
    /// Path MTU towards the collector: each datagram (IP + UDP + message)
    /// stays within it.
    #[serde(default = "default_mtu")]
    pub mtu: usize,
    /// The IPFIX observation domain of this agent's records.
    #[serde(default = "default_domain")]
    pub observation_domain_id: u32,
}

fn default_refresh_secs() -> u64 {
    60
}
fn default_refresh_messages() -> u32 {
    100
}
fn default_mtu() -> usize {
    1400
}
fn default_domain() -> u32 {
    1
}

impl IpfixConfig {
    /// Export to `collector` with every other setting at its default.
    pub fn to(collector: impl Into<String>) -> Self {
        Self {
            collector: collector.into(),
            template_refresh_secs: default_refresh_secs(),
            template_refresh_messages: default_refresh_messages(),
            mtu: default_mtu(),
            observation_domain_id: default_domain(),
        }
    }

    pub fn check(&self, place: &str, out: &mut Vec<Problem>) {
        if let Err(m) = split_host_port(&self.collector) {
            out.push(Problem::new(format!("{place}.collector"), m));
        }
        if !(1..=86_400).contains(&self.template_refresh_secs) {
            out.push(Problem::new(
                format!("{place}.template_refresh_secs"),
                "must be 1-86400 seconds",
            ));
        }
        let (min, max) = (
            EncoderSettings::min_mtu(),
            u16::MAX as usize + IP_UDP_OVERHEAD,
        );
        if !(min..=max).contains(&self.mtu) {
            out.push(Problem::new(
                format!("{place}.mtu"),
                format!("must be {min}-{max} bytes (one record or the templates must fit)"),
            ));
        }
    }

    fn settings(&self) -> EncoderSettings {
        EncoderSettings {
            observation_domain: self.observation_domain_id,
            max_message: EncoderSettings::message_limit(self.mtu),
            template_refresh_ns: self.template_refresh_secs.saturating_mul(1_000_000_000),
            template_refresh_messages: self.template_refresh_messages,
        }
    }
}

/// "HOST:PORT" with an IPv6 host in brackets.
fn split_host_port(s: &str) -> Result<(&str, u16), String> {
    let bad =
        || format!("{s:?} is not HOST:PORT (an IPv6 address in brackets: [2001:db8::1]:4739)");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']').ok_or_else(bad)?,
        None if host.contains(':') => return Err(bad()),
        None => host,
    };
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host, port))
}

#[derive(Debug, thiserror::Error)]
pub enum IpfixError {
    #[error("[export.ipfix] {0}")]
    Settings(#[from] SettingsError),
    #[error("[export.ipfix] collector: {0}")]
    Collector(String),
    #[error("cannot start the IPFIX resolver thread: {0}")]
    Thread(std::io::Error),
}

/// What the exporter did (also while it runs, from any thread).
#[derive(Debug, Default)]
pub struct IpfixStats {
    pub messages: AtomicU64,
    pub records: AtomicU64,
    pub send_errors: AtomicU64,
    /// Records that could not be encoded (logged once).
    pub record_errors: AtomicU64,
    /// Mirrors the delta table's count, for the heartbeat.
    pub interim_skipped: AtomicU64,
}

/// [`IpfixStats`] at the end of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IpfixTotals {
    pub messages: u64,
    pub records: u64,
    pub send_errors: u64,
    pub record_errors: u64,
    pub interim_skipped: u64,
}

/// The exporter as a record sink.
pub struct IpfixSink {
    encoder: Encoder,
    deltas: Deltas,
    socket: Option<UdpSocket>,
    /// The collector's address once a background lookup found it.
    resolved: Option<crossbeam_channel::Receiver<SocketAddr>>,
    resolver_stop: Arc<AtomicBool>,
    out: Vec<Vec<u8>>,
    pending_since: Option<Instant>,
    stats: Arc<IpfixStats>,
    warned_send: bool,
    warned_record: bool,
}

impl IpfixSink {
    /// `max_flows`: the flow table's size, which bounds the running flows
    /// whose exported counters are kept.
    pub fn start(cfg: &IpfixConfig, max_flows: usize) -> Result<Self, IpfixError> {
        let (host, port) = split_host_port(&cfg.collector).map_err(IpfixError::Collector)?;
        let encoder = Encoder::new(cfg.settings())?;
        let resolver_stop = Arc::new(AtomicBool::new(false));
        let mut sink = Self {
            encoder,
            deltas: Deltas::new(max_flows),
            socket: None,
            resolved: None,
            resolver_stop: resolver_stop.clone(),
            out: Vec::new(),
            pending_since: None,
            stats: Arc::default(),
            warned_send: false,
            warned_record: false,
        };
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => sink.connect(SocketAddr::new(ip, port)),
            // A name may not resolve at boot (DNS not up yet): look it up
            // beside the packet thread until it does.
            Err(_) => {
                let (tx, rx) = crossbeam_channel::bounded(1);
                let target = format!("{host}:{port}");
                std::thread::Builder::new()
                    .name("ipfix-resolve".into())
                    .spawn(move || resolve_until_found(&target, &tx, &resolver_stop))
                    .map_err(IpfixError::Thread)?;
                sink.resolved = Some(rx);
            }
        }
        tracing::info!(collector = %cfg.collector, mtu = cfg.mtu, "exporting flows as IPFIX");
        Ok(sink)
    }

    pub fn stats(&self) -> Arc<IpfixStats> {
        self.stats.clone()
    }

    fn connect(&mut self, to: SocketAddr) {
        let bind: SocketAddr = if to.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind)
            .and_then(|s| s.connect(to).map(|()| s))
            .and_then(|s| s.set_nonblocking(true).map(|()| s));
        match socket {
            Ok(s) => self.socket = Some(s),
            Err(e) => {
                tracing::error!(collector = %to, error = %e, "cannot open the IPFIX socket; flows are not exported")
            }
        }
    }

    /// Flush what is pending and report the totals (end of a run).
    pub fn finish(&mut self) -> IpfixTotals {
        self.encoder.flush(now_ns(), &mut self.out);
        self.send();
        let s = &self.stats;
        let t = IpfixTotals {
            messages: s.messages.load(Relaxed),
            records: s.records.load(Relaxed),
            send_errors: s.send_errors.load(Relaxed),
            record_errors: s.record_errors.load(Relaxed),
            interim_skipped: self.deltas.interim_skipped,
        };
        tracing::info!(
            messages = t.messages,
            records = t.records,
            send_errors = t.send_errors,
            "IPFIX export totals"
        );
        t
    }

    fn send(&mut self) {
        if self.socket.is_none() {
            if let Some(addr) = self.resolved.as_ref().and_then(|r| r.try_recv().ok()) {
                self.resolved = None;
                self.connect(addr);
            }
        }
        for m in self.out.drain(..) {
            let sent = match &self.socket {
                Some(s) => s.send(&m).map(|_| ()),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "the collector's address is not known yet",
                )),
            };
            match sent {
                Ok(()) => {
                    self.stats.messages.fetch_add(1, Relaxed);
                    self.warned_send = false;
                }
                Err(e) => {
                    self.stats.send_errors.fetch_add(1, Relaxed);
                    if !self.warned_send {
                        tracing::warn!(error = %e, bytes = m.len(), "cannot send an IPFIX message (counted; warned once until one goes through)");
                        self.warned_send = true;
                    }
                }
            }
        }
    }
}

fn resolve_until_found(
    target: &str,
    tx: &crossbeam_channel::Sender<SocketAddr>,
    stop: &AtomicBool,
) {
    let mut warned = false;
    while !stop.load(Relaxed) {
        match target.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(a)) => {
                let _ = tx.send(a);
                return;
            }
            Ok(None) => {}
            Err(e) if !warned => {
                tracing::warn!(collector = target, error = %e, "cannot resolve the IPFIX collector; retrying");
                warned = true;
            }
            Err(_) => {}
        }
        let until = Instant::now() + RESOLVE_RETRY;
        while Instant::now() < until && !stop.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Drop for IpfixSink {
    fn drop(&mut self) {
        self.resolver_stop.store(true, Relaxed);
        // A run that ended on an error still sends what it had.
        self.encoder.flush(now_ns(), &mut self.out);
        self.send();
    }
}

impl RecordSink for IpfixSink {
    fn flow(&mut self, record: FlowRecord) {
        let Some(piece) = self.deltas.take(&record) else {
            self.stats
                .interim_skipped
                .store(self.deltas.interim_skipped, Relaxed);
            return;
        };
        let b = match biflow(&record, &piece) {
            Ok(b) => b,
            Err(e) => {
                self.stats.record_errors.fetch_add(1, Relaxed);
                if !self.warned_record {
                    tracing::warn!(error = %e, "flow not exported as IPFIX (counted, warned once)");
                    self.warned_record = true;
                }
                return;
            }
        };
        // biflow() already refused mixed families, the encoder's only error.
        if self.encoder.add(&b, now_ns(), &mut self.out).is_ok() {
            self.stats.records.fetch_add(1, Relaxed);
        }
        if !self.out.is_empty() {
            // A message filled up: what is pending now started a new one.
            self.pending_since = None;
            self.send();
        }
        if self.encoder.pending() > 0 && self.pending_since.is_none() {
            self.pending_since = Some(Instant::now());
        }
    }

    fn counters(&mut self, _sample: CounterSample) {}

    fn blocked(&mut self, _attempt: BlockedAttempt) {}
}

impl TimedSink for IpfixSink {
    fn on_tick(&mut self, now: Instant) {
        let ns = now_ns();
        if self
            .pending_since
            .is_some_and(|t| now.duration_since(t) >= FLUSH_AFTER)
        {
            self.encoder.flush(ns, &mut self.out);
            self.pending_since = None;
        }
        self.encoder.refresh_if_due(ns, &mut self.out);
        if !self.out.is_empty() || (self.socket.is_none() && self.resolved.is_some()) {
            self.send();
        }
    }
}

#[cfg(test)]
mod tests;
