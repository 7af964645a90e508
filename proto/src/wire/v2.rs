//! Protocol version 2, frozen: what agents of the previous release send and
//! expect, and what their spool files (`SMPLSPL1`) hold. Never edit these
//! types; they are converted to and from the current ones at the edge.
//!
//! Records (`FlowRecord`, `CounterSample`, `BlockedAttempt`) have the same
//! layout in both versions and are shared; the batch around them is frozen
//! here (version 3 added `dropped_batches`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentMessage {
    Enroll(super::Enroll),
    Hello(Hello),
    Batch(Batch),
    Heartbeat(Heartbeat),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub boot_epoch: u64,
    pub seq: u64,
    pub sealed_ms: u64,
    pub flows: Vec<crate::FlowRecord>,
    pub counters: Vec<crate::CounterSample>,
    pub blocked: Vec<crate::BlockedAttempt>,
    pub dropped_records: u64,
}

impl From<Batch> for super::Batch {
    /// A version-2 agent does not say what its spool dropped: 0, and the
    /// collector does not hold its sequence gaps against it.
    fn from(b: Batch) -> Self {
        super::Batch {
            boot_epoch: b.boot_epoch,
            seq: b.seq,
            sealed_ms: b.sealed_ms,
            flows: b.flows,
            counters: b.counters,
            blocked: b.blocked,
            dropped_records: b.dropped_records,
            dropped_batches: 0,
        }
    }
}

