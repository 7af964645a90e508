//! Per-second traffic counters per agency/unit and scope.

use serde::{Deserialize, Serialize};

use crate::TrafficScope;

/// Traffic of one unit in one second. "in" is towards the agency (download),
/// "out" is from the agency (upload); bytes are IP-layer bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSample {
    /// Unix seconds (packet time).
    pub ts: u64,
    pub agency: String,
    pub unit: String,
    pub scope: TrafficScope,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}
