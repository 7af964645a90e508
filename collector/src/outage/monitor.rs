//! The outage monitor: one thread that owns the [`Detector`], the incident
//! records and the decisions to alert.
//!
//! Everything about outages goes through its input queue — heartbeats, link
//! changes, acknowledgements, maintenance windows — so incidents have a
//! single writer and every decision is made in order. Alerts leave through an
//! [`AlertSink`] (the notifier's durable log), and an incident is marked
//! notified only once its alert is safely queued there.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::Serialize;

use super::conditions::{AllocationWatch, Change, ConditionConfig, Conditions};
use super::detector::{Detector, DetectorConfig, Event, Status};
use crate::config::NodesConfig;
use crate::inventory::Topology;
use crate::state::now_ms;
use crate::store::{ControlStore, Incident, IncidentStore, Maintenance, NewIncident, StoreError};
use simpul_proto::wire::Health;

/// What an alert says happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Resolved,
    Escalated(u32),
    Acknowledged,
}

/// One message for the people on duty (Bahasa Indonesia).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub incident_id: i64,
    pub state: AlertState,
    pub severity: String,
    pub agency: String,
    pub node: String,
    /// `node_down`, `group_down`, `flapping`.
    pub kind: String,
    pub title: String,
    pub body: String,
    pub starts_at_ms: u64,
    pub ends_at_ms: Option<u64>,
    /// Structured facts for machines (webhook labels): `children` (the
    /// nodes a group outage made unreachable, comma-separated, sorted),
    /// `children_count`, `root_cause` (an unreachable node's down ancestor).
    pub labels: BTreeMap<String, String>,
}

/// Where alerts go. `Err` means the alert was not queued: the incident is
/// not marked notified, and the monitor tries again.
pub type AlertSink = Arc<dyn Fn(&Alert) -> Result<(), String> + Send + Sync>;

/// Whether this collector leads now (`outage::leader::Leader::is_leading`).
/// A follower tracks every node but opens no incident and sends no alert;
/// when it becomes leader it records what its detector sees (nodes down
/// without an open outage, outages of nodes that are up again).
pub type LeaderGate = Arc<dyn Fn() -> bool + Send + Sync>;

/// A node as the dashboard and API see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub node_id: String,
    pub agency: String,
    pub status: &'static str,
    pub parent: Option<String>,
    pub last_heartbeat_ms: Option<u64>,
}

/// A change to the maintenance windows.
#[derive(Debug, Clone)]
pub enum MaintenanceChange {
    Add(Maintenance),
    /// Times and reason of the window with this id.
    Update(Maintenance),
    Delete(i64),
    /// Forget windows that ended before this (retention).
    Prune {
        before_ms: u64,
    },
}

enum Input {
    Opened {
        node: String,
        agency: String,
        at_ms: u64,
    },
    Heartbeat {
        node: String,
        agency: String,
        at_ms: u64,
        /// With the agent's health and clock difference (live agents).
        health: Option<(Box<Health>, i64)>,
    },
    /// An agency's internet use as a percentage of its allocation.
    Allocation {
        agency: String,
        used_pct: f64,
        at_ms: u64,
    },
    Closed {
        node: String,
        at_ms: u64,
    },
    /// Another collector heard `node` at `at_ms` (the shared registry's
    /// last-seen): a heartbeat unless this one heard it later itself.
    SeenElsewhere {
        node: String,
        agency: String,
        at_ms: u64,
    },
    Ack {
        id: i64,
        by: String,
        reply: tokio::sync::oneshot::Sender<Result<Option<Incident>, StoreError>>,
    },
    Maintenance {
        change: MaintenanceChange,
        reply: tokio::sync::oneshot::Sender<Result<Option<Maintenance>, StoreError>>,
    },
    /// The inventory changed: parents and severities follow it.
    Topology(Topology),
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the outage monitor thread: {0}")]
    Thread(std::io::Error),
    #[error("the outage monitor has stopped")]
    Stopped,
}

/// Counters ("everything that moves gets a counter").
#[derive(Debug, Default)]
pub struct MonitorStats {
    pub heartbeats: AtomicU64,
    /// Inputs the monitor thread has handled.
    pub processed: AtomicU64,
    pub dropped_inputs: AtomicU64,
    pub alerts: AtomicU64,
    pub alert_failures: AtomicU64,
}

pub struct OutageMonitor {
    tx: Sender<Input>,
    /// Whether the worker acts as leader now (always, without a gate).
    leading: Arc<AtomicBool>,
    /// The name this collector leads under (None: one collector alone).
    collector_id: Option<String>,
    view: Arc<RwLock<BTreeMap<String, NodeView>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<MonitorStats>,
}

/// Heartbeats from 50 k agents every 2 s are 25 k inputs a second; the
/// queue holds several seconds of them.
const QUEUE: usize = 262_144;
/// Retries of refused alerts, escalations and the API's view run on this
/// beat; outage deadlines do not wait for it (see `Worker::run`).
const HOUSEKEEPING: Duration = Duration::from_millis(100);

