//! The UDP receiver: datagrams → decoder → records → the flow writer, in
//! synthetic batches per exporter (node) and agency; the export stream is
//! the exporter's heartbeat.
//!
//! Batches: the writer files every record of a batch under one agency and
//! dedups per (node, boot, seq). An exporter attributed per flow by subnets
//! speaks for several agencies, so each (exporter, agency) pair is a stream
//! of its own: boot `run_ms << 12 | index` (this collector run, the pair's
//! index), seq 1, 2, 3… Nothing is re-sent over UDP, so no batch repeats.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use simpul_core::netflow::{Decoder, Limits, NetflowError};
use simpul_proto::wire::Batch;
use simpul_proto::FlowRecord;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::convert::{to_record, Attribution};
use super::NetflowConfig;
use crate::ingest::WriteJob;
use crate::state::AppState;

/// Records waiting at most this long before they are handed to the writer.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// ...or as soon as one stream holds this many.
const FLUSH_RECORDS: usize = 4096;
/// Agencies one exporter's flows may be filed under (streams per node).
const MAX_STREAMS: usize = 4096;

pub fn bind(addr: SocketAddr, rcvbuf: usize) -> anyhow::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen for NetFlow/IPFIX on {addr}: {e}"))?;
    set_rcvbuf(&socket, rcvbuf);
    socket.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(socket)?)
}

fn set_rcvbuf(socket: &std::net::UdpSocket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket descriptor, a c_int option of its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::addr_of!(v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::warn!(bytes, "cannot set the NetFlow socket's receive buffer");
    }
}

/// One (exporter, agency) stream.
struct Stream {
    boot: u64,
    seq: u64,
    flows: Vec<FlowRecord>,
}

/// What the receiver knows of one exporter.
struct Exporter {
    node: String,
    /// The agency every flow is filed under (map or inventory node).
    agency: Option<String>,
    streams: HashMap<String, Stream>,
    next_flow: u64,
    last_beat: Option<Instant>,
    last_seen_saved: Option<Instant>,
    /// Listed in `[[netflow.exporter]]` or in the inventory's nodes: only
    /// then is it a node the outage monitor watches (a source address is
    /// easily forged over UDP; forged ones must not raise outages).
    monitored: bool,
}

/// The hostname an exporter has in the node registry (how a later run
/// tells its flows from agents').
pub const EXPORTER_HOSTNAME: &str = "netflow exporter";

/// The registry's last-seen of an exporter is written at most this often.
const SEEN_EVERY: Duration = Duration::from_secs(30);

/// Keep the exporter in the node registry (address, protocol as its
/// version), so the nodes view lists it like an agent. A node the registry
/// does not know yet is enrolled with a credential nobody is given: the
/// exporter never speaks the agent protocol.
fn save_seen(
    state: &AppState,
    node: String,
    agency: String,
    address: String,
    version: &'static str,
) {
    let control = state.control.clone();
    tokio::task::spawn_blocking(move || {
        let now = std::time::SystemTime::now();
        let seen = |c: &dyn crate::store::ControlStore| {
            c.node_seen(&node, &address, version, EXPORTER_HOSTNAME, None, now)
        };
        if let Err(crate::store::StoreError::UnknownNode(_)) = seen(control.as_ref()) {
            let enrolled = control
                .create_enrollment_token(&agency, &node, Duration::from_secs(60))
                .map_err(|e| e.to_string())
                .and_then(|t| control.enroll(&node, &t).map_err(|e| e.to_string()));
            if let Err(e) = enrolled
                .map(|_| ())
                .and_then(|()| seen(control.as_ref()).map_err(|e| e.to_string()))
            {
                tracing::warn!(node = %node, error = %e, "cannot list the NetFlow exporter among the nodes");
            }
        }
    });
}

/// The receiver's state, apart from the socket (so a bench can drive it).
pub struct Pipeline {
    state: AppState,
    cfg: Arc<NetflowConfig>,
    decoder: Decoder,
    exporters: HashMap<IpAddr, Exporter>,
    attribution: Attribution,
    run_ms: u64,
    next_stream: u64,
    beat_every: Duration,
}

