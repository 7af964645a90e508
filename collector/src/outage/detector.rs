//! Node liveness as a state machine over heartbeats and time, pure: the
//! caller passes the clock, so every rule is tested over simulated time.
//!
//! Rules, and why:
//! - DOWN after `down_after_ms` of silence since the last heartbeat; a
//!   closed link shortens that to `link_grace_ms` (an agent that restarts
//!   reconnects well within it; one that died does not), because waiting the
//!   full silence for a link we know is gone only delays the alert.
//! - UP again only after `up_after_heartbeats` heartbeats in a row, spaced
//!   at least `up_spacing_ms` apart on arrival: one stray packet through a
//!   dying rural link is not a recovery, and neither is a burst of
//!   heartbeats the link held during the cut and delivers together. Arrival
//!   spacing, not the agent's `sent_ms`: a queued burst carries send times
//!   2 s apart (they were sent during the cut), so only arrival shows whether
//!   the link carries traffic over time now; it also ignores clock skew.
//! - A node with a parent that goes silent is held for `group_wait_ms`: if
//!   the parent goes down meanwhile the child is UNREACHABLE (recorded, not
//!   alerted; the parent's alert names it), else it is DOWN on its own.
//!   Heartbeat phases differ, so children are often seen silent before
//!   their hub.
//! - An UNREACHABLE node whose ancestor is back up gets `reconnect_grace_ms`
//!   to be heard from before it is DOWN on its own. Its agent found the
//!   collector unreachable through the dead hub and backed off, up to the
//!   agent's longest reconnect wait; a shorter grace alerts the NOC to
//!   children that are only waiting out their backoff. One heard from
//!   again is not down for silence within that grace either: what came may
//!   be the heartbeats the cut held on a connection its agent had already
//!   given up, delivered when the link came back.
//! - FLAPPING when a node changes state `flap_threshold` times within
//!   `flap_window_ms`: one event, then quiet until it has been stable for a
//!   whole window.
//! - Nothing goes DOWN before `startup_grace_ms` after the detector started:
//!   after a collector restart every node looks silent until its agent
//!   reconnects.
//!
//! Every node keeps the time its state can next change by the clock alone
//! (its silence deadline, group wait, grace, flap window) in an ordered
//! index; [`Detector::next_deadline_ms`] tells the caller when to call
//! [`Detector::tick`], so DOWN lands at the deadline itself, not on the next
//! coarse tick after it, and a tick visits only the nodes that are due.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectorConfig {
    pub down_after_ms: u64,
    pub link_grace_ms: u64,
    pub up_after_heartbeats: u32,
    /// Heartbeats arriving closer than this after the last one counted
    /// towards UP do not count again (a burst is one heartbeat).
    pub up_spacing_ms: u64,
    /// Heartbeats further apart than this are not "in a row".
    pub consecutive_gap_ms: u64,
    pub group_wait_ms: u64,
    /// How long an unreachable node may stay silent after its ancestor's
    /// recovery before it is down on its own.
    pub reconnect_grace_ms: u64,
    pub flap_window_ms: u64,
    pub flap_threshold: u32,
    pub startup_grace_ms: u64,
}

/// The longest an agent waits between reconnect attempts (its backoff cap
/// plus jitter, shared with the agent through the wire protocol). An agent
/// behind a dead hub fails its attempts at once (no route) and is at this
/// cap after half a minute.
pub const AGENT_RECONNECT_MAX_MS: u64 = simpul_proto::wire::RECONNECT_WAIT_MAX_MS;

impl DetectorConfig {
    /// Defaults derived from the heartbeat interval and the silence.
    pub fn new(heartbeat_interval_ms: u64, down_after_ms: u64) -> Self {
        DetectorConfig {
            down_after_ms,
            link_grace_ms: (heartbeat_interval_ms * 2).min(down_after_ms),
            up_after_heartbeats: 2,
            up_spacing_ms: heartbeat_interval_ms / 2,
            consecutive_gap_ms: heartbeat_interval_ms * 2,
            group_wait_ms: heartbeat_interval_ms * 2,
            // Its next attempt, the handshake and a heartbeat on a link
            // that has just come back.
            reconnect_grace_ms: down_after_ms
                .max(AGENT_RECONNECT_MAX_MS + heartbeat_interval_ms * 2),
            flap_window_ms: 10 * 60 * 1000,
            flap_threshold: 4,
            startup_grace_ms: down_after_ms + heartbeat_interval_ms,
        }
    }
}

/// What the NOC sees for a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Known but not heard from since the detector started.
    Unknown,
    Up,
    Down,
    /// Silent because an ancestor is down.
    Unreachable,
    Flapping,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Up => "up",
            Status::Down => "down",
            Status::Unreachable => "unreachable",
            Status::Flapping => "flapping",
        }
    }
}

/// A change worth recording (and, for some, telling people about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The node is down on its own account; `unreachable` are the
    /// descendants silent because of it (one grouped alert).
    Down {
        node: String,
        last_seen_ms: Option<u64>,
        at_ms: u64,
        unreachable: Vec<String>,
    },
    /// Back up after a `Down` (or after flapping ended while down).
    Up { node: String, at_ms: u64 },
    /// Silent because `root` is down: recorded, not alerted.
    Unreachable {
        node: String,
        root: String,
        last_seen_ms: Option<u64>,
        at_ms: u64,
    },
    /// Heard from again after being unreachable.
    Reachable { node: String, at_ms: u64 },
    FlappingStarted {
        node: String,
        at_ms: u64,
        changes: u32,
    },
    /// Stable for a whole flap window; `up` says in which state.
    FlappingEnded { node: String, at_ms: u64, up: bool },
}