impl OutageMonitor {
    /// `known`: every enrolled node with its agency (so a node that never
    /// reconnects after a collector restart is still noticed).
    pub fn start(
        cfg: &NodesConfig,
        store: &dyn ControlStore,
        known: Vec<(String, String)>,
        topology: Topology,
        alerts: AlertSink,
    ) -> Result<OutageMonitor, MonitorError> {
        Self::start_led(cfg, store, known, topology, alerts, None)
    }

    /// `start`, leading only while `gate` says so (None: always).
    pub fn start_led(
        cfg: &NodesConfig,
        store: &dyn ControlStore,
        known: Vec<(String, String)>,
        topology: Topology,
        alerts: AlertSink,
        gate: Option<LeaderGate>,
    ) -> Result<OutageMonitor, MonitorError> {
        let mut incidents = store.incidents()?;
        let parent_of = |n: &str| topology.parents.get(n).cloned();
        let started = now_ms();
        let mut dcfg = DetectorConfig::new(cfg.heartbeat_interval_ms, cfg.down_after_secs * 1000);
        dcfg.up_after_heartbeats = cfg.up_after_heartbeats;
        dcfg.flap_threshold = cfg.flap_threshold;
        dcfg.flap_window_ms = cfg.flap_window_secs * 1000;
        let mut detector = Detector::new(dcfg, started);
        let mut agencies = HashMap::new();
        for (node, agency) in &known {
            detector.add_node(node, parent_of(node).as_deref());
            agencies.insert(node.clone(), agency.clone());
        }
        // Outages open from before a restart stay open until the node is
        // really back; then their recovery is sent like any other.
        let open = incidents.list(&crate::store::IncidentFilter {
            open_only: true,
            limit: 1_000_000,
            ..Default::default()
        })?;
        for inc in &open {
            detector.add_node(&inc.node_id, parent_of(&inc.node_id).as_deref());
            agencies
                .entry(inc.node_id.clone())
                .or_insert(inc.agency.clone());
            detector.assume_down(&inc.node_id, inc.started_ms);
        }
        let maintenance = incidents.maintenance_since(started)?;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let view = Arc::new(RwLock::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(MonitorStats::default());
        let leading = Arc::new(AtomicBool::new(gate.is_none()));
        let mut worker = Worker {
            leading_flag: leading.clone(),
            cfg: cfg.clone(),
            topology,
            detector,
            agencies,
            maintenance,
            alerts,
            allocation: AllocationWatch::new(
                f64::from(cfg.allocation_alert_pct),
                cfg.allocation_alert_secs * 1000,
            ),
            conditions: Conditions::new(ConditionConfig {
                max_clock_skew_ms: i64::try_from(cfg.max_clock_skew_ms).unwrap_or(i64::MAX),
                skew_min_gap_ms: cfg.heartbeat_interval_ms / 2,
                skew_max_gap_ms: cfg.heartbeat_interval_ms * 2,
                ..ConditionConfig::default()
            }),
            view: view.clone(),
            stats: stats.clone(),
            last_escalation_check: 0,
            last_view_ms: 0,
            view_dirty: true,
            unsent: Vec::new(),
            leading: gate.is_none(),
            gate,
        };
        // An outage recorded but not yet handed to the notifier when the
        // previous run died: hand it over now (the notifier's log drops it
        // if it did get there).
        for inc in open
            .iter()
            .filter(|i| i.notified_ms.is_none() && !i.maintenance && i.kind != "unreachable")
        {
            let a = worker.alert(inc, AlertState::Firing, &inc.kind);
            worker.unsent.push(a);
        }
        worker.publish_view();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("simpul-outage".into())
                .spawn(move || worker.run(&rx, &mut incidents, &stop))
                .map_err(MonitorError::Thread)?
        };
        tracing::info!(
            nodes = known.len(),
            down_after_secs = cfg.down_after_secs,
            "outage monitor started (no node goes down before a full heartbeat window)"
        );
        Ok(OutageMonitor {
            tx,
            leading,
            collector_id: None,
            view,
            stop,
            thread: Some(thread),
            stats,
        })
    }