impl Pipeline {
    pub fn new(state: AppState) -> Pipeline {
        let cfg = Arc::new(state.config.netflow.clone());
        let decoder = Decoder::new(Limits {
            max_exporters: cfg.max_exporters,
            max_templates_per_exporter: cfg.max_templates_per_exporter,
            ..Limits::default()
        });
        let attribution = Attribution::new(&state.inventory.current());
        let beat_every = Duration::from_millis(state.config.nodes.heartbeat_interval_ms.max(100));
        Pipeline {
            state,
            cfg,
            decoder,
            exporters: HashMap::new(),
            attribution,
            run_ms: crate::state::now_ms(),
            next_stream: 0,
            beat_every,
        }
    }

    /// The exporter's entry: listed, or unlisted and accepted.
    fn exporter(&mut self, ip: IpAddr) -> Option<&mut Exporter> {
        if !self.exporters.contains_key(&ip) {
            let listed = self.cfg.exporter.iter().find(|e| e.address == ip);
            if listed.is_none() && !self.cfg.accept_unlisted {
                return None;
            }
            if self.exporters.len() >= self.cfg.max_exporters {
                return None;
            }
            let node = listed
                .and_then(|e| e.node_id.clone())
                .unwrap_or_else(|| NetflowConfig::default_node_id(ip));
            let agency = listed
                .and_then(|e| e.agency.clone())
                .or_else(|| self.state.inventory.node(&node).map(|n| n.agency));
            let monitored = listed.is_some() || self.state.inventory.node(&node).is_some();
            tracing::info!(exporter = %ip, node = %node, monitored, agency = agency.as_deref().unwrap_or("(per flow, by subnet)"), "NetFlow/IPFIX exporter heard first");
            self.exporters.insert(
                ip,
                Exporter {
                    node,
                    agency,
                    streams: HashMap::new(),
                    next_flow: 1,
                    last_beat: None,
                    last_seen_saved: None,
                    monitored,
                },
            );
        }
        self.exporters.get_mut(&ip)
    }

    /// One datagram from `from`.
    pub fn datagram(&mut self, from: IpAddr, data: &[u8]) {
        let inv = self.state.inventory.current();
        if inv.version != self.attribution.version {
            self.attribution = Attribution::new(&inv);
        }
        let Some(e) = self.exporter(from) else {
            metrics::counter!("simpul_netflow_ignored_datagrams_total").increment(1);
            return;
        };
        let node = e.node.clone();
        let (e_agency, e_monitored) = (e.agency.clone(), e.monitored);
        metrics::counter!("simpul_netflow_datagrams_total", "node" => node.clone()).increment(1);
        let decoded = match self.decoder.decode(from, data) {
            Ok(d) => d,
            Err(err) => {
                let reason = match err {
                    NetflowError::Truncated { .. } => "truncated",
                    NetflowError::Version(_) => "version",
                    NetflowError::Malformed { .. } => "malformed",
                    NetflowError::TooManyExporters { .. } => "exporters",
                };
                metrics::counter!("simpul_netflow_decode_errors_total", "node" => node.clone(), "reason" => reason).increment(1);
                self.state.netflow.decode_error(&node);
                tracing::debug!(exporter = %from, error = %err, "NetFlow/IPFIX datagram not read");
                return;
            }
        };
        self.state.netflow.heard(
            &node,
            from,
            e_agency.as_deref(),
            e_monitored,
            &decoded,
            &self.decoder.domains_of(from),
            crate::state::now_ms(),
        );
        if decoded.lost > 0 {
            metrics::counter!("simpul_netflow_sequence_lost_total", "node" => node.clone())
                .increment(decoded.lost);
        }
        if decoded.templates_refused > 0 {
            metrics::counter!("simpul_netflow_templates_refused_total", "node" => node.clone())
                .increment(u64::from(decoded.templates_refused));
        }
        if decoded.sets_without_template > 0 {
            metrics::counter!("simpul_netflow_sets_without_template_total", "node" => node.clone())
                .increment(u64::from(decoded.sets_without_template));
        }
        metrics::counter!("simpul_netflow_records_total", "node" => node.clone())
            .increment(decoded.flows.len() as u64);
        if let Some(s) = decoded.flows.first().map(|f| f.sampling) {
            metrics::gauge!("simpul_netflow_sampling_interval", "node" => node.clone())
                .set(f64::from(s));
        }
        let attribution = &self.attribution;
        let Some(e) = self.exporters.get_mut(&from) else {
            return;
        };
        let mut full = false;
        for f in &decoded.flows {
            let (agency, unit, scope) = attribution.attribute(f.src, f.dst, e.agency.as_deref());
            if !e.streams.contains_key(&agency) {
                if e.streams.len() >= MAX_STREAMS {
                    continue;
                }
                let index = self.next_stream % 4096;
                self.next_stream += 1;
                e.streams.insert(
                    agency.clone(),
                    Stream {
                        boot: (self.run_ms << 12) | index,
                        seq: 0,
                        flows: Vec::new(),
                    },
                );
            }
            let Some(s) = e.streams.get_mut(&agency) else {
                continue;
            };
            let id = e.next_flow;
            e.next_flow += 1;
            s.flows.push(to_record(f, id, agency, unit, scope));
            full |= s.flows.len() >= FLUSH_RECORDS;
        }
        let beat = e.monitored && e.last_beat.is_none_or(|t| t.elapsed() >= self.beat_every);
        if beat {
            let agency = e
                .agency
                .clone()
                .unwrap_or_else(|| simpul_proto::UNKNOWN.to_string());
            if e.last_beat.is_none() {
                self.state
                    .nodes
                    .connected(&node, &agency, &from.to_string());
                self.state.outage.opened(&node, &agency);
            }
            e.last_beat = Some(Instant::now());
            self.state.nodes.heard(&node);
            self.state.outage.heartbeat(&node, &agency);
            if e.agency.is_some() && e.last_seen_saved.is_none_or(|t| t.elapsed() >= SEEN_EVERY) {
                e.last_seen_saved = Some(Instant::now());
                let version = decoded.version.map_or("netflow", |v| v.name());
                save_seen(&self.state, node.clone(), agency, from.to_string(), version);
            }
        }
        if full {
            self.flush();
        }
    }

