//! Name-triggered refusals in the kernel, one connection at a time.
//!
//! The kernel cannot read TLS SNI, QUIC SNI or HTTP Host; the capture can.
//! When the processor's guard sees a blocked name it asks for that
//! connection — client address and port, server address, protocol, server
//! port — to be refused; this thread adds the 5-tuple to an nftables set
//! whose elements time out. Its next packet either way is refused in the
//! kernel: TCP gets a reset towards whichever end sent it, anything else
//! (QUIC) is dropped. A TCP connection is also reset at both ends at once
//! ([`super::reset`], numbered from the naming segment): a server close by
//! may already have acknowledged the ClientHello, and then the client has
//! nothing more to send and would never meet the kernel's reset. Other
//! connections to the same address — other names on a shared host or a
//! CDN — are not touched.
//!
//! The race is against the server's answer: the block must be in force
//! before the client's request after the handshake (a server 10 ms away
//! answers the ClientHello 10 ms later). So the capture hands a frame that
//! may name a site over at once ([`may_carry_name`]), and elements go in
//! over netlink ([`super::netlink`]) rather than through an `nft` process;
//! `nft` stays as the fallback when netlink fails (logged).
//!
//! The set lives in its own table, `inet simpul_names`, apart from the
//! policy table that every policy change replaces whole: entries survive a
//! schedule switch, and are cleared on purpose when the blocking rules
//! change (the guard sends [`KernelRequest::Clear`]).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::apply::{nft_apply, CommandError};
use super::netlink::{Element, Key, NftSocket};
use super::reset::Resetter;
use simpul_core::guard::{KernelRequest, NameBlock, TcpPosition};

pub const NAMES_TABLE: &str = "simpul_names";

/// Requests queued between capture and this thread; more are dropped and
/// counted by the guard (capture never waits on the kernel).
const QUEUE: usize = 4096;

/// The sets' element types: client address . client port . server address
/// . protocol . server port.
const SETS: [(&str, &str, &str); 2] = [
    ("names4", "ipv4_addr", "ip"),
    ("names6", "ipv6_addr", "ip6"),
];

/// The table, its sets and rules, created fresh (any old entries go).
pub fn table_script(hold_secs: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "table inet {NAMES_TABLE}\ndelete table inet {NAMES_TABLE}\ntable inet {NAMES_TABLE} {{"
    );
    for (set, addr, _) in SETS {
        let _ = writeln!(
            s,
            "\tset {set} {{\n\t\ttype {addr} . inet_service . {addr} . inet_proto . inet_service\n\t\tflags timeout\n\t\ttimeout {hold_secs}s\n\t}}"
        );
    }
    // Before the policy table's forward chain (priority filter): a refused
    // connection is refused whatever the policy accepts. A reset answers
    // the packet's sender, so matching both directions resets both ends.
    s.push_str(
        "\tchain forward {\n\t\ttype filter hook forward priority filter - 10; policy accept;\n",
    );
    for (set, _, fam) in SETS {
        let up = format!("{fam} saddr . th sport . {fam} daddr . meta l4proto . th dport @{set}");
        let down = format!("{fam} daddr . th dport . {fam} saddr . meta l4proto . th sport @{set}");
        for (m, side) in [(&up, "client"), (&down, "server")] {
            let _ = writeln!(
                s,
                "\t\tmeta l4proto tcp {m} counter reject with tcp reset comment \"blocked name: reset the {side}\""
            );
            let _ = writeln!(
                s,
                "\t\t{m} counter drop comment \"blocked name: {side}'s datagrams\""
            );
        }
    }
    s.push_str("\t}\n}\n");
    s
}

/// The set a connection's element goes to and its key; None when the two
/// addresses are of different families (no such connection).
pub fn element_key(b: &NameBlock) -> Option<(&'static str, Vec<u8>)> {
    let (set, client, server): (_, Vec<u8>, Vec<u8>) = match (b.client, b.server) {
        (IpAddr::V4(c), IpAddr::V4(s)) => ("names4", c.octets().into(), s.octets().into()),
        (IpAddr::V6(c), IpAddr::V6(s)) => ("names6", c.octets().into(), s.octets().into()),
        _ => return None,
    };
    let key = Key::default()
        .field(&client)
        .field(&b.client_port.to_be_bytes())
        .field(&server)
        .field(&[b.proto])
        .field(&b.port.to_be_bytes())
        .build();
    Some((set, key))
}

