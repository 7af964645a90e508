//! The agent ↔ collector protocol over WebSocket.
//!
//! Binary frames: one version byte, then the message in `postcard` (compact,
//! varint-encoded serde). Text frames carry the same messages as JSON, for
//! debugging only. Every message type is defined here and nowhere else.
//!
//! Delivery: the agent numbers its batches per boot (`boot_epoch`, `seq`),
//! keeps each on disk until the collector's [`CollectorMessage::Ack`] says it
//! is durably committed, and re-sends unacknowledged batches in order after a
//! reconnect. The collector drops batches it already committed.

use serde::{Deserialize, Serialize};

use crate::{BlockedAttempt, CounterSample, FlowRecord};

/// Bumped on any incompatible change; both sides refuse other versions.
pub const PROTOCOL_VERSION: u8 = 2;

/// Upper bound of one encoded message; larger frames are refused unread.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// WebSocket path on the collector.
pub const AGENT_PATH: &str = "/api/v1/agent";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentMessage {
    /// First message of a node that has no credential yet: trade the one-time
    /// enrollment token for a credential.
    Enroll(Enroll),
    /// First message of every later connection.
    Hello(Hello),
    /// Records of one interval, kept on the agent's disk until acknowledged.
    Batch(Batch),
    /// Liveness and health, every heartbeat interval.
    Heartbeat(Heartbeat),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enroll {
    pub node_id: String,
    pub token: String,
    pub agent_version: String,
    pub hostname: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub node_id: String,
    /// Secret issued at enrollment.
    pub credential: String,
    pub agent_version: String,
    pub hostname: String,
    /// Identifies this run of the agent; batch sequence numbers restart per boot.
    pub boot_epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The boot that produced the batch (spooled batches of an earlier boot
    /// keep theirs).
    pub boot_epoch: u64,
    /// 1, 2, 3… per boot; gaps only where the spool quota dropped batches.
    pub seq: u64,
    /// When the batch was sealed, Unix milliseconds.
    pub sealed_ms: u64,
    pub flows: Vec<FlowRecord>,
    pub counters: Vec<CounterSample>,
    /// Blocked attempts seen in the interval (policy enforcement).
    pub blocked: Vec<BlockedAttempt>,
    /// Records the agent had to drop (spool quota) since the previous batch.
    pub dropped_records: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Agent clock, Unix milliseconds (the collector derives clock skew).
    pub sent_ms: u64,
    pub health: Health,
}

/// The agent's own state, for the NOC's health view and alerts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub agent_version: String,
    pub uptime_secs: u64,
    /// Process CPU use over the last interval, percent of one core.
    pub cpu_percent: f32,
    pub rss_bytes: u64,
    pub interfaces: Vec<InterfaceHealth>,
    pub packets: u64,
    pub bytes: u64,
    pub decode_errors: u64,
    pub active_flows: u64,
    pub flows_evicted: u64,
    pub spool_batches: u64,
    pub spool_bytes: u64,
    pub spool_quota_bytes: u64,
    /// Records dropped at the spool quota since start.
    pub spool_dropped_records: u64,
    /// Version of the enforcement policy in force (0: none).
    pub policy_version: u64,
    /// Policies (or schedule changes) that failed to apply since start.
    pub policy_failures: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceHealth {
    pub name: String,
    pub frames: u64,
    pub kernel_drops: u64,
    pub queue_drops: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CollectorMessage {
    /// Enrollment accepted: store the credential and use [`Hello`] from now on.
    Enrolled {
        node_id: String,
        credential: String,
        agency: String,
    },
    /// Hello accepted.
    Welcome {
        node_id: String,
        agency: String,
        heartbeat_interval_ms: u64,
    },
    /// The batch is committed to storage (or was already): delete it.
    Ack { boot_epoch: u64, seq: u64 },
    /// The connection is refused or closed for this reason.
    Refused { reason: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("protocol version {0} not supported (this side speaks {PROTOCOL_VERSION})")]
    Version(u8),
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Encode for a binary WebSocket frame.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let out = vec![PROTOCOL_VERSION];
    // Serializing plain data into a Vec cannot fail.
    match postcard::to_extend(msg, out) {
        Ok(v) => v,
        Err(_) => vec![PROTOCOL_VERSION],
    }
}

/// Decode a binary WebSocket frame.
pub fn decode<'a, T: Deserialize<'a>>(frame: &'a [u8]) -> Result<T, WireError> {
    if frame.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(frame.len()));
    }
    let (&version, body) = frame.split_first().ok_or(WireError::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(WireError::Version(version));
    }
    let (msg, rest) =
        postcard::take_from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(msg)
}

/// Decode a JSON text frame (debug transport).
pub fn decode_json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, WireError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(text.len()));
    }
    serde_json::from_str(text).map_err(|e| WireError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EndReason, RecordKind, SiteSource, TrafficScope};

    pub(crate) fn sample_record() -> FlowRecord {
        FlowRecord {
            flow_id: 123_456,
            kind: RecordKind::Final,
            end_reason: EndReason::Fin,
            proto: "tcp".into(),
            src_ip: "10.10.1.10".parse().unwrap(),
            src_port: Some(51234),
            dst_ip: "203.0.113.10".parse().unwrap(),
            dst_port: Some(443),
            vlan: None,
            vlan_inner: None,
            packets_up: 14,
            bytes_up: 1800,
            packets_down: 22,
            bytes_down: 25_000,
            first_seen: 1_764_236_140_458_241_000,
            last_seen: 1_764_236_141_458_241_000,
            tcp_flags_up: Some(0x1b),
            tcp_flags_down: Some(0x1b),
            sni: Some("portal.example.go.id".into()),
            http_host: None,
            dns_query: None,
            site: Some("portal.example.go.id".into()),
            site_source: Some(SiteSource::Sni),
            agency: "diskominfo".into(),
            unit: "sekretariat".into(),
            scope: TrafficScope::Internet,
        }
    }

    #[test]
    fn batch_round_trip_and_size() {
        let batch = Batch {
            boot_epoch: 7,
            seq: 42,
            sealed_ms: 1_764_236_141_000,
            flows: vec![sample_record(); 100],
            counters: vec![],
            blocked: vec![crate::BlockedAttempt {
                first_seen: 1_764_236_140_000_000_000,
                last_seen: 1_764_236_140_500_000_000,
                client: "10.1.1.20".parse().unwrap(),
                agency: "diskominfo".into(),
                unit: "sekretariat".into(),
                method: crate::BlockMethod::Sni,
                target: "slot88.example".into(),
                server: Some("198.51.100.7".parse().unwrap()),
                port: Some(443),
                proto: "tcp".into(),
                rule: "slot88.example".into(),
                list: "judi".into(),
                attempts: 3,
            }],
            dropped_records: 0,
        };
        let bytes = encode(&AgentMessage::Batch(batch.clone()));
        let back: AgentMessage = decode(&bytes).unwrap();
        assert_eq!(back, AgentMessage::Batch(batch));
        let per_record = bytes.len() / 100;
        let json = serde_json::to_string(&sample_record()).unwrap().len();
        assert!(
            per_record * 4 < json,
            "binary {per_record} B/record vs JSON {json} B"
        );
    }

    #[test]
    fn json_keeps_readable_fields() {
        let v = serde_json::to_value(sample_record()).unwrap();
        assert_eq!(v["src_ip"], "10.10.1.10");
        assert_eq!(v["first_seen"], "2025-11-27T09:35:40.458241Z");
        let back: FlowRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, sample_record());
    }

    #[test]
    fn hostile_frames_are_errors() {
        assert_eq!(decode::<AgentMessage>(&[]), Err(WireError::Empty));
        assert_eq!(decode::<AgentMessage>(&[9, 0]), Err(WireError::Version(9)));
        assert!(decode::<AgentMessage>(&[PROTOCOL_VERSION, 200, 1, 2]).is_err());
        // A length prefix claiming gigabytes must not allocate them.
        let mut evil = vec![PROTOCOL_VERSION, 2];
        evil.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decode::<AgentMessage>(&evil).is_err());
        let good = encode(&AgentMessage::Heartbeat(Heartbeat {
            sent_ms: 1,
            health: Health::default(),
        }));
        for n in 0..good.len() {
            let _ = decode::<AgentMessage>(&good[..n]);
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode::<AgentMessage>(&trailing).is_err());
    }
}