    /// Hand every stream's records to the writer.
    pub fn flush(&mut self) -> Vec<oneshot::Receiver<Result<crate::store::BatchOutcome, String>>> {
        let mut waits = Vec::new();
        // An exporter's clock is as fallible as an agent's: the same bounds.
        let bounds = crate::agent_ws::Bounds::new(
            crate::state::now_ms().saturating_mul(1_000_000),
            self.state.config.storage.flow_retention_days,
            None,
        );
        for e in self.exporters.values_mut() {
            for (agency, s) in &mut e.streams {
                if s.flows.is_empty() {
                    continue;
                }
                s.seq += 1;
                let (tx, rx) = oneshot::channel();
                let mut batch = Batch {
                    boot_epoch: s.boot,
                    seq: s.seq,
                    sealed_ms: crate::state::now_ms(),
                    flows: std::mem::take(&mut s.flows),
                    counters: Vec::new(),
                    blocked: Vec::new(),
                    dropped_records: 0,
                    dropped_batches: 0,
                };
                let out = crate::agent_ws::apply_bounds(&mut batch, &bounds);
                for (reason, n) in [("future", out.future), ("past", out.past)] {
                    if n > 0 {
                        metrics::counter!("simpul_records_refused_total", "reason" => reason)
                            .increment(n);
                        tracing::warn!(node = %e.node, records = n, reason, "exported flows dated where they cannot be (the exporter's clock?) were not stored");
                    }
                }
                let job = WriteJob::Batch {
                    node_id: e.node.clone(),
                    agency: agency.clone(),
                    strict_seq: false,
                    batch: Box::new(batch),
                    done: tx,
                };
                if self.state.writer.send(job).is_err() {
                    return waits;
                }
                waits.push(rx);
            }
        }
        waits
    }
}

/// Receive until the collector stops.
pub async fn run(state: AppState, socket: UdpSocket) {
    let mut stop = state.shutdown.subscribe();
    let mut p = Pipeline::new(state);
    let mut buf = vec![0u8; 65_535];
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => p.datagram(from.ip(), &buf[..n]),
                Err(e) => tracing::warn!(error = %e, "NetFlow socket error"),
            },
            _ = tick.tick() => watch(p.flush()),
            () = stop.wait() => {
                watch(p.flush());
                return;
            }
        }
    }
}

/// Count store errors of handed-over batches (nothing to acknowledge: UDP).
fn watch(waits: Vec<oneshot::Receiver<Result<crate::store::BatchOutcome, String>>>) {
    if waits.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for w in waits {
            if !matches!(w.await, Ok(Ok(_))) {
                metrics::counter!("simpul_netflow_store_errors_total").increment(1);
            }
        }
    });
}