/// The fallback: one `nft -f` batch adding `blocks`.
pub fn elements_script(blocks: &[NameBlock]) -> String {
    let mut s = String::new();
    for b in blocks {
        let set = match (b.client, b.server) {
            (IpAddr::V4(_), IpAddr::V4(_)) => "names4",
            (IpAddr::V6(_), IpAddr::V6(_)) => "names6",
            _ => continue,
        };
        let _ = writeln!(
            s,
            "add element inet {NAMES_TABLE} {set} {{ {} . {} . {} . {} . {} }}",
            b.client, b.client_port, b.server, b.proto, b.port
        );
    }
    s
}

/// Whether a captured Ethernet frame may name a site: a TLS handshake
/// record or an HTTP request line on TCP, a QUIC long-header packet to UDP
/// 443. The capture hands such a frame over at once instead of waiting for
/// its batch to fill. A few byte comparisons: it runs on every frame.
pub fn may_carry_name(frame: &[u8]) -> bool {
    let be16 = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
    };
    let mut off = 12;
    let mut ethertype = be16(off);
    while matches!(ethertype, Some(0x8100 | 0x88a8)) {
        off += 4;
        ethertype = be16(off);
    }
    off += 2;
    let (proto, l4) = match ethertype {
        Some(0x0800) => {
            let (Some(&vihl), Some(&proto), Some(frag)) =
                (frame.get(off), frame.get(off + 9), be16(off + 6))
            else {
                return false;
            };
            if frag & 0x1fff != 0 {
                return false;
            }
            (proto, off + usize::from(vihl & 0x0f) * 4)
        }
        Some(0x86dd) => match frame.get(off + 6) {
            Some(&next) => (next, off + 40),
            None => return false,
        },
        _ => return false,
    };
    match proto {
        6 => {
            let Some(&doff) = frame.get(l4 + 12) else {
                return false;
            };
            let payload = frame.get(l4 + usize::from(doff >> 4) * 4..).unwrap_or(&[]);
            const METHODS: [&[u8; 4]; 9] = [
                b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC",
            ];
            payload.starts_with(&[0x16, 0x03])
                || payload
                    .get(..4)
                    .is_some_and(|p| METHODS.iter().any(|m| p == m.as_slice()))
        }
        17 => be16(l4 + 2) == Some(443) && frame.get(l4 + 8).is_some_and(|b| b & 0xc0 == 0xc0),
        _ => false,
    }
}

/// Counters of the kernel side.
#[derive(Debug, Default)]
pub struct NameBlockerStats {
    pub entries_added: AtomicU64,
    pub batches: AtomicU64,
    pub failures: AtomicU64,
    pub clears: AtomicU64,
    /// Batches that went through `nft` because netlink failed.
    pub nft_fallbacks: AtomicU64,
    /// Resets sent to either end of a TCP connection refused by name.
    pub resets_sent: AtomicU64,
    /// Resets that could not be sent (no raw socket, the send failed).
    pub reset_errors: AtomicU64,
}

pub struct NameBlocker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    pub stats: Arc<NameBlockerStats>,
    hold_secs: u64,
}

impl NameBlocker {
    /// Create the table (replacing an old one) and start the thread;
    /// `resets`: reset both ends of a refused TCP connection at once.
    /// Returns the sender for the processor's guard.
    pub fn start(
        hold_secs: u64,
        resets: bool,
    ) -> Result<(NameBlocker, Sender<KernelRequest>), CommandError> {
        let hold_secs = hold_secs.max(1);
        nft_apply(&table_script(hold_secs))?;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(NameBlockerStats::default());
        let handle = {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("simpul-names".into())
                .spawn(move || {
                    let resetter = resets.then(Resetter::open);
                    run(&rx, &stop, &stats, hold_secs, resetter.as_ref())
                })
                .map_err(|cause| CommandError::Spawn {
                    program: "thread",
                    cause,
                })?
        };
        tracing::info!(
            table = NAMES_TABLE,
            hold_secs,
            resets,
            "name-triggered refusals ready"
        );
        Ok((
            NameBlocker {
                stop,
                handle: Some(handle),
                stats,
                hold_secs,
            },
            tx,
        ))
    }

    pub fn hold_secs(&self) -> u64 {
        self.hold_secs
    }

