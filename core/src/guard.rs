//! The policy's eyes in the packet path: every new connection and every
//! name the capture learns is checked against the blocking rules, so each
//! attempt the kernel refuses becomes an event, and a blocked name seen in
//! a TLS/QUIC ClientHello or HTTP request becomes a kernel entry for that
//! one connection (the kernel cannot read names itself; other names served
//! from the same address stay reachable).
//!
//! Pure: the kernel entries leave through a channel to `enforce::names`,
//! events through the caller's closure; time is the packet time.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crossbeam_channel::{Sender, TrySendError};
use hashbrown::HashMap;
use simpul_proto::{proto_name, BlockMethod, BlockedAttempt};

use crate::agency::AgencyMap;
use crate::attempts::{Attempt, AttemptLog, AttemptStats};
use crate::policy::matcher::{BlockMatcher, RuleHit};

const NS: u64 = 1_000_000_000;

/// A connection to refuse in the kernel for a while, because of a blocked
/// name: `client`:`client_port` → `server`:`port` on `proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NameBlock {
    pub client: IpAddr,
    pub client_port: u16,
    pub server: IpAddr,
    pub proto: u8,
    pub port: u16,
}

/// Where a connection's naming TCP segment (client to server) stood: its
/// sequence and acknowledgment numbers and payload length. The kernel side
/// resets both ends from it ([`crate::enforce::reset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPosition {
    pub seq: u32,
    pub ack: u32,
    pub len: u32,
}

impl TcpPosition {
    /// The position of a segment with these header fields, if it
    /// acknowledges anything (without ACK its ACK number means nothing).
    pub fn of(flags: u8, seq: u32, ack: u32, payload_len: usize) -> Option<Self> {
        (flags & crate::decode::TCP_ACK != 0).then_some(TcpPosition {
            seq,
            ack,
            len: payload_len as u32,
        })
    }
}

/// What the kernel side is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelRequest {
    /// `seen_ns`: the packet time of the naming packet (capture → kernel
    /// latency is measured from it); `lane`: asked by the capture's name
    /// lane rather than the packet path; `tcp`: where the naming segment
    /// stood, for the resets (None for UDP).
    Block {
        tuple: NameBlock,
        seen_ns: u64,
        lane: bool,
        tcp: Option<TcpPosition>,
    },
    /// The policy changed: forget every name-triggered entry.
    Clear,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    pub attempts: AttemptStats,
    /// Name-triggered kernel entries requested.
    pub name_blocks: u64,
    /// Requests lost because the kernel side was not keeping up.
    pub name_blocks_dropped: u64,
}

/// Connections already sent to the kernel, shared by the guard and the
/// capture's name lane (a thread of its own that sees naming frames before
/// the packet path does): whoever claims a connection first asks the
/// kernel, the other one does not ask again. Also where the lane finds the
/// policy in force.
#[derive(Debug, Default)]
pub struct NameClaims {
    matcher: RwLock<Option<Arc<BlockMatcher>>>,
    /// Connection → when its claim lapses (packet time, ns).
    claimed: Mutex<HashMap<NameBlock, u64>>,
}

/// Claims kept at most; beyond this the oldest-lapsing do not matter more
/// than memory (a claim only saves a duplicate kernel request).
const MAX_CLAIMS: usize = 100_000;

