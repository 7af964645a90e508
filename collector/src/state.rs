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
use crate::store::{ControlStore, FlowStore};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<CollectorConfig>,
    /// Flow records, counters, blocked attempts.
    pub flows: Arc<dyn FlowStore>,
    /// Registry, inventory, policies, incidents.
    pub control: Arc<dyn ControlStore>,
    pub inventory: Arc<Inventories>,
    pub policies: Arc<Policies>,
    pub writer: SyncSender<WriteJob>,
    pub nodes: Arc<NodeRegistry>,
    /// Node liveness, incidents and alerts.
    pub outage: Arc<crate::outage::monitor::OutageMonitor>,
    /// The notification log (what was sent to whom).
    pub notify: crate::notify::NotifyHandle,
    pub live: tokio::sync::broadcast::Sender<Arc<str>>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Set once when the collector stops: every task and connection ends.
    pub shutdown: crate::server::Shutdown,
}

impl AppState {
    /// Security-relevant events (enrollment, refusals, policy changes).
    pub fn audit(&self, event: &str) {
        tracing::info!(target: "audit", "{event}");
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
                },
            );
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