    fn send(&self, input: Input) {
        match self.tx.try_send(input) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.dropped_inputs.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Parents and severities from a changed inventory.
    pub fn set_topology(&self, t: Topology) {
        self.send(Input::Topology(t));
    }

    pub fn opened(&self, node: &str, agency: &str) {
        self.send(Input::Opened {
            node: node.to_string(),
            agency: agency.to_string(),
            at_ms: now_ms(),
        });
    }

    /// A heartbeat (or any sign of life) from `node`.
    pub fn heartbeat(&self, node: &str, agency: &str) {
        self.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
        self.send(Input::Heartbeat {
            node: node.to_string(),
            agency: agency.to_string(),
            at_ms: now_ms(),
            health: None,
        });
    }

    /// An agency's current internet use, percent of its allocation.
    pub fn allocation_usage(&self, agency: &str, used_pct: f64) {
        self.send(Input::Allocation {
            agency: agency.to_string(),
            used_pct,
            at_ms: now_ms(),
        });
    }

    /// A heartbeat with the agent's health; `sent_ms` is the agent's clock.
    pub fn heartbeat_with_health(&self, node: &str, agency: &str, sent_ms: u64, health: &Health) {
        self.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
        let at_ms = now_ms();
        let skew = i64::try_from(sent_ms).unwrap_or(i64::MAX) - i64::try_from(at_ms).unwrap_or(0);
        self.send(Input::Heartbeat {
            node: node.to_string(),
            agency: agency.to_string(),
            at_ms,
            health: Some((Box::new(health.clone()), skew)),
        });
    }

    pub fn closed(&self, node: &str) {
        self.send(Input::Closed {
            node: node.to_string(),
            at_ms: now_ms(),
        });
    }

    /// `node` was last heard at `at_ms` by whichever collector it is on
    /// (several collectors: the shared registry's last-seen).
    pub fn seen_elsewhere(&self, node: &str, agency: &str, at_ms: u64) {
        self.send(Input::SeenElsewhere {
            node: node.to_string(),
            agency: agency.to_string(),
            at_ms,
        });
    }

    /// Whether this collector's monitor opens incidents and alerts now.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    /// Name the collector in `/metrics` and `/healthz` (its lease holder).
    pub fn with_collector_id(mut self, id: Option<String>) -> Self {
        self.collector_id = id;
        self
    }

    pub fn collector_id(&self) -> Option<&str> {
        self.collector_id.as_deref()
    }

    /// Acknowledge an incident (the first acknowledgement counts).
    pub async fn ack(&self, id: i64, by: &str) -> Result<Option<Incident>, MonitorError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .try_send(Input::Ack {
                id,
                by: by.to_string(),
                reply,
            })
            .map_err(|_| MonitorError::Stopped)?;
        Ok(rx.await.map_err(|_| MonitorError::Stopped)??)
    }

    /// Add, change, delete or prune maintenance windows (the monitor is the
    /// single writer of incidents and windows). Add and Update answer the
    /// window as stored; None when the id is unknown.
    pub async fn maintenance(
        &self,
        change: MaintenanceChange,
    ) -> Result<Option<Maintenance>, MonitorError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .try_send(Input::Maintenance { change, reply })
            .map_err(|_| MonitorError::Stopped)?;
        Ok(rx.await.map_err(|_| MonitorError::Stopped)??)
    }

    pub async fn add_maintenance(&self, m: Maintenance) -> Result<Maintenance, MonitorError> {
        self.maintenance(MaintenanceChange::Add(m))
            .await?
            .ok_or(MonitorError::Stopped)
    }

    pub fn nodes(&self) -> Vec<NodeView> {
        let g = self.view.read().unwrap_or_else(|p| p.into_inner());
        g.values().cloned().collect()
    }

    /// Ask the thread to end (within a housekeeping beat) without waiting.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for OutageMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

struct Worker {
    cfg: NodesConfig,
    topology: Topology,
    detector: Detector,
    agencies: HashMap<String, String>,
    maintenance: Vec<Maintenance>,
    alerts: AlertSink,
    conditions: Conditions,
    allocation: AllocationWatch,
    view: Arc<RwLock<BTreeMap<String, NodeView>>>,
    stats: Arc<MonitorStats>,
    last_escalation_check: u64,
    last_view_ms: u64,
    /// A node appeared or changed state since the last view.
    view_dirty: bool,
    /// Alerts the sink refused, retried every tick.
    unsent: Vec<Alert>,
    gate: Option<LeaderGate>,
    leading: bool,
    /// `leading`, for `OutageMonitor::is_leading`.
    leading_flag: Arc<AtomicBool>,
}

