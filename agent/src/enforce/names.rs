//! Name-triggered refusals in the kernel.
//!
//! The kernel cannot read TLS SNI, QUIC SNI or HTTP Host; the capture can.
//! When the processor's guard sees a blocked name it asks for the
//! (client, server, protocol, port) tuple to be refused; this thread adds
//! it to an nftables set whose elements time out, so the connection dies at
//! its next packet (TCP reset to the client, the server's replies dropped)
//! and repeats are refused at their first packet.
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
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::apply::{nft_apply, CommandError};
use simpul_core::guard::{KernelRequest, NameBlock};

pub const NAMES_TABLE: &str = "simpul_names";

/// Requests queued between capture and this thread; more are dropped and
/// counted by the guard (capture never waits on `nft`).
const QUEUE: usize = 4096;

/// The table, its sets and rules, created fresh (any old entries go).
pub fn table_script(hold_secs: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "table inet {NAMES_TABLE}\ndelete table inet {NAMES_TABLE}\ntable inet {NAMES_TABLE} {{"
    );
    for (set, addr) in [("names4", "ipv4_addr"), ("names6", "ipv6_addr")] {
        let _ = writeln!(
            s,
            "\tset {set} {{\n\t\ttype {addr} . {addr} . inet_proto . inet_service\n\t\tflags timeout\n\t\ttimeout {hold_secs}s\n\t}}"
        );
    }
    // Before the policy table's forward chain (priority filter): a refused
    // tuple is refused whatever the policy accepts.
    s.push_str(
        "\tchain forward {\n\t\ttype filter hook forward priority filter - 10; policy accept;\n",
    );
    for (fam, set) in [("ip", "names4"), ("ip6", "names6")] {
        let _ = writeln!(
            s,
            "\t\tmeta l4proto tcp {fam} saddr . {fam} daddr . meta l4proto . th dport @{set} counter reject with tcp reset comment \"blocked name\""
        );
        let _ = writeln!(
            s,
            "\t\t{fam} saddr . {fam} daddr . meta l4proto . th dport @{set} counter reject with icmpx type admin-prohibited comment \"blocked name\""
        );
        let _ = writeln!(
            s,
            "\t\t{fam} daddr . {fam} saddr . meta l4proto . th sport @{set} counter drop comment \"blocked name (server side)\""
        );
    }
    s.push_str("\t}\n}\n");
    s
}

/// One `nft -f` batch adding `blocks`, each with a fresh full timeout: `add`
/// of an existing element keeps its old expiry, so each element is added
/// (so the `delete` cannot fail), deleted and added again.
pub fn elements_script(blocks: &[NameBlock]) -> String {
    let mut s = String::new();
    for b in blocks {
        let (set, client, server) = match (b.client, b.server) {
            (IpAddr::V4(c), IpAddr::V4(v)) => ("names4", c.to_string(), v.to_string()),
            (IpAddr::V6(c), IpAddr::V6(v)) => ("names6", c.to_string(), v.to_string()),
            _ => continue,
        };
        let e = format!("{client} . {server} . {} . {}", b.proto, b.port);
        // add (so the delete cannot fail), delete, add: a fresh full timeout.
        let _ = writeln!(s, "add element inet {NAMES_TABLE} {set} {{ {e} }}");
        let _ = writeln!(s, "delete element inet {NAMES_TABLE} {set} {{ {e} }}");
        let _ = writeln!(s, "add element inet {NAMES_TABLE} {set} {{ {e} }}");
    }
    s
}

/// Counters of the kernel side.
#[derive(Debug, Default)]
pub struct NameBlockerStats {
    pub entries_added: AtomicU64,
    pub batches: AtomicU64,
    pub failures: AtomicU64,
    pub clears: AtomicU64,
}

pub struct NameBlocker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    pub stats: Arc<NameBlockerStats>,
    hold_secs: u64,
}

impl NameBlocker {
    /// Create the table (replacing an old one) and start the thread.
    /// Returns the sender for the processor's guard.
    pub fn start(hold_secs: u64) -> Result<(NameBlocker, Sender<KernelRequest>), CommandError> {
        let hold_secs = hold_secs.max(1);
        nft_apply(&table_script(hold_secs))?;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(NameBlockerStats::default());
        let handle = {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("simpul-names".into())
                .spawn(move || run(&rx, &stop, &stats, hold_secs))
                .map_err(|cause| CommandError::Spawn {
                    program: "thread",
                    cause,
                })?
        };
        tracing::info!(
            table = NAMES_TABLE,
            hold_secs,
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
    }
}

impl Drop for NameBlocker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn run(rx: &Receiver<KernelRequest>, stop: &AtomicBool, stats: &NameBlockerStats, hold: u64) {
    while !stop.load(Ordering::Acquire) {
        let first = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Everything queued meanwhile goes in the same kernel transaction.
        let mut blocks: Vec<NameBlock> = Vec::new();
        let mut clear = false;
        for r in std::iter::once(first).chain(rx.try_iter().take(QUEUE)) {
            match r {
                KernelRequest::Block(b) => {
                    if !blocks.contains(&b) {
                        blocks.push(b);
                    }
                }
                KernelRequest::Clear => {
                    clear = true;
                    blocks.clear();
                }
            }
        }
        let started = Instant::now();
        let mut script = String::new();
        if clear {
            script.push_str(&table_script(hold));
            stats.clears.fetch_add(1, Ordering::Relaxed);
        }
        script.push_str(&elements_script(&blocks));
        match nft_apply(&script) {
            Ok(()) => {
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats
                    .entries_added
                    .fetch_add(blocks.len() as u64, Ordering::Relaxed);
                tracing::debug!(
                    entries = blocks.len(),
                    clear,
                    micros = started.elapsed().as_micros() as u64,
                    "name refusals applied"
                );
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, entries = blocks.len(), "cannot add name refusals to nftables");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_name_both_families_and_skip_mixed_tuples() {
        let t = table_script(300);
        assert!(t.contains("type ipv4_addr . ipv4_addr . inet_proto . inet_service"));
        assert!(t.contains("timeout 300s"));
        assert!(t.contains("reject with tcp reset"));
        let b = |c: &str, s: &str| NameBlock {
            client: c.parse().expect("ip"),
            server: s.parse().expect("ip"),
            proto: 6,
            port: 443,
        };
        let e = elements_script(&[
            b("10.1.1.5", "198.51.100.7"),
            b("fd00::5", "2001:db8::7"),
            b("10.1.1.5", "2001:db8::7"),
        ]);
        assert!(e.contains(
            "add element inet simpul_names names4 { 10.1.1.5 . 198.51.100.7 . 6 . 443 }"
        ));
        assert!(e.contains("names6 { fd00::5 . 2001:db8::7 . 6 . 443 }"));
        assert_eq!(e.lines().count(), 6, "{e}");
    }
}