    /// Stop the thread. The entries stay in the kernel until they time out.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let s = &self.stats;
        tracing::info!(
            entries_added = s.entries_added.load(Ordering::Relaxed),
            batches = s.batches.load(Ordering::Relaxed),
            failures = s.failures.load(Ordering::Relaxed),
            nft_fallbacks = s.nft_fallbacks.load(Ordering::Relaxed),
            resets_sent = s.resets_sent.load(Ordering::Relaxed),
            reset_errors = s.reset_errors.load(Ordering::Relaxed),
            "name refusals stopped"
        );
    }
}

impl Drop for NameBlocker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// A connection to refuse: the tuple, the naming packet's time, whether
/// the name lane asked, where its TCP segment stood.
type Refusal = (NameBlock, u64, bool, Option<TcpPosition>);

fn run(
    rx: &Receiver<KernelRequest>,
    stop: &AtomicBool,
    stats: &NameBlockerStats,
    hold: u64,
    resetter: Option<&Resetter>,
) {
    let mut kernel = Kernel::new(Duration::from_secs(hold));
    while !stop.load(Ordering::Acquire) {
        let first = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Everything queued meanwhile goes in the same kernel transaction.
        let mut blocks: Vec<Refusal> = Vec::new();
        let mut clear = false;
        for r in std::iter::once(first).chain(rx.try_iter().take(QUEUE)) {
            match r {
                KernelRequest::Block {
                    tuple,
                    seen_ns,
                    lane,
                    tcp,
                } => {
                    if !blocks.iter().any(|(b, ..)| *b == tuple) {
                        blocks.push((tuple, seen_ns, lane, tcp));
                    }
                }
                KernelRequest::Clear => {
                    clear = true;
                    blocks.clear();
                }
            }
        }
        if clear {
            stats.clears.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = nft_apply(&table_script(hold)) {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "cannot clear the name refusals");
            }
        }
        if blocks.is_empty() {
            continue;
        }
        let started = Instant::now();
        // The entries first, then the resets: whatever a reset provokes
        // (a challenge ACK from an end that moved on) meets the refusal.
        let added = kernel.add(&blocks, stats);
        let added_us = started.elapsed().as_micros() as u64;
        let in_kernel = now_ns();
        if let Some(r) = resetter {
            for (b, _, _, tcp) in &blocks {
                if let Some(at) = tcp {
                    let o = r.reset(b, *at);
                    stats.resets_sent.fetch_add(o.sent, Ordering::Relaxed);
                    stats.reset_errors.fetch_add(o.failed, Ordering::Relaxed);
                }
            }
        }
        let reset_done = now_ns();
        match added {
            Ok(via) => {
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats
                    .entries_added
                    .fetch_add(blocks.len() as u64, Ordering::Relaxed);
                for (b, seen, lane, tcp) in &blocks {
                    tracing::debug!(
                        client = %b.client,
                        client_port = b.client_port,
                        server = %b.server,
                        proto = b.proto,
                        port = b.port,
                        via,
                        from = if *lane { "name lane" } else { "packet path" },
                        capture_to_kernel_us = in_kernel.saturating_sub(*seen) / 1000,
                        apply_us = added_us,
                        capture_to_reset_us = (tcp.is_some() && resetter.is_some())
                            .then(|| reset_done.saturating_sub(*seen) / 1000),
                        "connection refused for a blocked name"
                    );
                }
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, entries = blocks.len(), "cannot add name refusals to nftables");
            }
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Netlink when it works, `nft` when it does not.
struct Kernel {
    socket: Option<NftSocket>,
    hold: Duration,
}

impl Kernel {
    fn new(hold: Duration) -> Kernel {
        let socket = NftSocket::open()
            .inspect_err(|e| {
                tracing::warn!(error = %e, "name refusals go through the nft program instead of netlink (slower: tens of milliseconds each)");
            })
            .ok();
        Kernel { socket, hold }
    }

    /// Add the connections' elements; says how.
    fn add(
        &mut self,
        blocks: &[Refusal],
        stats: &NameBlockerStats,
    ) -> Result<&'static str, CommandError> {
        if let Some(sock) = self.socket.as_mut() {
            match add_netlink(sock, blocks, self.hold) {
                Ok(()) => return Ok("netlink"),
                Err(e) => {
                    stats.nft_fallbacks.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "adding name refusals over netlink failed; using nft for this batch");
                    // A fresh socket next time: this one may hold stale answers.
                    self.socket = NftSocket::open().ok();
                }
            }
        }
        let tuples: Vec<NameBlock> = blocks.iter().map(|(b, ..)| *b).collect();
        nft_apply(&elements_script(&tuples)).map(|()| "nft")
    }
}