impl Worker {
    /// Sleeps until the next input, the detector's earliest deadline or the
    /// housekeeping beat, whichever comes first: a node goes DOWN at its
    /// deadline (to the millisecond), not up to a beat later.
    fn run(&mut self, rx: &Receiver<Input>, store: &mut IncidentStore, stop: &AtomicBool) {
        let mut next_house = now_ms();
        while !stop.load(Ordering::Acquire) {
            self.follow_the_lead(store);
            let wake = self
                .detector
                .next_deadline_ms()
                .map_or(next_house, |d| d.min(next_house));
            match rx.recv_timeout(until(wake)) {
                Ok(input) => {
                    self.input(input, store);
                    self.stats.processed.fetch_add(1, Ordering::Relaxed);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = now_ms();
            if self.detector.next_deadline_ms().is_some_and(|d| d <= now) {
                let events = self.detector.tick(now);
                self.handle(events, store);
            }
            if now >= next_house {
                next_house = now + HOUSEKEEPING.as_millis() as u64;
                self.retry_unsent(store);
                if now.saturating_sub(self.last_escalation_check) >= 5_000 {
                    self.last_escalation_check = now;
                    self.escalate(now, store);
                    // Several collectors: a window added through another
                    // collector's API is in the shared store, not here.
                    if self.gate.is_some() {
                        self.reload_maintenance(store);
                    }
                }
                // The API's view: a copy of every node, so once a second
                // (with 50 k nodes, every tick would cost more than the
                // heartbeats themselves).
                if self.view_dirty || now.saturating_sub(self.last_view_ms) >= 1_000 {
                    self.view_dirty = false;
                    self.last_view_ms = now;
                    self.publish_view();
                }
            }
        }
    }

    fn input(&mut self, input: Input, store: &mut IncidentStore) {
        match input {
            Input::Opened {
                node,
                agency,
                at_ms,
            } => {
                self.known(&node, &agency);
                self.detector.link_opened(&node, at_ms);
            }
            Input::Heartbeat {
                node,
                agency,
                at_ms,
                health,
            } => {
                self.known(&node, &agency);
                let events = self.detector.heartbeat(&node, at_ms);
                self.handle(events, store);
                if let Some((h, skew)) = health {
                    let changes = self.conditions.observe(&node, &h, skew, at_ms);
                    self.conditions_changed(&node, changes, at_ms, store);
                }
            }
            Input::Closed { node, at_ms } => self.detector.link_closed(&node, at_ms),
            Input::SeenElsewhere {
                node,
                agency,
                at_ms,
            } => {
                // Seen here at or after that: this collector knows better
                // (its own link's close included).
                if self
                    .detector
                    .last_heartbeat_ms(&node)
                    .is_some_and(|mine| mine >= at_ms)
                {
                    return;
                }
                self.known(&node, &agency);
                let events = self.detector.heartbeat(&node, at_ms);
                self.handle(events, store);
            }
            Input::Allocation {
                agency,
                used_pct,
                at_ms,
            } => {
                if let Some((active, detail)) = self.allocation.observe(&agency, used_pct, at_ms) {
                    // Recorded under a pseudo-node for the agency.
                    let node = format!("agency:{agency}");
                    self.agencies.insert(node.clone(), agency.clone());
                    let change = Change {
                        condition: super::conditions::Condition::AllocationHigh,
                        active,
                        detail,
                    };
                    self.conditions_changed(&node, vec![change], at_ms, store);
                }
            }
            Input::Ack { id, by, reply } => {
                let result = store.ack(id, &by, now_ms());
                if let Ok(Some(inc)) = &result {
                    if inc.acked_by.as_deref() == Some(by.as_str()) && inc.notified_ms.is_some() {
                        let mut a = self.alert(inc, AlertState::Acknowledged, &inc.kind.clone());
                        a.title = format!("Diterima: {}", a.title);
                        a.body = format!("Ditangani oleh {by}.\n{}", a.body);
                        self.send_alert(a, store);
                    }
                }
                let _ = reply.send(result);
            }
            Input::Topology(t) => {
                self.topology = t;
                let nodes: Vec<String> = self.agencies.keys().cloned().collect();
                for n in nodes {
                    let parent = self.parent_of(&n).map(str::to_string);
                    self.detector.add_node(&n, parent.as_deref());
                }
                self.view_dirty = true;
            }
            Input::Maintenance { change, reply } => {
                let result = match change {
                    MaintenanceChange::Add(m) => store.add_maintenance(&m).map(Some),
                    MaintenanceChange::Update(m) => {
                        store.update_maintenance(&m).and_then(|found| {
                            if found {
                                store.maintenance_window(m.id)
                            } else {
                                Ok(None)
                            }
                        })
                    }
                    MaintenanceChange::Delete(id) => store
                        .maintenance_window(id)
                        .and_then(|w| store.delete_maintenance(id).map(|_| w)),
                    MaintenanceChange::Prune { before_ms } => {
                        store.prune_maintenance(before_ms).map(|n| {
                            if n > 0 {
                                tracing::info!(windows = n, "old maintenance windows pruned");
                            }
                            None
                        })
                    }
                };
                // The windows in force follow the store.
                self.reload_maintenance(store);
                let _ = reply.send(result);
            }
        }
    }

    fn reload_maintenance(&mut self, store: &IncidentStore) {
        match store.maintenance_since(now_ms().saturating_sub(30 * 86_400_000)) {
            Ok(list) => self.maintenance = list,
            Err(e) => tracing::error!(error = %e, "cannot reload maintenance windows"),
        }
    }

    fn known(&mut self, node: &str, agency: &str) {
        if !self.agencies.contains_key(node) {
            self.view_dirty = true;
            self.agencies.insert(node.to_string(), agency.to_string());
            let parent = self.parent_of(node).map(str::to_string);
            self.detector.add_node(node, parent.as_deref());
        }
    }

    fn parent_of(&self, node: &str) -> Option<&str> {
        self.topology.parents.get(node).map(String::as_str)
    }

    fn criticality_of(&self, node: &str) -> &str {
        self.topology
            .criticality
            .get(node)
            .map_or(self.cfg.default_criticality.as_str(), String::as_str)
    }

    fn agency(&self, node: &str) -> String {
        self.agencies.get(node).cloned().unwrap_or_default()
    }

    fn in_maintenance(&self, node: &str, at_ms: u64) -> bool {
        let agency = self.agency(node);
        self.maintenance
            .iter()
            .any(|m| m.covers(node, &agency, at_ms))
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &self,
        store: &mut IncidentStore,
        node: &str,
        kind: &str,
        root: Option<&str>,
        children: &[String],
        started_ms: u64,
        at_ms: u64,
    ) -> Option<(Incident, bool)> {
        let agency = self.agency(node);
        let new = NewIncident {
            node_id: node,
            agency: &agency,
            kind,
            severity: self.criticality_of(node),
            root_cause: root,
            children,
            started_ms,
            detected_ms: at_ms,
            maintenance: self.in_maintenance(node, at_ms),
        };
        match store.open(&new) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(node, error = %e, "cannot record an incident");
                None
            }
        }
    }