#[derive(Debug)]
struct Node {
    /// Index into `Detector::names` (the deadline index holds ids).
    id: u32,
    status: Status,
    parent: Option<String>,
    last_heartbeat_ms: Option<u64>,
    /// Silent since this time when never heard from: the detector's start
    /// for the registry's nodes, the link's opening for a new one.
    known_since_ms: u64,
    /// Spaced heartbeats in a row while not up.
    streak: u32,
    /// Arrival of the last heartbeat that counted towards `streak`.
    last_counted_ms: Option<u64>,
    /// This node's entry in `Detector::due`.
    due_ms: Option<u64>,
    /// The link closed at this time and has not come back.
    link_closed_ms: Option<u64>,
    /// Silent (deadline passed) since this time, waiting for the parent.
    pending_since_ms: Option<u64>,
    /// Unreachable, its ancestor back: its own outage only if still silent
    /// at this time (its agent may be in reconnect backoff).
    grace_until_ms: Option<u64>,
    /// Heard from again after being unreachable: silence does not count
    /// before this time. What came may be the heartbeats a cut link held on
    /// a connection the agent had already given up; it then reconnects only
    /// after its backoff.
    reconnect_until_ms: Option<u64>,
    /// Underlying up/down, which flapping hides.
    raw_up: bool,
    changes: VecDeque<u64>,
}

impl Node {
    fn new(id: u32, parent: Option<String>, known_since_ms: u64) -> Self {
        Node {
            id,
            status: Status::Unknown,
            parent,
            last_heartbeat_ms: None,
            known_since_ms,
            streak: 0,
            last_counted_ms: None,
            due_ms: None,
            link_closed_ms: None,
            pending_since_ms: None,
            grace_until_ms: None,
            reconnect_until_ms: None,
            raw_up: false,
            changes: VecDeque::new(),
        }
    }
}

#[derive(Debug)]
pub struct Detector {
    cfg: DetectorConfig,
    started_ms: u64,
    nodes: BTreeMap<String, Node>,
    /// Node names by id.
    names: Vec<String>,
    /// Direct children of each parent (for the nodes a change reaches).
    children: HashMap<String, BTreeSet<String>>,
    /// (time, node id): when each node's state can next change by itself.
    due: BTreeSet<(u64, u32)>,
}

impl Detector {
    pub fn new(cfg: DetectorConfig, now_ms: u64) -> Self {
        Detector {
            cfg,
            started_ms: now_ms,
            nodes: BTreeMap::new(),
            names: Vec::new(),
            children: HashMap::new(),
            due: BTreeSet::new(),
        }
    }

    /// When [`Detector::tick`] next has work: the earliest deadline of any
    /// node (None: nothing changes until a heartbeat or a link event).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let grace_end = self.started_ms.saturating_add(self.cfg.startup_grace_ms);
        self.due.first().map(|&(t, _)| t.max(grace_end))
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// Make `node` known (from the registry at start, or on enrollment),
    /// with its parent. A parent that would make a cycle is ignored.
    pub fn add_node(&mut self, node: &str, parent: Option<&str>) {
        let parent = parent
            .filter(|p| *p != node && !self.is_ancestor(node, p))
            .map(str::to_string);
        self.add_node_if_missing(node);
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let old = std::mem::replace(&mut n.parent, parent.clone());
        if old == parent {
            return;
        }
        if let Some(o) = old {
            if let Some(set) = self.children.get_mut(&o) {
                set.remove(node);
            }
        }
        if let Some(p) = parent {
            self.children.entry(p).or_default().insert(node.to_string());
        }
        // Another parent may be down or up: look at the node now.
        self.schedule_at(node, Some(0));
    }

    /// A node whose outage is still open from before a restart: it stays
    /// DOWN (no new event) until it is really back, and then its recovery
    /// is an `Up` event like any other.
    pub fn assume_down(&mut self, node: &str, last_seen_ms: u64) {
        self.add_node_if_missing(node);
        if let Some(n) = self.nodes.get_mut(node) {
            n.status = Status::Down;
            n.raw_up = false;
            n.last_heartbeat_ms = Some(last_seen_ms);
            n.streak = 0;
            n.last_counted_ms = None;
        }
        self.reschedule(node);
        self.touch_descendants(node, 0);
    }

    pub fn status(&self, node: &str) -> Option<Status> {
        self.nodes.get(node).map(|n| n.status)
    }

    pub fn statuses(&self) -> impl Iterator<Item = (&str, Status)> {
        self.nodes.iter().map(|(k, n)| (k.as_str(), n.status))
    }

    pub fn last_heartbeat_ms(&self, node: &str) -> Option<u64> {
        self.nodes.get(node).and_then(|n| n.last_heartbeat_ms)
    }

    /// Whether `candidate` is `node` or one of its ancestors.
    fn is_ancestor(&self, candidate: &str, node: &str) -> bool {
        let mut cur = Some(node.to_string());
        let mut hops = 0;
        while let Some(c) = cur {
            if c == candidate {
                return true;
            }
            hops += 1;
            if hops > self.nodes.len() + 1 {
                return false;
            }
            cur = self.nodes.get(&c).and_then(|n| n.parent.clone());
        }
        false
    }

    /// The topmost down ancestor of `node`, if any.
    fn down_root(&self, node: &str) -> Option<String> {
        let mut root = None;
        let mut cur = self.nodes.get(node).and_then(|n| n.parent.clone());
        let mut hops = 0;
        while let Some(p) = cur {
            hops += 1;
            if hops > self.nodes.len() {
                break;
            }
            let Some(pn) = self.nodes.get(&p) else { break };
            // A flapping ancestor hides its downs from the NOC, not from
            // its children: while it is down they are unreachable behind it.
            if matches!(
                pn.status,
                Status::Down | Status::Unreachable | Status::Flapping
            ) && !pn.raw_up
            {
                root = Some(p.clone());
            }
            cur = pn.parent.clone();
        }
        root
    }