impl NameClaims {
    /// The blocking rules in force, if any.
    pub fn matcher(&self) -> Option<Arc<BlockMatcher>> {
        self.matcher
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// True when `tuple` was not claimed (or its claim lapsed by `ts`):
    /// the caller asks the kernel. Claimed until `until`.
    pub fn claim(&self, tuple: NameBlock, ts: u64, until: u64) -> bool {
        let mut c = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        if c.get(&tuple).is_some_and(|u| ts < *u) {
            return false;
        }
        if c.len() >= MAX_CLAIMS {
            c.retain(|_, u| ts < *u);
        }
        if c.len() < MAX_CLAIMS {
            c.insert(tuple, until);
        }
        true
    }

    /// Undo a claim whose kernel request could not be sent.
    pub fn release(&self, tuple: &NameBlock) {
        self.claimed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(tuple);
    }

    fn set_matcher(&self, m: Option<Arc<BlockMatcher>>) {
        let mut current = self.matcher.write().unwrap_or_else(PoisonError::into_inner);
        // Every shard's guard passes the same rules on: the first one
        // clears the claims, the others must not clear the lane's new ones.
        let same = match (&*current, &m) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        *current = m;
        drop(current);
        self.claimed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn prune(&self, now: u64) {
        self.claimed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, u| now < *u);
    }
}

pub struct Guard {
    matcher: Option<Arc<BlockMatcher>>,
    claims: Option<Arc<NameClaims>>,
    log: AttemptLog,
    /// Connections refused because of a name: a later connection reusing
    /// one's ports is reported under the same name and rule (the kernel
    /// refuses it before any ClientHello could be seen).
    named: HashMap<NameBlock, (RuleHit, String, u64)>,
    kernel: Option<Sender<KernelRequest>>,
    hold_ns: u64,
    name_blocks: u64,
    name_blocks_dropped: u64,
    /// A shard's guard: attempts wait here for the one guard that folds
    /// them for every shard (a client's attempts at one target arrive
    /// through several connections, and so several shards).
    forward: Option<Vec<Attempt>>,
}

impl Guard {
    /// `fold_secs`: attempt folding window; `hold_secs`: how long a
    /// name-triggered kernel entry lives.
    pub fn new(fold_secs: u64, hold_secs: u64) -> Self {
        Guard {
            matcher: None,
            claims: None,
            log: AttemptLog::new(fold_secs, 100_000),
            named: HashMap::new(),
            kernel: None,
            hold_ns: hold_secs.max(1) * NS,
            name_blocks: 0,
            name_blocks_dropped: 0,
            forward: None,
        }
    }

    /// Keep attempts for [`Guard::take_attempts`] instead of folding them
    /// here (a shard's guard).
    pub fn forward_attempts(&mut self) {
        self.forward.get_or_insert_with(Vec::new);
    }

    /// Move the attempts kept since the last call to `into` (to be given
    /// to the folding guard's [`Guard::record`]).
    pub fn take_attempts(&mut self, into: &mut Vec<Attempt>) {
        if let Some(v) = &mut self.forward {
            into.append(v);
        }
    }

    /// Use `claims` shared with other guards (the shards of one capture)
    /// and the name lane.
    /// The claims keep the rules they have: this guard passes its own on
    /// at its next [`Guard::set_matcher`].
    pub fn set_claims(&mut self, claims: Arc<NameClaims>) {
        self.claims = Some(claims);
    }

    fn note(&mut self, a: Attempt, agencies: &AgencyMap, out: &mut impl FnMut(BlockedAttempt)) {
        match &mut self.forward {
            Some(v) => v.push(a),
            None => self.log.record(a, agencies, out),
        }
    }

    pub fn stats(&self) -> GuardStats {
        GuardStats {
            attempts: self.log.stats(),
            name_blocks: self.name_blocks,
            name_blocks_dropped: self.name_blocks_dropped,
        }
    }

    /// The claims shared with a capture-side name lane (made on first use).
    pub fn share_claims(&mut self) -> Arc<NameClaims> {
        if let Some(c) = &self.claims {
            return c.clone();
        }
        let c = Arc::new(NameClaims::default());
        c.set_matcher(self.matcher.clone());
        self.claims = Some(c.clone());
        c
    }

    /// How long a name-triggered kernel entry lives, in ns.
    pub fn hold_ns(&self) -> u64 {
        self.hold_ns
    }

    pub fn active(&self) -> bool {
        self.matcher.is_some()
    }

    pub fn matcher(&self) -> Option<&Arc<BlockMatcher>> {
        self.matcher.as_ref()
    }

    /// Where name-triggered kernel entries go.
    pub fn set_kernel(&mut self, tx: Sender<KernelRequest>) {
        self.kernel = Some(tx);
    }

    /// A new policy (or none): entries made under the old one are dropped,
    /// in the kernel too, so an unblocked name works at once.
    pub fn set_matcher(&mut self, m: Option<Arc<BlockMatcher>>) {
        let same = match (&self.matcher, &m) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        self.matcher = m;
        if let Some(c) = &self.claims {
            c.set_matcher(self.matcher.clone());
        }
        if !self.named.is_empty() {
            self.named.clear();
            self.send(KernelRequest::Clear);
        }
    }

