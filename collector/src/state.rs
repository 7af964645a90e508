//! Shared server state and the in-memory view of connected nodes.

use std::collections::HashMap;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use simpul_proto::wire::Health;

use crate::config::CollectorConfig;
use crate::ingest::WriteJob;
use crate::inventory::Inventories;
use crate::policies::Policies;
use crate::store::{AccessStore, ControlStore, FlowStore};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<CollectorConfig>,
    /// Flow records, counters, blocked attempts.
    pub flows: Arc<dyn FlowStore>,
    /// Registry, inventory, policies, incidents.
    pub control: Arc<dyn ControlStore>,
    pub inventory: Arc<Inventories>,
    pub policies: Arc<Policies>,
    /// Named domain lists (categories) and their sources.
    pub lists: Arc<crate::lists::Lists>,
    pub writer: SyncSender<WriteJob>,
    pub nodes: Arc<NodeRegistry>,
    /// Node liveness, incidents and alerts.
    pub outage: Arc<crate::outage::monitor::OutageMonitor>,
    /// The notification log (what was sent to whom).
    pub notify: crate::notify::NotifyHandle,
    pub live: Arc<crate::live::Live>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Set once when the collector stops: every task and connection ends.
    pub shutdown: crate::server::Shutdown,
    /// Operators, sessions, API tokens, the audit chain.
    pub access: Arc<dyn AccessStore>,
    /// Login throttling and session lengths.
    pub auth: Arc<crate::auth::Auth>,
    /// The live agent sessions (revocation and replacement end them).
    pub agents: Arc<AgentSessions>,
    /// NetFlow/IPFIX exporters: protocol, sampling, templates, gaps.
    pub netflow: Arc<crate::netflow::status::Exporters>,
}

/// The live agent sessions, one per node: a newer session of the same
/// node replaces the older one, and revoking a node ends its session at
/// once. Each session watches its own kick signal.
#[derive(Default)]
pub struct AgentSessions {
    inner: Mutex<HashMap<String, SessionEntry>>,
    next: std::sync::atomic::AtomicU64,
}

/// A node's session id and the sender of its end signal (the reason).
type SessionEntry = (u64, tokio::sync::watch::Sender<Option<String>>);

/// A registered session: its id and the signal that ends it (the reason).
pub struct AgentSession {
    pub id: u64,
    pub kicked: tokio::sync::watch::Receiver<Option<String>>,
    /// The session this one replaced was told so.
    pub replaced: bool,
}

impl AgentSessions {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, SessionEntry>) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// Register the node's new session; an older one is told to end.
    pub fn register(&self, node: &str, from: &str) -> AgentSession {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::watch::channel(None);
        let old = self.with(|m| m.insert(node.to_string(), (id, tx)));
        let replaced = match old {
            Some((_, old)) => {
                old.send_replace(Some(format!(
                    "replaced by a newer session of the same node from {from}"
                )));
                true
            }
            None => false,
        };
        AgentSession {
            id,
            kicked: rx,
            replaced,
        }
    }

    /// End the node's session (if any) with `reason`.
    pub fn kick(&self, node: &str, reason: &str) -> bool {
        self.with(|m| match m.get(node) {
            Some((_, tx)) => {
                tx.send_replace(Some(reason.to_string()));
                true
            }
            None => false,
        })
    }

    /// Forget the session when it ends; false when a newer one had taken
    /// its place (the node is still connected).
    pub fn remove(&self, node: &str, id: u64) -> bool {
        self.with(|m| {
            if m.get(node).is_some_and(|(cur, _)| *cur == id) {
                m.remove(node);
                true
            } else {
                false
            }
        })
    }

    pub fn nodes(&self) -> Vec<String> {
        self.with(|m| m.keys().cloned().collect())
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the collector knows about a node right now (not persisted).
#[derive(Debug, Clone)]
pub struct NodeLive {
    pub agency: String,
    pub address: String,
    pub connected: bool,
    pub last_heard: Instant,
    /// Agent clock minus collector clock at the last heartbeat, milliseconds.
    pub clock_skew_ms: i64,
    pub health: Option<Health>,
    /// Records of this connection the collector refused (dated in the
    /// future or before retention, impossible rates).
    pub refused_records: u64,
}

#[derive(Default)]
pub struct NodeRegistry {
    nodes: Mutex<HashMap<String, NodeLive>>,
}

impl NodeRegistry {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, NodeLive>) -> R) -> R {
        let mut g = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    pub fn connected(&self, node: &str, agency: &str, address: &str) {
        self.with(|m| {
            m.insert(
                node.to_string(),
                NodeLive {
                    agency: agency.to_string(),
                    address: address.to_string(),
                    connected: true,
                    last_heard: Instant::now(),
                    clock_skew_ms: 0,
                    health: None,
                    refused_records: 0,
                },
            );
        });
    }

    pub fn refused(&self, node: &str, records: u64) {
        self.with(|m| {
            if let Some(n) = m.get_mut(node) {
                n.refused_records = n.refused_records.saturating_add(records);
            }
        });
    }

    pub fn heard(&self, node: &str) {
        self.with(|m| {
            if let Some(n) = m.get_mut(node) {
                n.last_heard = Instant::now();
            }
        });
    }

    pub fn heartbeat(&self, node: &str, sent_ms: u64, health: &Health) {
        let skew = sent_ms as i64 - now_ms() as i64;
        self.with(|m| {
            if let Some(n) = m.get_mut(node) {
                n.last_heard = Instant::now();
                n.clock_skew_ms = skew;
                n.health = Some(health.clone());
            }
        });
    }

    pub fn disconnected(&self, node: &str) {
        self.with(|m| {
            if let Some(n) = m.get_mut(node) {
                n.connected = false;
            }
        });
    }

    pub fn snapshot(&self) -> HashMap<String, NodeLive> {
        self.with(|m| m.clone())
    }
}