    /// A link from `node` opened at `now_ms`. A node never heard from is
    /// silent from now, not from the detector's start: its first heartbeat
    /// follows on the same link, and must not find it already DOWN.
    pub fn link_opened(&mut self, node: &str, now_ms: u64) {
        self.add_node_if_missing(node);
        if let Some(n) = self.nodes.get_mut(node) {
            n.link_closed_ms = None;
            if n.last_heartbeat_ms.is_none() {
                n.known_since_ms = n.known_since_ms.max(now_ms);
            }
        }
        self.reschedule(node);
    }

    pub fn link_closed(&mut self, node: &str, now_ms: u64) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.link_closed_ms = Some(now_ms);
            n.streak = 0;
            n.last_counted_ms = None;
        }
        self.reschedule(node);
    }

    fn add_node_if_missing(&mut self, node: &str) {
        if !self.nodes.contains_key(node) {
            let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
            self.names.push(node.to_string());
            let since = self.started_ms;
            self.nodes
                .insert(node.to_string(), Node::new(id, None, since));
            self.reschedule(node);
        }
    }

    /// When `n`'s state can next change by the clock alone.
    fn next_due(&self, n: &Node) -> Option<u64> {
        let cfg = &self.cfg;
        let mut due: Option<u64> = None;
        let mut at = |t: u64| due = Some(due.map_or(t, |d| d.min(t)));
        if n.status == Status::Flapping {
            if let Some(&first) = n.changes.front() {
                // Changes older than the window are dropped strictly after it.
                at(first.saturating_add(cfg.flap_window_ms).saturating_add(1));
            }
        }
        if !n.raw_up && n.status == Status::Unreachable {
            // Waiting for its down ancestor (whose recovery touches it), then
            // for its grace.
            if let Some(g) = n.grace_until_ms {
                at(g);
            }
        } else if n.raw_up || n.status == Status::Unknown {
            match n.pending_since_ms {
                Some(p) => at(p.saturating_add(cfg.group_wait_ms)),
                None => at(Self::silence_deadline(cfg, n)),
            }
        }
        let grace_end = self.started_ms.saturating_add(cfg.startup_grace_ms);
        due.map(|d| d.max(grace_end))
    }

    /// When `n` is silent for long enough to be down (or unreachable).
    fn silence_deadline(cfg: &DetectorConfig, n: &Node) -> u64 {
        let silent_since = n.last_heartbeat_ms.unwrap_or(n.known_since_ms);
        let mut deadline = silent_since.saturating_add(cfg.down_after_ms);
        if let Some(closed) = n.link_closed_ms {
            deadline = deadline.min(closed.saturating_add(cfg.link_grace_ms));
        }
        deadline.max(n.reconnect_until_ms.unwrap_or(0))
    }

    /// Put `node` in the deadline index at `at` (None: not due).
    fn schedule_at(&mut self, node: &str, at: Option<u64>) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if n.due_ms == at {
            return;
        }
        if let Some(old) = n.due_ms {
            self.due.remove(&(old, n.id));
        }
        if let Some(t) = at {
            self.due.insert((t, n.id));
        }
        n.due_ms = at;
    }

    fn reschedule(&mut self, node: &str) {
        let due = self.nodes.get(node).and_then(|n| self.next_due(n));
        self.schedule_at(node, due);
    }

    /// Every node below `node`, sorted by name.
    fn descendants(&self, node: &str) -> Vec<String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![node.to_string()];
        while let Some(p) = todo.pop() {
            for c in self.children.get(&p).into_iter().flatten() {
                if c != node && out.insert(c.clone()) {
                    todo.push(c.clone());
                }
            }
        }
        out.into_iter().collect()
    }

    /// `node` changed between up and down: what its descendants wait for
    /// (an ancestor's recovery) may have happened, so look at them at `now`.
    fn touch_descendants(&mut self, node: &str, now: u64) {
        for c in self.descendants(node) {
            self.schedule_at(&c, Some(now));
        }
    }

    fn state_of(&self, node: &str) -> Option<(Status, bool)> {
        self.nodes.get(node).map(|n| (n.status, n.raw_up))
    }

    /// A heartbeat (or any message) from `node` at `now_ms`.
    pub fn heartbeat(&mut self, node: &str, now_ms: u64) -> Vec<Event> {
        self.add_node_if_missing(node);
        let before = self.state_of(node);
        let events = self.heartbeat_inner(node, now_ms);
        self.reschedule(node);
        if self.state_of(node) != before {
            self.touch_descendants(node, now_ms);
        }
        events
    }

    fn heartbeat_inner(&mut self, node: &str, now_ms: u64) -> Vec<Event> {
        let up_after = self.cfg.up_after_heartbeats.max(1);
        let spacing = self.cfg.up_spacing_ms;
        let mut events = Vec::new();
        let Some(n) = self.nodes.get_mut(node) else {
            return events;
        };
        if n.last_heartbeat_ms
            .is_some_and(|prev| now_ms.saturating_sub(prev) > self.cfg.consecutive_gap_ms)
        {
            n.streak = 0;
            n.last_counted_ms = None;
        }
        n.last_heartbeat_ms = Some(now_ms);
        n.link_closed_ms = None;
        n.pending_since_ms = None;
        n.grace_until_ms = None;
        if n.raw_up {
            return events;
        }
        let spaced = n
            .last_counted_ms
            .is_none_or(|c| now_ms.saturating_sub(c) >= spacing);
        if spaced {
            n.streak += 1;
            n.last_counted_ms = Some(now_ms);
        }
        match n.status {
            // First contact since start: up at once (nothing was alerted).
            Status::Unknown => {
                n.raw_up = true;
                n.status = Status::Up;
                n.streak = 0;
                n.last_counted_ms = None;
            }
            Status::Unreachable => {
                n.raw_up = true;
                n.status = Status::Up;
                n.streak = 0;
                n.last_counted_ms = None;
                n.reconnect_until_ms = Some(now_ms.saturating_add(self.cfg.reconnect_grace_ms));
                events.push(Event::Reachable {
                    node: node.to_string(),
                    at_ms: now_ms,
                });
            }
            Status::Down | Status::Flapping if n.streak >= up_after => {
                n.raw_up = true;
                n.streak = 0;
                n.last_counted_ms = None;
                self.changed(node, now_ms, true, &mut events);
            }
            _ => {}
        }
        events
    }

    /// Advance time: silences become DOWN/UNREACHABLE, flapping settles.
    /// Only nodes whose deadline has come are looked at.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Event> {
        let mut events = Vec::new();
        if now_ms < self.started_ms.saturating_add(self.cfg.startup_grace_ms) {
            return events;
        }
        // A pass can make other nodes due now (a hub's change reaches its
        // children); a few passes settle that, anything left is due at once
        // for the next call.
        for _ in 0..4 {
            let mut by_depth: Vec<(usize, String)> = Vec::new();
            while let Some(&(t, id)) = self.due.first() {
                if t > now_ms {
                    break;
                }
                self.due.pop_first();
                let Some(name) = self.names.get(id as usize).cloned() else {
                    continue;
                };
                if let Some(n) = self.nodes.get_mut(&name) {
                    n.due_ms = None;
                }
                by_depth.push((self.depth(&name), name));
            }
            if by_depth.is_empty() {
                break;
            }
            // Parents first: a hub's DOWN is decided before its children's
            // in the same tick.
            by_depth.sort();
            for (_, name) in by_depth {
                let before = self.state_of(&name);
                self.tick_node(&name, now_ms, &mut events);
                self.reschedule(&name);
                if self.state_of(&name) != before {
                    self.touch_descendants(&name, now_ms);
                }
            }
        }
        events
    }

    fn depth(&self, node: &str) -> usize {
        let mut d = 0;
        let mut cur = self.nodes.get(node).and_then(|n| n.parent.clone());
        while let Some(p) = cur {
            d += 1;
            if d > self.nodes.len() {
                break;
            }
            cur = self.nodes.get(&p).and_then(|n| n.parent.clone());
        }
        d
    }

    fn tick_node(&mut self, name: &str, now: u64, events: &mut Vec<Event>) {
        let cfg = self.cfg;
        let root = self.down_root(name);
        let Some(n) = self.nodes.get_mut(name) else {
            return;
        };
        // Flapping settles after a quiet window.
        while n
            .changes
            .front()
            .is_some_and(|&t| now.saturating_sub(t) > cfg.flap_window_ms)
        {
            n.changes.pop_front();
        }
        if n.status == Status::Flapping && n.changes.is_empty() {
            let up = n.raw_up;
            n.status = if up { Status::Up } else { Status::Down };
            events.push(Event::FlappingEnded {
                node: name.to_string(),
                at_ms: now,
                up,
            });
        }
        if !n.raw_up && n.status == Status::Unreachable {
            if root.is_some() {
                // Down again before this node was heard from: its grace
                // starts afresh at the next recovery.
                n.grace_until_ms = None;
                return;
            }
            // The ancestor is back: its agent is likely still waiting out
            // its reconnect backoff, which is longer than a silence period.
            let until = *n
                .grace_until_ms
                .get_or_insert(now.saturating_add(cfg.reconnect_grace_ms));
            if now < until {
                return;
            }
            n.grace_until_ms = None;
            self.changed(name, now, false, events);
            return;
        }
        let silent = now >= Self::silence_deadline(&cfg, n);
        if !silent {
            return;
        }
        if n.raw_up || n.status == Status::Unknown {
            if let Some(root) = root {
                let last = n.last_heartbeat_ms;
                n.raw_up = false;
                n.pending_since_ms = None;
                n.status = Status::Unreachable;
                events.push(Event::Unreachable {
                    node: name.to_string(),
                    root,
                    last_seen_ms: last,
                    at_ms: now,
                });
                return;
            }
            if n.parent.is_some() {
                let since = *n.pending_since_ms.get_or_insert(now);
                if now.saturating_sub(since) < cfg.group_wait_ms {
                    return;
                }
            }
            n.pending_since_ms = None;
            n.raw_up = false;
            if n.status == Status::Unknown && n.changes.is_empty() {
                // Never heard from since start and silent: down, once.
                n.status = Status::Up;
            }
            self.changed(name, now, false, events);
        }
    }

    /// A raw state change of `name`: DOWN/UP events, or flap damping.
    fn changed(&mut self, name: &str, now: u64, up: bool, events: &mut Vec<Event>) {
        let cfg = self.cfg;
        let Some(n) = self.nodes.get_mut(name) else {
            return;
        };
        // Changes older than the window no longer count (a node that is not
        // flapping is not looked at by `tick` just to forget them).
        while n
            .changes
            .front()
            .is_some_and(|&t| now.saturating_sub(t) > cfg.flap_window_ms)
        {
            n.changes.pop_front();
        }
        n.changes.push_back(now);
        let flapping = n.status == Status::Flapping;
        if !flapping && n.changes.len() as u32 >= cfg.flap_threshold.max(2) {
            n.status = Status::Flapping;
            events.push(Event::FlappingStarted {
                node: name.to_string(),
                at_ms: now,
                changes: n.changes.len() as u32,
            });
            return;
        }
        if flapping {
            return;
        }
        let last = n.last_heartbeat_ms;
        if up {
            n.status = Status::Up;
            events.push(Event::Up {
                node: name.to_string(),
                at_ms: now,
            });
            return;
        }
        n.status = Status::Down;
        // Descendants already silent (held in their group wait, or silent
        // but not yet past it) become unreachable under this root.
        let mut unreachable = Vec::new();
        for c in self.descendants(name) {
            let Some(cn) = self.nodes.get_mut(&c) else {
                continue;
            };
            let silent_since = cn.last_heartbeat_ms.unwrap_or(0);
            let quiet = now.saturating_sub(silent_since) >= cfg.group_wait_ms;
            if cn.pending_since_ms.is_some() || (cn.raw_up && quiet) || cn.status == Status::Unknown
            {
                cn.pending_since_ms = None;
                cn.raw_up = false;
                cn.status = Status::Unreachable;
                unreachable.push(c.clone());
                events.push(Event::Unreachable {
                    node: c,
                    root: name.to_string(),
                    last_seen_ms: cn.last_heartbeat_ms,
                    at_ms: now,
                });
            }
        }
        events.insert(
            events.len() - unreachable.len(),
            Event::Down {
                node: name.to_string(),
                last_seen_ms: last,
                at_ms: now,
                unreachable,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HB: u64 = 2_000;

    fn cfg() -> DetectorConfig {
        DetectorConfig::new(HB, 10_000)
    }

    /// Drive `d` from `from` to `to` (exclusive) in 100 ms steps, with
    /// heartbeats every 2 s from the nodes `alive(t)` returns.
    fn run(
        d: &mut Detector,
        from: u64,
        to: u64,
        mut alive: impl FnMut(u64) -> Vec<&'static str>,
    ) -> Vec<(u64, Event)> {
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            if t.is_multiple_of(HB) {
                for n in alive(t) {
                    out.extend(d.heartbeat(n, t).into_iter().map(|e| (t, e)));
                }
            }
            out.extend(d.tick(t).into_iter().map(|e| (t, e)));
            t += 100;
        }
        out
    }

    fn kinds(evs: &[(u64, Event)]) -> Vec<String> {
        evs.iter()
            .map(|(_, e)| match e {
                Event::Down {
                    node, unreachable, ..
                } => {
                    format!("down {node} {}", unreachable.join(","))
                }
                Event::Up { node, .. } => format!("up {node}"),
                Event::Unreachable { node, root, .. } => format!("unreachable {node} <- {root}"),
                Event::Reachable { node, .. } => format!("reachable {node}"),
                Event::FlappingStarted { node, .. } => format!("flapping {node}"),
                Event::FlappingEnded { node, up, .. } => format!("flapping-ended {node} up={up}"),
            })
            .collect()
    }

    #[test]
    fn down_after_the_silence_up_after_two_heartbeats() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("a", None);
        let evs = run(&mut d, 0, 60_000, |t| {
            if (20_000..40_000).contains(&t) {
                vec![]
            } else {
                vec!["a"]
            }
        });
        assert_eq!(kinds(&evs), ["down a ", "up a"]);
        // Last heartbeat at 18 s: down exactly 10 s later.
        assert_eq!(evs[0].0, 28_000);
        // Heartbeats resume at 40 s; the second one (42 s) brings it up.
        assert_eq!(evs[1].0, 42_000);
        assert_eq!(d.status("a"), Some(Status::Up));
    }

    #[test]
    fn a_closed_link_shortens_the_wait_and_a_quick_reconnect_cancels_it() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("a", None);
        run(&mut d, 0, 20_000, |_| vec!["a"]);
        // Agent restart: link closes at 20.1 s, back with a heartbeat at 22 s.
        d.link_closed("a", 20_100);
        let evs = run(&mut d, 20_100, 30_000, |t| {
            if t >= 22_000 {
                vec!["a"]
            } else {
                vec![]
            }
        });
        assert!(evs.is_empty(), "{evs:?}");
        // Process killed: link closes at 30.1 s and stays closed.
        d.link_closed("a", 30_100);
        let evs = run(&mut d, 30_100, 40_000, |_| vec![]);
        assert_eq!(kinds(&evs), ["down a "]);
        assert_eq!(evs[0].0, 34_100, "link grace of 2 heartbeats");
    }

    #[test]
    fn a_single_stray_heartbeat_is_not_a_recovery() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("a", None);
        let evs = run(&mut d, 0, 80_000, |t| {
            if t < 20_000 || t == 40_000 || t >= 60_000 {
                vec!["a"]
            } else {
                vec![]
            }
        });
        assert_eq!(kinds(&evs), ["down a ", "up a"]);
        assert_eq!(evs[1].0, 62_000);
    }

    #[test]
    fn nothing_goes_down_during_the_startup_grace() {
        let mut d = Detector::new(cfg(), 1_000_000);
        for n in ["a", "b", "c"] {
            d.add_node(n, None);
        }
        // a and b reconnect within the window; c never does.
        let evs = run(&mut d, 1_000_000, 1_030_000, |t| {
            if t >= 1_004_000 {
                vec!["a", "b"]
            } else {
                vec![]
            }
        });
        assert_eq!(kinds(&evs), ["down c "]);
        assert_eq!(evs[0].0, 1_012_000, "grace = silence + one heartbeat");
    }

    #[test]
    fn parent_down_groups_its_children_and_recovery_follows() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("hub", None);
        for c in ["c1", "c2"] {
            d.add_node(c, Some("hub"));
        }
        d.add_node("other", None);
        // The hub's link is cut at 20 s: hub, c1 and c2 fall silent. The
        // children's last heartbeats were a little earlier than the hub's.
        let evs = run(&mut d, 0, 40_000, |t| {
            if t < 20_000 {
                if t >= 18_000 {
                    vec!["hub", "other"]
                } else {
                    vec!["hub", "c1", "c2", "other"]
                }
            } else {
                vec!["other"]
            }
        });
        assert_eq!(
            kinds(&evs),
            [
                "down hub c1,c2",
                "unreachable c1 <- hub",
                "unreachable c2 <- hub"
            ]
        );
        // Restore the hub; c1's agent is in reconnect backoff and returns
        // 6 s later (reachable, no outage of its own); c2 stays silent and
        // becomes its own outage a reconnect grace after the hub.
        let evs = run(&mut d, 40_000, 90_000, |t| {
            if t >= 48_000 {
                vec!["hub", "c1", "other"]
            } else {
                vec!["hub", "other"]
            }
        });
        assert_eq!(kinds(&evs), ["up hub", "reachable c1", "down c2 "]);
        assert_eq!(evs[2].0, 42_000 + cfg().reconnect_grace_ms);
        assert_eq!(d.status("c1"), Some(Status::Up));
    }

    #[test]
    fn a_child_waiting_out_its_reconnect_backoff_is_not_alerted_when_its_hub_returns() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("hub", None);
        for c in ["c1", "c2"] {
            d.add_node(c, Some("hub"));
        }
        // A long hub outage: every agent behind it is at its longest
        // reconnect wait. The hub is back at 60 s (up at 62 s); c1's next
        // attempt comes that longest wait later; c2 never comes back.
        let c1_back = 62_000 + AGENT_RECONNECT_MAX_MS;
        let evs = run(&mut d, 0, 120_000, |t| match t {
            ..20_000 => vec!["hub", "c1", "c2"],
            20_000..60_000 => vec![],
            t if t < c1_back => vec!["hub"],
            _ => vec!["hub", "c1"],
        });
        assert_eq!(
            kinds(&evs),
            [
                "down hub c1,c2",
                "unreachable c1 <- hub",
                "unreachable c2 <- hub",
                "up hub",
                "reachable c1",
                "down c2 "
            ]
        );
        assert_eq!(evs[3].0, 62_000);
        assert_eq!(evs[5].0, 62_000 + cfg().reconnect_grace_ms);
        assert!(cfg().reconnect_grace_ms > AGENT_RECONNECT_MAX_MS);
    }

    #[test]
    fn a_child_heard_through_a_connection_its_agent_gave_up_is_not_alerted() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("hub", None);
        d.add_node("c1", Some("hub"));
        let mut hbs: Vec<(u64, &str)> = Vec::new();
        for i in 0..10 {
            hbs.extend([(i * HB, "hub"), (i * HB, "c1")]);
        }
        // Cut after 18 s; back at 60 s. The connection c1's agent gave up
        // delivers the heartbeats it held, then closes; the hub's agent
        // reconnects at once, c1's 35 s later (its backoff).
        hbs.extend([(60_000, "c1"), (60_002, "c1"), (60_004, "c1")]);
        let mut evs = run_precise(&mut d, &hbs, 60_050);
        d.link_closed("c1", 60_100);
        let mut later: Vec<(u64, &str)> = (0..40).map(|i| (61_000 + i * HB, "hub")).collect();
        later.extend((0..20).map(|i| (95_000 + i * HB, "c1")));
        later.sort();
        evs.extend(run_precise(&mut d, &later, 130_000));
        assert_eq!(
            kinds(&evs),
            [
                "down hub c1",
                "unreachable c1 <- hub",
                "reachable c1",
                "up hub"
            ]
        );
        assert_eq!(d.status("c1"), Some(Status::Up));
    }

    #[test]
    fn a_hub_down_again_before_its_child_returns_gives_the_child_a_fresh_grace() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("hub", None);
        d.add_node("c1", Some("hub"));
        // The hub is up 62-70 s, silent again until 100 s, up at 102 s;
        // c1 is back 20 s after that, well within a grace counted from
        // the second recovery but past one counted from the first.
        let evs = run(&mut d, 0, 160_000, |t| match t {
            ..20_000 => vec!["hub", "c1"],
            60_000..70_000 | 100_000..122_000 => vec!["hub"],
            122_000.. => vec!["hub", "c1"],
            _ => vec![],
        });
        let ks = kinds(&evs);
        assert!(!ks.iter().any(|k| k.starts_with("down c1")), "{ks:?}");
        assert_eq!(
            ks.last().map(String::as_str),
            Some("reachable c1"),
            "{ks:?}"
        );
        assert_eq!(d.status("c1"), Some(Status::Up));
    }

    #[test]
    fn a_child_silent_while_its_parent_is_fine_is_down_after_the_group_wait() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("hub", None);
        d.add_node("c1", Some("hub"));
        let evs = run(&mut d, 0, 40_000, |t| {
            if t < 20_000 {
                vec!["hub", "c1"]
            } else {
                vec!["hub"]
            }
        });
        assert_eq!(kinds(&evs), ["down c1 "]);
        assert_eq!(evs[0].0, 28_000 + 4_000);
    }

    #[test]
    fn the_children_of_a_flapping_hub_stay_grouped_under_it() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("hub", None);
        for c in ["c1", "c2"] {
            d.add_node(c, Some("hub"));
        }
        // The hub's link is up 20 s, cut 15 s, repeatedly for 5 minutes;
        // the children are heard only while it is up, a few seconds after
        // it returns (their agents' reconnect).
        let evs = run(&mut d, 0, 20 * 60_000, |t| {
            let phase = t % 35_000;
            if t < 300_000 && phase >= 20_000 {
                vec![]
            } else if t < 300_000 && phase < 6_000 && t >= 35_000 {
                vec!["hub"]
            } else {
                vec!["hub", "c1", "c2"]
            }
        });
        let k = kinds(&evs);
        // Not one outage of a child's own while the hub flaps: each time
        // the hub is down they are unreachable behind it.
        assert!(
            !k.iter()
                .any(|e| e.starts_with("down c") || e.starts_with("flapping c")),
            "{k:?}"
        );
        assert!(k.contains(&"flapping hub".to_string()), "{k:?}");
        assert_eq!(
            k.last().map(String::as_str),
            Some("flapping-ended hub up=true"),
            "{k:?}"
        );
        assert_eq!(d.status("c1"), Some(Status::Up));
    }

    #[test]
    fn flapping_is_one_event_then_quiet_until_stable() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("a", None);
        // Up 20 s, down 15 s, repeatedly, for 5 minutes; then stable up.
        let evs = run(&mut d, 0, 20 * 60_000, |t| {
            if t < 300_000 && (t % 35_000) >= 20_000 {
                vec![]
            } else {
                vec!["a"]
            }
        });
        let k = kinds(&evs);
        assert_eq!(
            &k[..4],
            ["down a ", "up a", "down a ", "flapping a"],
            "{k:?}"
        );
        assert_eq!(
            k.last().map(String::as_str),
            Some("flapping-ended a up=true")
        );
        assert_eq!(k.len(), 5, "{k:?}");
    }

    #[test]
    fn loss_of_a_few_heartbeats_is_not_an_outage() {
        // 2 % loss on a rural link: losing even 3 in a row is no DOWN.
        let mut d = Detector::new(cfg(), 0);
        d.add_node("a", None);
        let mut x: u64 = 42;
        let evs = run(&mut d, 0, 3_600_000, |t| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let drop = (x >> 33) % 100 < 2 || (1_000_000..1_006_000).contains(&t);
            if drop {
                vec![]
            } else {
                vec!["a"]
            }
        });
        assert!(evs.is_empty(), "{evs:?}");
    }

    #[test]
    fn an_outage_open_before_a_restart_recovers_with_an_up_event() {
        let mut d = Detector::new(cfg(), 100_000);
        d.add_node("a", None);
        d.assume_down("a", 90_000);
        let evs = run(&mut d, 100_000, 130_000, |t| {
            if t >= 104_000 {
                vec!["a"]
            } else {
                vec![]
            }
        });
        assert_eq!(kinds(&evs), ["up a"]);
        assert_eq!(evs[0].0, 106_000);
    }

    /// Drive `d` only at the instants it asks for (`next_deadline_ms`), as
    /// the monitor does, with heartbeats at the given times; returns the
    /// events with their times.
    fn run_precise(d: &mut Detector, heartbeats: &[(u64, &str)], to: u64) -> Vec<(u64, Event)> {
        let mut out = Vec::new();
        let mut hb = heartbeats.iter().peekable();
        loop {
            let next_hb = hb.peek().map(|(t, _)| *t);
            let next_due = d.next_deadline_ms();
            let t = match (next_hb, next_due) {
                (Some(h), Some(n)) if n < h => n,
                (Some(h), _) => h,
                (None, Some(n)) => n,
                (None, None) => break,
            };
            if t >= to {
                break;
            }
            if next_hb == Some(t) {
                let (_, node) = hb.next().expect("peeked");
                out.extend(d.heartbeat(node, t).into_iter().map(|e| (t, e)));
            } else {
                out.extend(d.tick(t).into_iter().map(|e| (t, e)));
            }
        }
        out
    }

    #[test]
    fn down_lands_exactly_at_the_silence_deadline() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("a", None);
        // Heartbeats every 2 s up to 20 000 + 7 ms: the deadline is 10 s later.
        let mut hbs: Vec<(u64, &str)> = (0..=10).map(|i| (i * HB, "a")).collect();
        hbs.push((20_007, "a"));
        let mut probe = Detector::new(cfg(), 0);
        probe.add_node("a", None);
        for &(t, n) in &hbs {
            probe.heartbeat(n, t);
        }
        assert_eq!(probe.next_deadline_ms(), Some(30_007));
        assert!(probe.tick(30_006).is_empty(), "one ms early is too early");
        assert_eq!(
            kinds(
                &probe
                    .tick(30_007)
                    .into_iter()
                    .map(|e| (0, e))
                    .collect::<Vec<_>>()
            ),
            ["down a "]
        );
        // Driven by its own deadlines, nothing else waking it: the DOWN is
        // at the deadline, not on a later tick.
        let evs = run_precise(&mut d, &hbs, 60_000);
        assert_eq!(kinds(&evs), ["down a "]);
        assert_eq!(evs[0].0, 20_007 + 10_000);
        match &evs[0].1 {
            Event::Down {
                last_seen_ms,
                at_ms,
                ..
            } => {
                assert_eq!(*last_seen_ms, Some(20_007));
                assert_eq!(*at_ms, 30_007);
            }
            e => panic!("{e:?}"),
        }
        // Down, and nothing is due until a heartbeat: no busy ticking.
        assert_eq!(d.next_deadline_ms(), None);
    }

    #[test]
    fn a_closed_link_is_due_at_its_grace() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("a", None);
        let hbs: Vec<(u64, &str)> = (0..=10).map(|i| (i * HB, "a")).collect();
        run_precise(&mut d, &hbs, 20_001);
        d.link_closed("a", 20_100);
        assert_eq!(d.next_deadline_ms(), Some(24_100));
        let evs = run_precise(&mut d, &[], 60_000);
        assert_eq!(kinds(&evs), ["down a "]);
        assert_eq!(evs[0].0, 24_100);
    }

    #[test]
    fn a_burst_of_queued_heartbeats_is_one_heartbeat() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("a", None);
        let mut hbs: Vec<(u64, &str)> = (0..=10).map(|i| (i * HB, "a")).collect();
        // Cut after 20 s; down at 30 s. At 41 s the link comes back and
        // delivers the 5 heartbeats it held, a few ms apart.
        for k in 0..5 {
            hbs.push((41_000 + k * 3, "a"));
        }
        let evs = run_precise(&mut d, &hbs, 44_000);
        assert_eq!(kinds(&evs), ["down a "], "a burst is not a recovery");
        assert_eq!(d.status("a"), Some(Status::Down));
        // But it is a sign of life: the next spaced heartbeat brings it up.
        let evs = run_precise(&mut d, &[(43_000, "a")], 44_000);
        assert_eq!(kinds(&evs), ["up a"]);
        assert_eq!(evs[0].0, 43_000);
    }

    #[test]
    fn k_spaced_heartbeats_bring_a_node_up_and_bursts_never_count_twice() {
        let mut c = cfg();
        c.up_after_heartbeats = 3;
        let mut d = Detector::new(c, 0);
        d.add_node("a", None);
        let mut hbs: Vec<(u64, &str)> = (0..=10).map(|i| (i * HB, "a")).collect();
        // Back at 40 s: bursts of 4 at 40, 42 and 44 s; each burst is one.
        for base in [40_000, 42_000, 44_000] {
            for k in 0..4 {
                hbs.push((base + k, "a"));
            }
        }
        let evs = run_precise(&mut d, &hbs, 50_000);
        assert_eq!(kinds(&evs), ["down a ", "up a"]);
        assert_eq!(
            evs[1].0, 44_000,
            "the third spaced heartbeat, not the third of a burst"
        );
        // `up_spacing_ms` (1 s here) after the last counted one is spaced
        // enough; 999 ms is not.
        let mut d = Detector::new(cfg(), 0);
        d.add_node("a", None);
        let mut hbs: Vec<(u64, &str)> = (0..=10).map(|i| (i * HB, "a")).collect();
        hbs.extend([(40_000, "a"), (40_999, "a")]);
        let evs = run_precise(&mut d, &hbs, 41_000);
        assert_eq!(kinds(&evs), ["down a "]);
        let evs = run_precise(&mut d, &[(41_000, "a")], 43_000);
        assert_eq!(kinds(&evs), ["up a"]);
        assert_eq!(evs[0].0, 41_000);
    }

    #[test]
    fn deadlines_drive_group_waits_and_recoveries_of_children() {
        // The same topology story as the 100 ms-tick test, driven only by
        // the detector's own deadlines.
        let mut d = Detector::new(cfg(), 0);
        d.add_node("hub", None);
        d.add_node("c1", Some("hub"));
        let mut hbs = Vec::new();
        for i in 0..10 {
            hbs.push((i * HB, "hub"));
            hbs.push((i * HB, "c1"));
        }
        // The hub goes silent after 18 s; c1 after 16 s (its heartbeat phase).
        hbs.retain(|&(t, n)| !(n == "c1" && t == 18_000));
        // Hub back at 40 s and 42 s; c1 back at 48 s and 50 s.
        for t in [40_000, 42_000, 44_000, 46_000, 48_000, 50_000] {
            hbs.push((t, "hub"));
        }
        hbs.extend([(48_000, "c1"), (50_000, "c1")]);
        hbs.sort();
        let evs = run_precise(&mut d, &hbs, 55_000);
        assert_eq!(
            kinds(&evs),
            [
                "down hub c1",
                "unreachable c1 <- hub",
                "up hub",
                "reachable c1"
            ]
        );
        // c1 was silent first (deadline 26 s) and held for the group wait;
        // the hub's own deadline (28 s) decided.
        assert_eq!(evs[0].0, 28_000);
        assert_eq!(evs[2].0, 42_000);
        assert_eq!(evs[3].0, 48_000);
        assert_eq!(d.status("c1"), Some(Status::Up));
    }

    #[test]
    fn a_new_node_whose_link_opens_late_is_not_down_before_its_first_heartbeat() {
        // The link opens a minute after start; its first heartbeat is the
        // next input. Ticks in between (any other node's deadline) must not
        // find it silent since the detector's start.
        let mut d = Detector::new(cfg(), 0);
        d.link_opened("late", 60_000);
        assert!(d.tick(60_000).is_empty());
        assert!(d.tick(60_001).is_empty());
        assert!(d.heartbeat("late", 60_002).is_empty());
        assert_eq!(d.status("late"), Some(Status::Up));
        // Opened and never heard: down a silence after the opening.
        let mut d = Detector::new(cfg(), 0);
        d.link_opened("mute", 61_000);
        assert_eq!(d.next_deadline_ms(), Some(71_000));
        let evs: Vec<(u64, Event)> = d.tick(71_000).into_iter().map(|e| (0, e)).collect();
        assert_eq!(kinds(&evs), ["down mute "]);
    }

    #[test]
    fn cycles_in_the_topology_are_refused() {
        let mut d = Detector::new(cfg(), 0);
        d.add_node("a", Some("b"));
        d.add_node("b", Some("a"));
        d.add_node("c", Some("c"));
        let evs = run(&mut d, 0, 30_000, |_| vec![]);
        assert_eq!(evs.len(), 3, "{:?}", kinds(&evs));
    }
}