    /// A connection's first packet: `tuple.client` opens to `tuple.server`.
    /// Returns whether the tuple is refused because of an earlier blocked
    /// name: the caller reports it through [`Guard::on_refused_end`] when
    /// the connection ends without showing a name of its own.
    pub fn on_new_flow(
        &mut self,
        ts: u64,
        tuple: NameBlock,
        agencies: &AgencyMap,
        out: &mut impl FnMut(BlockedAttempt),
    ) -> bool {
        let Some(m) = &self.matcher else { return false };
        let NameBlock {
            client,
            server,
            proto,
            port,
            ..
        } = tuple;
        let ports = proto == 6 || proto == 17;
        if let Some(hit) = m.check_connection(client, server, proto, port) {
            let target = if ports {
                socket_text(server, port)
            } else {
                server.to_string()
            };
            let a = attempt(
                ts,
                client,
                server,
                proto,
                ports.then_some(port),
                hit,
                target,
            );
            self.note(a, agencies, out);
            return false;
        }
        self.named
            .get(&tuple)
            .is_some_and(|(_, _, until)| ts < *until)
    }

    /// A connection on a name-refused tuple ended without showing a name
    /// (the kernel reset it before its ClientHello): one attempt at the
    /// name that caused the entry.
    pub fn on_refused_end(
        &mut self,
        ts: u64,
        tuple: NameBlock,
        agencies: &AgencyMap,
        out: &mut impl FnMut(BlockedAttempt),
    ) {
        if let Some((hit, name, _)) = self.named.get(&tuple) {
            let a = attempt(
                ts,
                tuple.client,
                tuple.server,
                tuple.proto,
                Some(tuple.port),
                hit.clone(),
                name.clone(),
            );
            self.note(a, agencies, out);
        }
    }

    /// The capture learned the name the connection `tuple` asked for, from
    /// a segment at `tcp` (TCP) or a datagram (None).
    #[allow(clippy::too_many_arguments)]
    pub fn on_name(
        &mut self,
        ts: u64,
        tuple: NameBlock,
        tcp: Option<TcpPosition>,
        name: &str,
        method: BlockMethod,
        agencies: &AgencyMap,
        out: &mut impl FnMut(BlockedAttempt),
    ) {
        let Some(m) = &self.matcher else { return };
        let NameBlock {
            client,
            server,
            proto,
            port,
            ..
        } = tuple;
        if m.always_allowed(client) || m.exempt(server) {
            return;
        }
        let Some(hit) = m.check_name(name, method) else {
            return;
        };
        let until = ts + self.hold_ns;
        self.named
            .insert(tuple, (hit.clone(), name.to_string(), until));
        // The name lane may have asked already; the event is still ours.
        if self
            .claims
            .as_ref()
            .is_none_or(|c| c.claim(tuple, ts, until))
        {
            self.name_blocks += 1;
            // Before the event: the kernel entry is what races the connection.
            self.send(KernelRequest::Block {
                tuple,
                seen_ns: ts,
                lane: false,
                tcp,
            });
        }
        let a = attempt(ts, client, server, proto, Some(port), hit, name.to_string());
        self.note(a, agencies, out);
    }

    /// An attempt seen elsewhere (the DNS responder).
    pub fn record(
        &mut self,
        a: Attempt,
        agencies: &AgencyMap,
        out: &mut impl FnMut(BlockedAttempt),
    ) {
        self.log.record(a, agencies, out);
    }

    pub fn tick(&mut self, now: u64, agencies: &AgencyMap, out: &mut impl FnMut(BlockedAttempt)) {
        self.log.tick(now, agencies, out);
        self.named.retain(|_, (_, _, until)| now < *until);
        if let Some(c) = &self.claims {
            c.prune(now);
        }
    }

    pub fn flush(&mut self, agencies: &AgencyMap, out: &mut impl FnMut(BlockedAttempt)) {
        self.log.flush(agencies, out);
    }

    fn send(&mut self, r: KernelRequest) {
        let Some(tx) = &self.kernel else { return };
        match tx.try_send(r) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                // Capture never waits on the kernel; the attempt is still
                // reported, and the next ClientHello asks again.
                self.name_blocks_dropped += 1;
            }
            Err(TrySendError::Disconnected(_)) => {
                self.kernel = None;
            }
        }
    }
}

fn attempt(
    ts: u64,
    client: IpAddr,
    server: IpAddr,
    proto: u8,
    port: Option<u16>,
    hit: RuleHit,
    target: String,
) -> Attempt {
    Attempt {
        ts,
        client,
        hit,
        target,
        server: Some(server),
        port,
        proto: proto_name(proto),
    }
}