    /// Resolve `node`'s open incident; send the recovery if its outage was sent.
    fn resolve(&mut self, store: &mut IncidentStore, node: &str, at_ms: u64) {
        let open = match store.open_for(node) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(node, error = %e, "cannot read incidents");
                return;
            }
        };
        let Some(inc) = open else { return };
        if let Err(e) = store.resolve(inc.id, at_ms) {
            tracing::error!(node, error = %e, "cannot resolve an incident");
            return;
        }
        if inc.notified_ms.is_some() {
            let mut resolved = inc.clone();
            resolved.resolved_ms = Some(at_ms);
            let a = self.alert(&resolved, AlertState::Resolved, &inc.kind);
            self.send_alert(a, store);
        }
    }

    /// Take over (see `LeaderGate`) or step down.
    fn follow_the_lead(&mut self, store: &mut IncidentStore) {
        let Some(gate) = &self.gate else { return };
        let now_leading = gate();
        if now_leading == self.leading {
            return;
        }
        self.leading = now_leading;
        self.leading_flag.store(now_leading, Ordering::Release);
        tracing::info!(leading = now_leading, "outage detector leadership changed");
        if !now_leading {
            return;
        }
        let now = now_ms();
        // Outages the previous leader recorded but died before handing to
        // the notifier: hand them over (the log drops one it did get).
        match store.list(&crate::store::IncidentFilter {
            open_only: true,
            limit: 1_000_000,
            ..Default::default()
        }) {
            Ok(open) => {
                for inc in open.iter().filter(|i| {
                    i.notified_ms.is_none() && !i.maintenance && i.kind != "unreachable"
                }) {
                    let a = self.alert(inc, AlertState::Firing, &inc.kind);
                    self.send_alert(a, store);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read open incidents on taking the lead"),
        }
        let states: Vec<(String, Status)> = self
            .detector
            .statuses()
            .map(|(n, st)| (n.to_string(), st))
            .collect();
        for (node, status) in states {
            match status {
                Status::Down if matches!(store.open_for(&node), Ok(None)) => {
                    let started = self.detector.last_heartbeat_ms(&node).unwrap_or(now);
                    if let Some((inc, fresh)) =
                        self.open(store, &node, "down", None, &[], started, now)
                    {
                        if fresh && !inc.maintenance {
                            let a = self.alert(&inc, AlertState::Firing, "down");
                            self.send_alert(a, store);
                        }
                    }
                }
                Status::Up => self.resolve(store, &node, now),
                _ => {}
            }
        }
    }

    fn handle(&mut self, events: Vec<Event>, store: &mut IncidentStore) {
        if !events.is_empty() {
            // The API's view changes before the incidents are written, so a
            // reader who sees an incident never sees its node still up. At
            // most once per housekeeping beat: a mass recovery is thousands
            // of one-event batches, each view a copy of every node.
            let now = now_ms();
            if now.saturating_sub(self.last_view_ms) >= HOUSEKEEPING.as_millis() as u64 {
                self.last_view_ms = now;
                self.view_dirty = false;
                self.publish_view();
            } else {
                self.view_dirty = true;
            }
        }
        if !self.leading {
            return;
        }
        for e in events {
            tracing::info!(event = ?e, "node state");
            match e {
                Event::Down {
                    node,
                    last_seen_ms,
                    at_ms,
                    unreachable,
                } => {
                    // An unreachable spell that turns into its own outage.
                    if let Ok(Some(open)) = store.open_for(&node) {
                        if open.kind == "unreachable" {
                            let _ = store.resolve(open.id, at_ms);
                        }
                    }
                    let kind = if unreachable.is_empty() {
                        "down"
                    } else {
                        "group_down"
                    };
                    let started = last_seen_ms.unwrap_or(at_ms);
                    if let Some((inc, fresh)) =
                        self.open(store, &node, kind, None, &unreachable, started, at_ms)
                    {
                        if fresh && !inc.maintenance {
                            let a = self.alert(&inc, AlertState::Firing, kind);
                            self.send_alert(a, store);
                        }
                    }
                }
                Event::Up { node, at_ms } | Event::Reachable { node, at_ms } => {
                    self.resolve(store, &node, at_ms);
                }
                Event::Unreachable {
                    node,
                    root,
                    last_seen_ms,
                    at_ms,
                } => {
                    let started = last_seen_ms.unwrap_or(at_ms);
                    self.open(
                        store,
                        &node,
                        "unreachable",
                        Some(&root),
                        &[],
                        started,
                        at_ms,
                    );
                }
                Event::FlappingStarted { node, at_ms, .. } => {
                    // One incident for the whole unstable spell: whatever was
                    // open ends here (its recovery sent if its outage was).
                    self.resolve(store, &node, at_ms);
                    if let Some((inc, fresh)) =
                        self.open(store, &node, "flapping", None, &[], at_ms, at_ms)
                    {
                        if fresh && !inc.maintenance {
                            let a = self.alert(&inc, AlertState::Firing, "flapping");
                            self.send_alert(a, store);
                        }
                    }
                }
                Event::FlappingEnded { node, at_ms, up } => {
                    self.resolve(store, &node, at_ms);
                    if !up {
                        let last = self.detector.last_heartbeat_ms(&node).unwrap_or(at_ms);
                        if let Some((inc, fresh)) =
                            self.open(store, &node, "down", None, &[], last, at_ms)
                        {
                            if fresh && !inc.maintenance {
                                let a = self.alert(&inc, AlertState::Firing, "down");
                                self.send_alert(a, store);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Conditions (clock skew, agent health) as incidents of their own
    /// beside the node's outages.
    fn conditions_changed(
        &mut self,
        node: &str,
        changes: Vec<Change>,
        at_ms: u64,
        store: &mut IncidentStore,
    ) {
        if !self.leading {
            return;
        }
        for ch in changes {
            let kind = ch.condition.kind();
            tracing::info!(node, kind, active = ch.active, detail = %ch.detail, "node condition");
            if ch.active {
                if let Some((inc, fresh)) = self.open(store, node, kind, None, &[], at_ms, at_ms) {
                    if fresh && !inc.maintenance {
                        let mut a = self.alert(&inc, AlertState::Firing, kind);
                        a.body = format!("{}.\n{}", ch.detail, a.body);
                        self.send_alert(a, store);
                    }
                }
                continue;
            }
            // Another condition of the same kind may still hold.
            if self
                .conditions
                .active(node)
                .iter()
                .any(|c| c.kind() == kind)
            {
                continue;
            }
            if let Ok(Some(inc)) = store.open_for_kind(node, kind) {
                let _ = store.resolve(inc.id, at_ms);
                if inc.notified_ms.is_some() {
                    let mut resolved = inc.clone();
                    resolved.resolved_ms = Some(at_ms);
                    let mut a = self.alert(&resolved, AlertState::Resolved, kind);
                    a.body = format!("{}.", ch.detail);
                    self.send_alert(a, store);
                }
            }
        }
    }

    fn send_alert(&mut self, a: Alert, store: &mut IncidentStore) {
        match (self.alerts)(&a) {
            Ok(()) => {
                self.stats.alerts.fetch_add(1, Ordering::Relaxed);
                if a.state == AlertState::Firing {
                    if let Err(e) = store.mark_notified(a.incident_id, now_ms()) {
                        tracing::error!(error = %e, "cannot mark an incident notified");
                    }
                }
            }
            Err(e) => {
                self.stats.alert_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(incident = a.incident_id, error = %e, "cannot queue an alert; retrying");
                self.unsent.push(a);
            }
        }
    }

    fn retry_unsent(&mut self, store: &mut IncidentStore) {
        if !self.leading {
            return;
        }
        for a in std::mem::take(&mut self.unsent) {
            self.send_alert(a, store);
        }
    }

    /// Outages unacknowledged for `escalate_after_mins` × level go to the
    /// next level's contacts (the notifier's routing decides who).
    fn escalate(&mut self, now: u64, store: &mut IncidentStore) {
        if !self.leading {
            return;
        }
        let after = self.cfg.escalate_after_mins * 60_000;
        if after == 0 {
            return;
        }
        let open = match store.unacknowledged() {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "cannot read unacknowledged incidents");
                return;
            }
        };
        for inc in open {
            let Some(notified) = inc.notified_ms else {
                continue;
            };
            let due = (now.saturating_sub(notified) / after) as u32;
            if due > inc.escalation {
                let level = inc.escalation + 1;
                let _ = store.set_escalation(inc.id, level);
                let mut a = self.alert(&inc, AlertState::Escalated(level), &inc.kind);
                a.title = format!("Eskalasi {level}: {}", a.title);
                self.send_alert(a, store);
            }
        }
    }

    fn alert(&self, inc: &Incident, state: AlertState, kind: &str) -> Alert {
        let node = &inc.node_id;
        let agency = &inc.agency;
        let (title, body) = match (state, kind) {
            (AlertState::Resolved, _) => (
                format!("PULIH: {node} ({agency})"),
                format!(
                    "Node {node} kembali normal setelah {}.",
                    human(inc.duration_ms(inc.resolved_ms.unwrap_or(inc.started_ms)))
                ),
            ),
            (_, "agent_health") => (
                format!("GANGGUAN AGEN: {node} ({agency})"),
                format!("Node {node} hidup, tetapi agennya bermasalah sejak {}.", clock(inc.started_ms)),
            ),
            (_, "allocation_high") => (
                format!("ALOKASI PENUH: {agency}"),
                format!("Pemakaian internet {agency} di atas {} % alokasinya sejak {}.", self.cfg.allocation_alert_pct, clock(inc.started_ms)),
            ),
            (_, "clock_skew") => (
                format!("JAM TIDAK SESUAI: {node} ({agency})"),
                format!("Jam node {node} tidak sesuai dengan collector sejak {} (periksa NTP).", clock(inc.started_ms)),
            ),
            (_, "flapping") => (
                format!("TIDAK STABIL: {node} ({agency})"),
                format!("Node {node} naik-turun berulang kali (flapping); notifikasi berikutnya saat stabil."),
            ),
            (_, "group_down") => (
                format!("PADAM: {node} ({agency}) dan {} node di bawahnya", inc.children.len()),
                format!(
                    "Node {node} tidak mengirim heartbeat sejak {}. Tidak terjangkau karena ini: {}.",
                    clock(inc.started_ms),
                    inc.children.join(", ")
                ),
            ),
            _ => (
                format!("PADAM: {node} ({agency})"),
                format!(
                    "Node {node} tidak mengirim heartbeat sejak {}.",
                    clock(inc.started_ms)
                ),
            ),
        };
        Alert {
            incident_id: inc.id,
            state,
            severity: inc.severity.clone(),
            agency: agency.clone(),
            node: node.clone(),
            kind: if kind == "down" {
                "node_down".into()
            } else {
                kind.to_string()
            },
            title,
            body,
            starts_at_ms: inc.started_ms,
            ends_at_ms: inc.resolved_ms,
            labels: {
                let mut l = BTreeMap::new();
                if !inc.children.is_empty() {
                    let mut c = inc.children.clone();
                    c.sort();
                    l.insert("children".into(), c.join(","));
                    l.insert("children_count".into(), c.len().to_string());
                }
                if let Some(r) = &inc.root_cause {
                    l.insert("root_cause".into(), r.clone());
                }
                l
            },
        }
    }

    fn publish_view(&self) {
        let mut v = BTreeMap::new();
        for (node, status) in self.detector.statuses() {
            v.insert(
                node.to_string(),
                NodeView {
                    node_id: node.to_string(),
                    agency: self.agency(node),
                    status: status.name(),
                    parent: self.parent_of(node).map(str::to_string),
                    last_heartbeat_ms: self.detector.last_heartbeat_ms(node),
                },
            );
        }
        let mut g = self.view.write().unwrap_or_else(|p| p.into_inner());
        *g = v;
    }
}

/// From now until the wall-clock millisecond `ms` begins (zero if past):
/// deadlines are in `now_ms` time, and waking at the start of the
/// millisecond, not a rounding later, is what keeps DOWN on time.
fn until(ms: u64) -> Duration {
    (std::time::UNIX_EPOCH + Duration::from_millis(ms))
        .duration_since(std::time::SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// "3 mnt 20 dtk", "2 jam 5 mnt".
fn human(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} dtk"),
        60..=3599 => format!("{} mnt {} dtk", s / 60, s % 60),
        _ => format!("{} jam {} mnt", s / 3600, (s % 3600) / 60),
    }
}

/// RFC 3339 in UTC.
fn clock(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An alert sink that keeps every alert it is given, for the test to read.
    fn recording_sink() -> (Arc<std::sync::Mutex<Vec<Alert>>>, AlertSink) {
        let alerts: Arc<std::sync::Mutex<Vec<Alert>>> = Arc::default();
        let kept = alerts.clone();
        let sink: AlertSink = Arc::new(move |a: &Alert| {
            kept.lock().expect("lock").push(a.clone());
            Ok(())
        });
        (alerts, sink)
    }

    /// Through the real monitor thread and a real store: a clock-skew
    /// condition opens its own incident beside the node's liveness, alerts
    /// once, and resolves with a recovery when the clock is right again.
    #[test]
    fn conditions_become_incidents_with_alerts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default())
            .expect("store");
        let (alerts, sink) = recording_sink();
        // Clock samples come from heartbeats in the agent's rhythm, so
        // these come at the (short) interval, until the monitor answers.
        let cfg = NodesConfig {
            heartbeat_interval_ms: 100,
            ..NodesConfig::default()
        };
        let m =
            OutageMonitor::start(&cfg, &store, vec![], Topology::default(), sink).expect("start");
        let h = Health::default();
        let beat_until = |n: usize, ahead_ms: u64| {
            let end = std::time::Instant::now() + Duration::from_secs(10);
            while alerts.lock().expect("lock").len() < n && std::time::Instant::now() < end {
                m.heartbeat_with_health("n1", "dinkes", now_ms() + ahead_ms, &h);
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        beat_until(1, 60_000);
        beat_until(2, 0);
        let got: Vec<(String, AlertState)> = alerts
            .lock()
            .expect("lock")
            .iter()
            .map(|a| (a.kind.clone(), a.state))
            .collect();
        assert_eq!(
            got,
            [
                ("clock_skew".to_string(), AlertState::Firing),
                ("clock_skew".to_string(), AlertState::Resolved)
            ]
        );
        assert!(alerts.lock().expect("lock")[0].body.contains("selisih 60"));
        let views = m.nodes();
        assert_eq!(
            views[0].status, "up",
            "liveness is separate from conditions"
        );
        m.stop();
    }

    /// A follower tracks a node going down but records and sends nothing;
    /// when it becomes leader it opens the outage it saw and alerts once,
    /// and resolves it like any other when the node is back.
    #[test]
    fn a_follower_stays_quiet_and_catches_up_when_it_leads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default())
            .expect("store");
        let (alerts, sink) = recording_sink();
        let lead = Arc::new(AtomicBool::new(false));
        let gate: LeaderGate = {
            let lead = lead.clone();
            Arc::new(move || lead.load(Ordering::Acquire))
        };
        let cfg = NodesConfig {
            heartbeat_interval_ms: 100,
            down_after_secs: 1,
            ..NodesConfig::default()
        };
        let m = OutageMonitor::start_led(
            &cfg,
            &store,
            vec![("n1".into(), "dinkes".into())],
            Topology::default(),
            sink,
            Some(gate),
        )
        .expect("start");
        let until = |what: &str, ok: &dyn Fn() -> bool| {
            let end = std::time::Instant::now() + Duration::from_secs(20);
            while !ok() {
                assert!(std::time::Instant::now() < end, "{what}");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        m.heartbeat("n1", "dinkes");
        until("n1 goes down", &|| {
            m.nodes().iter().any(|n| n.status == "down")
        });
        // The detector's next beats pass; still nothing recorded or sent.
        std::thread::sleep(Duration::from_millis(300));
        assert!(alerts.lock().expect("lock").is_empty());
        let incidents = store.incidents().expect("incidents");
        assert!(incidents.open_for("n1").expect("read").is_none());

        lead.store(true, Ordering::Release);
        until("the new leader alerts", &|| {
            !alerts.lock().expect("lock").is_empty()
        });
        assert!(incidents.open_for("n1").expect("read").is_some());
        // Back, heartbeating as a live agent does.
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while alerts.lock().expect("lock").len() < 2 {
            assert!(std::time::Instant::now() < end, "the recovery is sent");
            m.heartbeat("n1", "dinkes");
            std::thread::sleep(Duration::from_millis(100));
        }
        let got: Vec<(String, AlertState)> = alerts
            .lock()
            .expect("lock")
            .iter()
            .map(|a| (a.kind.clone(), a.state))
            .collect();
        assert_eq!(
            got,
            [
                ("node_down".to_string(), AlertState::Firing),
                ("node_down".to_string(), AlertState::Resolved)
            ]
        );
        m.stop();
    }

    /// Escalation over simulated time: one alert per level, none once
    /// acknowledged.
    #[test]
    fn unacknowledged_outages_escalate_level_by_level() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), crate::store::StoreConfig::default())
            .expect("store");
        let mut incidents = store.incidents().expect("incidents");
        let (alerts, sink) = recording_sink();
        let cfg = NodesConfig::default();
        let mut w = Worker {
            cfg: cfg.clone(),
            topology: Topology::default(),
            detector: Detector::new(DetectorConfig::new(2_000, 10_000), 0),
            agencies: HashMap::new(),
            maintenance: Vec::new(),
            alerts: sink,
            conditions: Conditions::new(ConditionConfig::default()),
            allocation: AllocationWatch::new(95.0, 300_000),
            view: Arc::default(),
            stats: Arc::default(),
            last_escalation_check: 0,
            last_view_ms: 0,
            view_dirty: true,
            unsent: Vec::new(),
            gate: None,
            leading: true,
            leading_flag: Arc::default(),
        };
        let t0 = 1_000_000;
        let (inc, _) = incidents
            .open(&NewIncident {
                node_id: "n1",
                agency: "dinkes",
                kind: "down",
                severity: "critical",
                root_cause: None,
                children: &[],
                started_ms: t0,
                detected_ms: t0,
                maintenance: false,
            })
            .expect("open");
        incidents.mark_notified(inc.id, t0).expect("notified");
        let min = 60_000;
        for t in [t0 + 14 * min, t0 + 15 * min, t0 + 16 * min, t0 + 30 * min] {
            w.escalate(t, &mut incidents);
        }
        incidents.ack(inc.id, "budi", t0 + 31 * min).expect("ack");
        w.escalate(t0 + 60 * min, &mut incidents);
        let states: Vec<AlertState> = alerts
            .lock()
            .expect("lock")
            .iter()
            .map(|a| a.state)
            .collect();
        assert_eq!(states, [AlertState::Escalated(1), AlertState::Escalated(2)]);
        assert!(alerts.lock().expect("lock")[0]
            .title
            .starts_with("Eskalasi 1"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(5_000), "5 dtk");
        assert_eq!(human(200_000), "3 mnt 20 dtk");
        assert_eq!(human(7_500_000), "2 jam 5 mnt");
        assert!(clock(0).starts_with("1970-01-01T00:00:00"));
    }
}