impl From<super::Batch> for Batch {
    fn from(b: super::Batch) -> Self {
        Batch {
            boot_epoch: b.boot_epoch,
            seq: b.seq,
            sealed_ms: b.sealed_ms,
            flows: b.flows,
            counters: b.counters,
            blocked: b.blocked,
            dropped_records: b.dropped_records,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub node_id: String,
    pub credential: String,
    pub agent_version: String,
    pub hostname: String,
    pub boot_epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub sent_ms: u64,
    pub health: Health,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub agent_version: String,
    pub uptime_secs: u64,
    pub cpu_percent: f32,
    pub rss_bytes: u64,
    pub interfaces: Vec<super::InterfaceHealth>,
    pub packets: u64,
    pub bytes: u64,
    pub decode_errors: u64,
    pub active_flows: u64,
    pub flows_evicted: u64,
    pub spool_batches: u64,
    pub spool_bytes: u64,
    pub spool_quota_bytes: u64,
    pub spool_dropped_records: u64,
    pub policy_version: u64,
    pub policy_failures: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CollectorMessage {
    Enrolled {
        node_id: String,
        credential: String,
        agency: String,
    },
    Welcome {
        node_id: String,
        agency: String,
        heartbeat_interval_ms: u64,
    },
    Ack {
        boot_epoch: u64,
        seq: u64,
    },
    Refused {
        reason: String,
    },
}

impl From<AgentMessage> for super::AgentMessage {
    fn from(m: AgentMessage) -> Self {
        match m {
            AgentMessage::Enroll(e) => super::AgentMessage::Enroll(e),
            AgentMessage::Hello(h) => super::AgentMessage::Hello(super::Hello {
                node_id: h.node_id,
                credential: h.credential,
                agent_version: h.agent_version,
                hostname: h.hostname,
                boot_epoch: h.boot_epoch,
                protocols: vec![2],
                features: Vec::new(),
                inventory_version: 0,
                policy_version: 0,
            }),
            AgentMessage::Batch(b) => super::AgentMessage::Batch(b.into()),
            AgentMessage::Heartbeat(hb) => super::AgentMessage::Heartbeat(super::Heartbeat {
                sent_ms: hb.sent_ms,
                health: hb.health.into(),
            }),
        }
    }
}

impl From<Health> for super::Health {
    fn from(h: Health) -> Self {
        super::Health {
            agent_version: h.agent_version,
            uptime_secs: h.uptime_secs,
            cpu_percent: h.cpu_percent,
            rss_bytes: h.rss_bytes,
            interfaces: h.interfaces,
            packets: h.packets,
            bytes: h.bytes,
            decode_errors: h.decode_errors,
            active_flows: h.active_flows,
            flows_evicted: h.flows_evicted,
            spool_batches: h.spool_batches,
            spool_bytes: h.spool_bytes,
            spool_quota_bytes: h.spool_quota_bytes,
            spool_dropped_records: h.spool_dropped_records,
            policy_version: h.policy_version,
            policy_failures: h.policy_failures,
            inventory_version: 0,
            name_lanes: Vec::new(),
            collector: None,
            name_block: None,
            ipfix: None,
        }
    }
}

impl TryFrom<&super::CollectorMessage> for CollectorMessage {
    type Error = super::WireError;

    fn try_from(m: &super::CollectorMessage) -> Result<Self, Self::Error> {
        use super::CollectorMessage as C;
        Ok(match m {
            C::Enrolled {
                node_id,
                credential,
                agency,
                ..
            } => CollectorMessage::Enrolled {
                node_id: node_id.clone(),
                credential: credential.clone(),
                agency: agency.clone(),
            },
            C::Welcome {
                node_id,
                agency,
                heartbeat_interval_ms,
                ..
            } => CollectorMessage::Welcome {
                node_id: node_id.clone(),
                agency: agency.clone(),
                heartbeat_interval_ms: *heartbeat_interval_ms,
            },
            C::Ack { boot_epoch, seq } => CollectorMessage::Ack {
                boot_epoch: *boot_epoch,
                seq: *seq,
            },
            C::Refused { reason } => CollectorMessage::Refused {
                reason: reason.clone(),
            },
            C::Inventory(_) => return Err(super::WireError::NotInV2("Inventory")),
            C::Policy(_) => return Err(super::WireError::NotInV2("Policy")),
            C::ListChunk { .. } => return Err(super::WireError::NotInV2("ListChunk")),
            C::ListUnavailable { .. } => return Err(super::WireError::NotInV2("ListUnavailable")),
        })
    }
}

/// A version-2 frame, as the previous release's agent sends it (tests and
/// tools that speak for an old agent).
pub fn encode(msg: &AgentMessage) -> Vec<u8> {
    super::encode_as(2, msg)
}

/// A collector message in a version-2 frame, as an old agent reads it.
pub fn decode_collector(frame: &[u8]) -> Result<CollectorMessage, super::WireError> {
    let (version, body) = super::split(frame)?;
    if version != 2 {
        return Err(super::WireError::Version(version));
    }
    super::decode_body(body)
}

/// The batch inside a version-2 frame (a spool file of the previous release).
pub fn decode_batch(frame: &[u8]) -> Result<super::Batch, super::WireError> {
    let (version, body) = super::split(frame)?;
    if version != 2 {
        return Err(super::WireError::Version(version));
    }
    match super::decode_body::<AgentMessage>(body)? {
        AgentMessage::Batch(b) => Ok(b.into()),
        _ => Err(super::WireError::Malformed(
            "a spool frame that is not a batch".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spool file the previous release's agent wrote (tests/fixtures/spool-v1):
    /// a 64-byte header, then the version-2 frame exactly as it went on the wire.
    #[test]
    fn frames_of_the_previous_release_decode() {
        let file = include_bytes!(
            "../../../tests/fixtures/spool-v1/18edc101182b775e-0000000000000008.batch"
        );
        let batch = decode_batch(&file[64..]).expect("v2 batch");
        assert_eq!(batch.seq, 8);
        assert!(!batch.flows.is_empty());
        assert!(batch.flows.iter().all(|f| f.agency == "diskominfo"));
        let (_, current) = super::super::decode_agent(&file[64..]).expect("as current");
        assert!(matches!(current, super::super::AgentMessage::Batch(_)));
    }
}