fn socket_text(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::matcher::Exemptions;
    use simpul_proto::policy::Policy;

    fn guard(blocking: &str) -> (Guard, crossbeam_channel::Receiver<KernelRequest>, AgencyMap) {
        let text = format!(
            "version = 1\nagency = \"a\"\n[allocation]\ndownload = {{ rate_bps = 1000000, ceil_bps = 1000000 }}\nupload = {{ rate_bps = 1000000, ceil_bps = 1000000 }}\n[blocking]\n{blocking}"
        );
        let policy = Policy::parse(&text).expect("policy");
        let mut g = Guard::new(10, 60);
        g.set_matcher(Some(Arc::new(BlockMatcher::new(
            &policy,
            &Exemptions::default(),
        ))));
        let (tx, rx) = crossbeam_channel::bounded(4);
        g.set_kernel(tx);
        (g, rx, AgencyMap::empty())
    }

    /// A ClientHello of 517 bytes at seq 1, acknowledging the server's 1.
    const AT: Option<TcpPosition> = Some(TcpPosition {
        seq: 1,
        ack: 1,
        len: 517,
    });

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn conn(client: &str, client_port: u16, server: &str, proto: u8, port: u16) -> NameBlock {
        NameBlock {
            client: ip(client),
            client_port,
            server: ip(server),
            proto,
            port,
        }
    }

    #[test]
    fn blocked_name_makes_a_kernel_entry_for_that_connection_only() {
        let (mut g, rx, map) = guard("domains = [\"slot88.example\"]\n");
        let mut out = Vec::new();
        let block = conn("10.1.1.5", 40001, "198.51.100.7", 6, 443);
        assert!(!g.on_new_flow(NS, block, &map, &mut |r| out.push(r)));
        assert!(out.is_empty(), "no rule for the address itself");
        g.on_name(
            NS,
            block,
            AT,
            "www.slot88.example",
            BlockMethod::Sni,
            &map,
            &mut |r| out.push(r),
        );
        assert_eq!(
            rx.try_recv(),
            Ok(KernelRequest::Block {
                tuple: block,
                seen_ns: NS,
                lane: false,
                tcp: AT,
            })
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].method, BlockMethod::Sni);
        assert_eq!(out[0].target, "www.slot88.example");
        assert_eq!(out[0].rule, "slot88.example");
        // Another connection from the same client to the same address (an
        // allowed name on a shared host) is not refused.
        let other = conn("10.1.1.5", 40002, "198.51.100.7", 6, 443);
        assert!(!g.on_new_flow(NS, other, &map, &mut |r| out.push(r)));
        g.on_name(
            NS,
            other,
            AT,
            "portal.go.id",
            BlockMethod::Sni,
            &map,
            &mut |r| out.push(r),
        );
        assert!(rx.try_recv().is_err(), "allowed names make no entry");
        // A connection reusing the refused ports never shows a ClientHello
        // (the kernel resets it), yet it is counted under the name that
        // caused the entry, when it ends.
        for i in 2..5 {
            assert!(g.on_new_flow(i * NS, block, &map, &mut |r| out.push(r)));
            g.on_refused_end(i * NS, block, &map, &mut |r| out.push(r));
        }
        g.tick(20 * NS, &map, &mut |r| out.push(r));
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].attempts, 3);
        assert_eq!(out[1].target, "www.slot88.example");
        // After the hold time the tuple is free again.
        g.tick(62 * NS, &map, &mut |r| out.push(r));
        assert!(!g.on_new_flow(63 * NS, block, &map, &mut |r| out.push(r)));
        assert_eq!(out.len(), 2);
    }

    /// Two shards' guards see one client refused at one address through
    /// two connections: they forward the attempts, and the one folding
    /// guard reports the first at once and the second folded, as a single
    /// guard would. Claims shared with the lane survive the second shard
    /// adopting the same rules.
    #[test]
    fn shards_forward_attempts_to_one_folding_guard() {
        let (mut folding, _rx, map) = guard("cidrs = [\"203.0.113.0/24\"]\n");
        let matcher = folding.matcher().cloned();
        let claims = folding.share_claims();
        let mut shards: Vec<Guard> = (0..2)
            .map(|_| {
                let mut g = Guard::new(10, 60);
                g.forward_attempts();
                g.set_claims(claims.clone());
                g
            })
            .collect();
        shards[0].set_matcher(matcher.clone());
        let lane = conn("10.1.1.5", 40001, "198.51.100.7", 6, 443);
        assert!(claims.claim(lane, NS, 60 * NS));
        shards[1].set_matcher(matcher);
        assert!(
            !claims.claim(lane, NS, 60 * NS),
            "the lane's claim was kept"
        );
        let mut out = Vec::new();
        for (i, g) in shards.iter_mut().enumerate() {
            let c = conn("10.0.0.1", 40000 + i as u16, "203.0.113.9", 6, 80);
            g.on_new_flow(NS + i as u64, c, &map, &mut |r| out.push(r));
        }
        assert!(out.is_empty(), "a shard reports nothing itself");
        let mut kept = Vec::new();
        for g in &mut shards {
            g.take_attempts(&mut kept);
        }
        assert_eq!(kept.len(), 2);
        for a in kept {
            folding.record(a, &map, &mut |r| out.push(r));
        }
        folding.tick(20 * NS, &map, &mut |r| out.push(r));
        let counts: Vec<u32> = out.iter().map(|r| r.attempts).collect();
        assert_eq!(counts, [1, 1], "the first at once, the repeat folded");
        assert_eq!(folding.stats().attempts.attempts, 2);
    }

    #[test]
    fn a_new_policy_clears_name_entries_and_a_full_channel_is_counted() {
        let (mut g, rx, map) = guard("domains = [\"x.example\"]\n");
        let mut out = Vec::new();
        for port in 1..=6 {
            g.on_name(
                NS,
                conn("10.0.0.1", 50000 + port, "192.0.2.1", 6, 443),
                AT,
                "x.example",
                BlockMethod::Sni,
                &map,
                &mut |r| out.push(r),
            );
        }
        assert_eq!(g.stats().name_blocks, 6);
        assert_eq!(g.stats().name_blocks_dropped, 2, "channel of 4");
        while rx.try_recv().is_ok() {}
        g.set_matcher(None);
        assert_eq!(rx.try_recv(), Ok(KernelRequest::Clear));
        assert!(!g.active());
    }

    #[test]
    fn address_rules_name_the_socket() {
        let (mut g, _rx, map) = guard("cidrs = [\"203.0.113.0/24\"]\n");
        let mut out = Vec::new();
        for c in [
            conn("10.0.0.1", 40000, "203.0.113.9", 6, 80),
            conn("10.0.0.1", 40000, "2001:db8::1", 6, 80),
            conn("10.0.0.1", 0, "203.0.113.9", 1, 0),
        ] {
            g.on_new_flow(NS, c, &map, &mut |r| out.push(r));
        }
        let targets: Vec<&str> = out.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["203.0.113.9:80", "203.0.113.9"]);
        assert_eq!(out[1].port, None);
        assert_eq!(out[1].proto, "icmp");
    }

    #[test]
    fn a_connection_the_name_lane_refused_is_not_asked_again() {
        let (mut g, rx, map) = guard("domains = [\"slot88.example\"]\n");
        let claims = g.share_claims();
        assert!(
            claims.matcher().is_some(),
            "the lane sees the rules in force"
        );
        let lane = conn("10.1.1.5", 40001, "198.51.100.7", 6, 443);
        // The lane got there first.
        assert!(claims.claim(lane, NS, NS + 60 * NS));
        let mut out = Vec::new();
        g.on_name(
            NS + 5,
            lane,
            AT,
            "slot88.example",
            BlockMethod::Sni,
            &map,
            &mut |r| out.push(r),
        );
        assert!(rx.try_recv().is_err(), "asked the kernel twice");
        assert_eq!(out.len(), 1, "the attempt is still reported once");
        // A connection the lane missed (say, a ClientHello in two
        // segments): the packet path asks, and the lane would not again.
        let missed = conn("10.1.1.5", 40002, "198.51.100.7", 6, 443);
        g.on_name(
            NS,
            missed,
            AT,
            "slot88.example",
            BlockMethod::Sni,
            &map,
            &mut |r| out.push(r),
        );
        assert!(matches!(
            rx.try_recv(),
            Ok(KernelRequest::Block { lane: false, .. })
        ));
        assert!(!claims.claim(missed, NS + 1, NS + 60 * NS));
        // A new policy forgets every claim, and the lane sees it.
        g.set_matcher(None);
        assert!(claims.matcher().is_none());
        assert!(claims.claim(lane, NS + 2, NS + 60 * NS));
    }
}