fn add_netlink(
    sock: &mut NftSocket,
    blocks: &[Refusal],
    hold: Duration,
) -> Result<(), super::netlink::NetlinkError> {
    for (set, _, _) in SETS {
        let elements: Vec<Element> = blocks
            .iter()
            .filter_map(|(b, ..)| element_key(b))
            .filter(|(s, _)| *s == set)
            .map(|(_, key)| Element { key, timeout: hold })
            .collect();
        sock.add_elements(NAMES_TABLE, set, &elements)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(c: &str, cport: u16, s: &str, proto: u8, port: u16) -> NameBlock {
        NameBlock {
            client: c.parse().expect("ip"),
            client_port: cport,
            server: s.parse().expect("ip"),
            proto,
            port,
        }
    }

    #[test]
    fn sets_hold_connections_and_both_directions_are_refused() {
        let t = table_script(120);
        assert!(t.contains("type ipv4_addr . inet_service . ipv4_addr . inet_proto . inet_service"));
        assert!(t.contains("timeout 120s"));
        assert!(t.contains(
            "meta l4proto tcp ip saddr . th sport . ip daddr . meta l4proto . th dport @names4 counter reject with tcp reset"
        ));
        assert!(t.contains(
            "meta l4proto tcp ip6 daddr . th dport . ip6 saddr . meta l4proto . th sport @names6 counter reject with tcp reset"
        ));
        assert!(t.contains(
            "ip daddr . th dport . ip saddr . meta l4proto . th sport @names4 counter drop"
        ));
        let e = elements_script(&[
            conn("10.1.1.5", 40001, "198.51.100.7", 6, 443),
            conn("fd00::5", 40002, "2001:db8::7", 17, 443),
            conn("10.1.1.5", 40003, "2001:db8::7", 6, 443),
        ]);
        assert!(e.contains(
            "add element inet simpul_names names4 { 10.1.1.5 . 40001 . 198.51.100.7 . 6 . 443 }"
        ));
        assert!(e.contains("names6 { fd00::5 . 40002 . 2001:db8::7 . 17 . 443 }"));
        assert_eq!(e.lines().count(), 2, "{e}");
    }

    #[test]
    fn keys_are_the_concatenation_in_registers() {
        let (set, key) =
            element_key(&conn("10.1.1.5", 0x9c41, "198.51.100.7", 6, 443)).expect("v4");
        assert_eq!(set, "names4");
        assert_eq!(
            key,
            [10, 1, 1, 5, 0x9c, 0x41, 0, 0, 198, 51, 100, 7, 6, 0, 0, 0, 0x01, 0xbb, 0, 0]
        );
        let (set, key) = element_key(&conn("fd00::5", 1, "2001:db8::7", 17, 443)).expect("v6");
        assert_eq!((set, key.len()), ("names6", 44));
        assert!(element_key(&conn("10.1.1.5", 1, "2001:db8::7", 6, 443)).is_none());
    }

    /// Ethernet + IPv4 + TCP/UDP frame with `payload`.
    fn frame(proto: u8, dport: u16, payload: &[u8], vlan: bool) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0, 7]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let l4 = if proto == 6 { 20 } else { 8 };
        let total = (20 + l4 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0, 10, 1, 1, 5, 198, 51, 100, 7]);
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        if proto == 6 {
            f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        } else {
            f.extend_from_slice(&[0, 0, 0, 0]);
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_that_may_name_a_site_are_recognised() {
        assert!(may_carry_name(&frame(
            6,
            443,
            &[0x16, 0x03, 0x01, 0, 5, 1],
            false
        )));
        assert!(may_carry_name(&frame(6, 8443, &[0x16, 0x03, 0x01], true)));
        assert!(may_carry_name(&frame(6, 80, b"GET / HTTP/1.1\r\n", false)));
        assert!(may_carry_name(&frame(17, 443, &[0xc3, 0, 0, 0, 1], false)));
        assert!(
            !may_carry_name(&frame(6, 443, &[0x17, 0x03, 0x03], false)),
            "application data"
        );
        assert!(!may_carry_name(&frame(6, 443, &[], false)), "a bare ACK");
        assert!(
            !may_carry_name(&frame(17, 443, &[0x43, 1], false)),
            "QUIC short header"
        );
        assert!(!may_carry_name(&frame(17, 53, &[0xc3, 0], false)));
        let f = frame(6, 80, b"GET / HTTP/1.1\r\n", false);
        assert!(!may_carry_name(&f[..30]), "truncated");
        assert!(!may_carry_name(&[]));
    }
}
