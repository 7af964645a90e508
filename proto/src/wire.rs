//! The agent ↔ collector protocol over WebSocket.
//!
//! Binary frames: one version byte, then the message in `postcard` (compact,
//! varint-encoded serde). Text frames carry the same messages as JSON, for
//! debugging only. Every message type is defined here and nowhere else.
//!
//! # Versions
//! The opening messages (`Enroll`, `Hello` and the collector's `Enrolled`,
//! `Welcome`, `Refused`) are sent in frames of version [`HANDSHAKE_VERSION`]
//! and their layout never changes: new needs go into `features`. `Hello`
//! lists the protocol versions the agent speaks; `Welcome` names the one the
//! collector picked, and every later frame of the session uses it. A
//! collector also serves agents of the previous version ([`v2`]: their
//! `Hello` arrives in a version-2 frame and the whole session stays in it).
//!
//! Delivery: the agent numbers its batches per boot (`boot_epoch`, `seq`),
//! keeps each on disk until the collector's [`CollectorMessage::Ack`] says it
//! is durably committed, and re-sends unacknowledged batches in order after a
//! reconnect. The collector drops batches it already committed.

pub mod v2;

use serde::{Deserialize, Serialize};

use crate::inventory::Inventory;
use crate::problem::Problem;
use crate::signed::SignedPolicy;
use crate::{BlockedAttempt, CounterSample, FlowRecord};

/// The newest protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 3;
/// The oldest version a collector of this build still serves.
pub const OLDEST_PROTOCOL_VERSION: u8 = 2;
/// Frame version of the opening messages, whose layout is frozen.
pub const HANDSHAKE_VERSION: u8 = 3;

/// Optional abilities an agent announces in `Hello`.
pub mod feature {
    /// Wants the inventory (its agency, units, subnets, the intranet).
    pub const INVENTORY: &str = "inventory";
    /// Wants signed policies and reports their state.
    pub const POLICY: &str = "policy";
    /// Fetches the named domain lists a policy refers to by content hash
    /// ([`AgentMessage::ListFetch`], [`CollectorMessage::ListChunk`]).
    pub const LISTS: &str = "lists";
}

/// Largest list chunk the collector sends in one message.
pub const LIST_CHUNK_BYTES: usize = 1 << 20;

/// Upper bound of one encoded message; larger frames are refused unread.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// WebSocket path on the collector.
pub const AGENT_PATH: &str = "/api/v1/agent";

/// An agent's reconnect backoff doubles up to this, then each wait is
/// jittered by up to ±25 %.
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 30_000;

/// The longest an agent waits between reconnect attempts, jitter included:
/// what the collector's outage detector gives a node behind a hub that came
/// back before calling it down.
pub const RECONNECT_WAIT_MAX_MS: u64 = RECONNECT_BACKOFF_MAX_MS * 5 / 4;

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
    /// What became of a policy version: sent as soon as it is decided.
    PolicyState(PolicyState),
    /// Send the stored (gzip) form of the list with this SHA-256 from
    /// `offset` on: a transfer resumes where the agent's partial file ends.
    /// Only to a collector that offered [`feature::LISTS`].
    ListFetch { sha256: String, offset: u64 },
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
    /// Protocol versions the agent speaks.
    pub protocols: Vec<u8>,
    /// [`feature`] names.
    pub features: Vec<String>,
    /// The inventory version the agent holds (0: none); the collector sends
    /// a newer one.
    pub inventory_version: u64,
    /// The policy version the agent enforces (0: none).
    pub policy_version: u64,
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
    /// Batches of this boot the agent's spool has dropped so far (its quota,
    /// corrupt files): a gap in `seq` is accepted only as large as what
    /// this count grew by since the collector last saw it.
    pub dropped_batches: u64,
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
    /// Version of the inventory the agent attributes with (0: none).
    pub inventory_version: u64,
    /// The name lane beside each capture ring that has one (none with pnet
    /// capture or from an agent built before it was reported). Last, so
    /// that an older agent's heartbeat is this one without it (see
    /// [`decode_agent`]).
    #[serde(default)]
    pub name_lanes: Vec<NameLaneHealth>,
    /// Which of its collector addresses the agent is on (None from an agent
    /// built before it was reported). Last, for the same reason.
    #[serde(default)]
    pub collector: Option<CollectorLink>,
    /// What the name-triggered refusals did (None: not enforcing, or an
    /// agent built before it was reported). Last, for the same reason.
    #[serde(default)]
    pub name_block: Option<NameBlockHealth>,
    /// What the IPFIX exporter sent (None: not exporting, or an older
    /// agent). Last, for the same reason.
    #[serde(default)]
    pub ipfix: Option<IpfixHealth>,
}

/// The name blocker's counters since the agent started: the kernel
/// entries that refuse connections by name, and the TCP resets beside them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameBlockHealth {
    /// Connections put in the kernel's refusal set.
    pub entries_added: u64,
    /// Kernel transactions that added them.
    pub batches: u64,
    /// Transactions (or clears) the kernel refused.
    pub failures: u64,
    /// Times the set was emptied (a policy change).
    pub clears: u64,
    /// Transactions that went through `nft` because netlink failed.
    pub nft_fallbacks: u64,
    /// Resets sent to either end of a refused TCP connection.
    pub resets_sent: u64,
    pub reset_errors: u64,
}

/// The IPFIX exporter's counters since the agent started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpfixHealth {
    pub messages: u64,
    pub records: u64,
    pub send_errors: u64,
    /// Records that could not be encoded.
    pub record_errors: u64,
    /// Interim records not exported because the running flows' table was
    /// full (their final record carries the whole flow instead).
    pub interim_skipped: u64,
}

/// The collector address an agent's link is on, of those it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectorLink {
    /// The address, normalized (`wss://host:port/path`).
    pub url: String,
    /// Its place in the agent's list: 0 is the most preferred.
    pub index: u32,
    /// Times since the agent started that it was welcomed by another
    /// address than the one before.
    pub failovers: u64,
}

/// What one interface's name lane did since the agent started: the
/// filtered socket beside the capture ring that refuses blocked names
/// within milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameLaneHealth {
    pub interface: String,
    /// Frames its filter passed (TLS handshakes, HTTP request lines, QUIC
    /// Initials).
    pub frames: u64,
    /// Connections it asked the kernel to refuse.
    pub blocks: u64,
    /// Refusals lost because the kernel side was behind (the ring's packet
    /// path then asks, later).
    pub dropped: u64,
    pub read_errors: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceHealth {
    pub name: String,
    pub frames: u64,
    pub kernel_drops: u64,
    pub queue_drops: u64,
}

/// What an agent did with a policy version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyState {
    pub version: u64,
    pub state: PolicyOutcome,
    /// Why it was rejected (validation), each with its place.
    pub problems: Vec<Problem>,
    /// Why it failed (the kernel's error, a bad signature, a replay).
    pub error: Option<String>,
    /// When the agent decided, Unix milliseconds.
    pub at_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyOutcome {
    /// In force (in the kernel where the node enforces, in its checks
    /// otherwise).
    Applied,
    /// Refused before anything changed: signature, replay, validation.
    Rejected,
    /// Valid, but the kernel refused it; the previous policy stays in force.
    Failed,
}

impl PolicyOutcome {
    pub fn name(self) -> &'static str {
        match self {
            PolicyOutcome::Applied => "applied",
            PolicyOutcome::Rejected => "rejected",
            PolicyOutcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CollectorMessage {
    /// Enrollment accepted: store the credential and use [`Hello`] from now on.
    Enrolled {
        node_id: String,
        credential: String,
        agency: String,
        /// The collector's policy signing key (Ed25519, 32 bytes): the agent
        /// pins it and accepts only policies it signed.
        policy_key: Vec<u8>,
    },
    /// Hello accepted.
    Welcome {
        node_id: String,
        agency: String,
        heartbeat_interval_ms: u64,
        /// The protocol version of the rest of the session.
        protocol: u8,
        /// The [`feature`]s the collector will serve.
        features: Vec<String>,
        /// As in `Enrolled` (an agent enrolled before signing existed pins it here).
        policy_key: Vec<u8>,
    },
    /// The batch is committed to storage (or was already): delete it.
    Ack { boot_epoch: u64, seq: u64 },
    /// The connection is refused or closed for this reason.
    Refused { reason: String },
    /// The node's view of the inventory (its agency; the intranet).
    Inventory(Inventory),
    /// The policy the node's agency must enforce.
    Policy(SignedPolicy),
    /// Bytes `offset..offset + data.len()` of a list's stored form (gzip of
    /// its canonical text, whose SHA-256 names it) of `total` bytes.
    ListChunk {
        sha256: String,
        offset: u64,
        total: u64,
        data: Vec<u8>,
    },
    /// The collector cannot send this list (unknown hash, bad offset).
    ListUnavailable { sha256: String, reason: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("protocol version {0} not supported (this side speaks {OLDEST_PROTOCOL_VERSION}-{PROTOCOL_VERSION})")]
    Version(u8),
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("{0} cannot be sent in protocol version 2")]
    NotInV2(&'static str),
}

/// Encode for a binary WebSocket frame of the current version.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    encode_as(PROTOCOL_VERSION, msg)
}

fn encode_as<T: Serialize>(version: u8, msg: &T) -> Vec<u8> {
    let out = vec![version];
    // Serializing plain data into a Vec cannot fail.
    match postcard::to_extend(msg, out) {
        Ok(v) => v,
        Err(_) => vec![version],
    }
}

fn decode_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, WireError> {
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

fn split(frame: &[u8]) -> Result<(u8, &[u8]), WireError> {
    if frame.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(frame.len()));
    }
    let (&version, body) = frame.split_first().ok_or(WireError::Empty)?;
    Ok((version, body))
}

/// Decode a binary frame of the current version.
pub fn decode<'a, T: Deserialize<'a>>(frame: &'a [u8]) -> Result<T, WireError> {
    let (version, body) = split(frame)?;
    if version != PROTOCOL_VERSION {
        return Err(WireError::Version(version));
    }
    decode_body(body)
}

/// Decode an agent's frame of any version this build serves, as the current
/// message, with the frame's version.
pub fn decode_agent(frame: &[u8]) -> Result<(u8, AgentMessage), WireError> {
    let (version, body) = split(frame)?;
    match version {
        PROTOCOL_VERSION => match decode_body(body) {
            Ok(m) => Ok((version, m)),
            Err(e) => decode_older_heartbeat(body).map(|m| (version, m)).ok_or(e),
        },
        2 => Ok((2, decode_body::<v2::AgentMessage>(body)?.into())),
        v => Err(WireError::Version(v)),
    }
}

/// A heartbeat of a version-3 agent built before `Health` grew its last
/// fields (`name_lanes`, `collector`, `name_block`, `ipfix`): postcard is positional and the
/// heartbeat ends where those fields would start, so the same bytes and an
/// empty list or None (one 0 byte each) are the message it meant.
fn decode_older_heartbeat(body: &[u8]) -> Option<AgentMessage> {
    /// `AgentMessage::Heartbeat`'s variant index, as postcard writes it.
    const HEARTBEAT: u8 = 3;
    if body.first() != Some(&HEARTBEAT) {
        return None;
    }
    /// Fields added to the end of `Health` since version 3 began.
    const ADDED: usize = 4;
    (1..=ADDED).find_map(|missing| {
        let padded = [body, &[0; ADDED][..missing]].concat();
        match decode_body(&padded) {
            Ok(m @ AgentMessage::Heartbeat(_)) => Some(m),
            _ => None,
        }
    })
}

/// Encode a collector message for a session of protocol `version`.
pub fn encode_collector(version: u8, msg: &CollectorMessage) -> Result<Vec<u8>, WireError> {
    match version {
        PROTOCOL_VERSION => Ok(encode(msg)),
        2 => Ok(encode_as(2, &v2::CollectorMessage::try_from(msg)?)),
        v => Err(WireError::Version(v)),
    }
}

/// Decode a collector frame on the agent: the current version, or a
/// version-2 `Refused` (an older collector saying it does not speak ours).
pub fn decode_collector(frame: &[u8]) -> Result<CollectorMessage, WireError> {
    let (version, body) = split(frame)?;
    match version {
        PROTOCOL_VERSION => decode_body(body),
        2 => match decode_body::<v2::CollectorMessage>(body)? {
            v2::CollectorMessage::Refused { reason } => Ok(CollectorMessage::Refused { reason }),
            _ => Err(WireError::Version(2)),
        },
        v => Err(WireError::Version(v)),
    }
}

/// A batch on its own, tagged with the record schema version: what the
/// agent's spool keeps (each session encodes it again for its protocol).
pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    encode(batch)
}

/// A spooled batch: this version's, or a version-2 batch frame (what the
/// previous release's spool files hold).
pub fn decode_spooled_batch(bytes: &[u8]) -> Result<Batch, WireError> {
    let (version, body) = split(bytes)?;
    match version {
        PROTOCOL_VERSION => decode_body(body),
        2 => v2::decode_batch(bytes),
        v => Err(WireError::Version(v)),
    }
}

/// Decode a JSON text frame (debug transport, current version).
pub fn decode_json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, WireError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(text.len()));
    }
    serde_json::from_str(text).map_err(|e| WireError::Malformed(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
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
            dropped_batches: 0,
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
        assert_eq!(
            decode_agent(&[1, 0]).map(|m| m.0),
            Err(WireError::Version(1))
        );
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
            let _ = decode_agent(&good[..n]);
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode::<AgentMessage>(&trailing).is_err());
    }

    #[test]
    fn name_lane_counters_travel_and_older_heartbeats_still_read() {
        let lanes = vec![NameLaneHealth {
            interface: "lan0".into(),
            frames: 120,
            blocks: 3,
            dropped: 1,
            read_errors: 0,
        }];
        let hb = |name_lanes: Vec<NameLaneHealth>| {
            AgentMessage::Heartbeat(Heartbeat {
                sent_ms: 9,
                health: Health {
                    uptime_secs: 60,
                    inventory_version: 4,
                    name_lanes,
                    ..Health::default()
                },
            })
        };
        let frame = encode(&hb(lanes.clone()));
        assert_eq!(decode_agent(&frame).unwrap(), (3, hb(lanes)));
        // An agent built before the field: its heartbeat ends where the
        // list (here empty: one 0 byte) starts.
        let mut older = encode(&hb(Vec::new()));
        assert_eq!(older.pop(), Some(0));
        assert!(decode::<AgentMessage>(&older).is_err());
        assert_eq!(decode_agent(&older).unwrap(), (3, hb(Vec::new())));
        // Only a heartbeat is read that way; a short batch stays an error.
        let batch = encode(&AgentMessage::Batch(Batch {
            boot_epoch: 1,
            seq: 1,
            sealed_ms: 1,
            flows: vec![],
            counters: vec![],
            blocked: vec![],
            dropped_records: 0,
            dropped_batches: 0,
        }));
        assert!(decode_agent(&batch[..batch.len() - 1]).is_err());
        // JSON without the field (text frames of an older agent).
        let mut v = serde_json::to_value(Health::default()).unwrap();
        v.as_object_mut().unwrap().remove("name_lanes");
        let h: Health = serde_json::from_value(v).unwrap();
        assert!(h.name_lanes.is_empty());
    }

    #[test]
    fn collector_link_travels_and_heartbeats_without_it_still_read() {
        let hb = |collector: Option<CollectorLink>| {
            AgentMessage::Heartbeat(Heartbeat {
                sent_ms: 9,
                health: Health {
                    uptime_secs: 60,
                    inventory_version: 4,
                    collector,
                    ..Health::default()
                },
            })
        };
        let on_b = Some(CollectorLink {
            url: "wss://b:9001/api/v1/agent".into(),
            index: 1,
            failovers: 2,
        });
        let frame = encode(&hb(on_b.clone()));
        assert_eq!(decode_agent(&frame).unwrap(), (3, hb(on_b)));
        // An agent with name lanes but before `collector`: one byte short.
        let mut older = encode(&hb(None));
        assert_eq!(older.pop(), Some(0));
        assert_eq!(decode_agent(&older).unwrap(), (3, hb(None)));
        // One before both: two bytes short.
        assert_eq!(older.pop(), Some(0));
        assert!(decode::<AgentMessage>(&older).is_err());
        assert_eq!(decode_agent(&older).unwrap(), (3, hb(None)));
        // JSON without the field.
        let mut v = serde_json::to_value(Health::default()).unwrap();
        v.as_object_mut().unwrap().remove("collector");
        let h: Health = serde_json::from_value(v).unwrap();
        assert_eq!(h.collector, None);
    }

    #[test]
    fn name_block_and_ipfix_counters_travel_and_heartbeats_without_them_still_read() {
        let hb = |name_block: Option<NameBlockHealth>, ipfix: Option<IpfixHealth>| {
            AgentMessage::Heartbeat(Heartbeat {
                sent_ms: 9,
                health: Health {
                    uptime_secs: 60,
                    inventory_version: 4,
                    name_block,
                    ipfix,
                    ..Health::default()
                },
            })
        };
        let blocks = Some(NameBlockHealth {
            entries_added: 7,
            batches: 5,
            failures: 1,
            clears: 2,
            nft_fallbacks: 1,
            resets_sent: 12,
            reset_errors: 3,
        });
        let export = Some(IpfixHealth {
            messages: 40,
            records: 900,
            send_errors: 2,
            record_errors: 1,
            interim_skipped: 6,
        });
        let full = hb(blocks.clone(), export.clone());
        assert_eq!(decode_agent(&encode(&full)).unwrap(), (3, full));
        // Each build since version 3 began ends one trailing field earlier:
        // `ipfix`, `name_block`, `collector`, `name_lanes`.
        let mut older = encode(&hb(None, None));
        for missing in 1..=4 {
            assert_eq!(older.pop(), Some(0), "{missing} short");
            assert!(decode::<AgentMessage>(&older).is_err());
            assert_eq!(decode_agent(&older).unwrap(), (3, hb(None, None)));
        }
        // One more is not a heartbeat of any build (that byte was
        // `inventory_version`'s 4, not a missing field).
        assert_eq!(older.pop(), Some(4));
        assert!(decode_agent(&older).is_err());
        // A build with the name blocker's counters but before `ipfix`.
        let mut mid = encode(&hb(blocks.clone(), None));
        assert_eq!(mid.pop(), Some(0));
        assert_eq!(decode_agent(&mid).unwrap(), (3, hb(blocks, None)));
        // JSON without the fields.
        let mut v = serde_json::to_value(Health::default()).unwrap();
        v.as_object_mut().unwrap().remove("name_block");
        v.as_object_mut().unwrap().remove("ipfix");
        let h: Health = serde_json::from_value(v).unwrap();
        assert_eq!((h.name_block, h.ipfix), (None, None));
    }

    /// The opening messages' layout is frozen: these bytes are what every
    /// later version must still read (see the module docs).
    #[test]
    fn handshake_layout_is_frozen() {
        let hello = AgentMessage::Hello(Hello {
            node_id: "n".into(),
            credential: "c".into(),
            agent_version: "v".into(),
            hostname: "h".into(),
            boot_epoch: 5,
            protocols: vec![2, 3],
            features: vec!["inventory".into()],
            inventory_version: 7,
            policy_version: 9,
        });
        assert_eq!(
            encode(&hello),
            [
                3, 1, 1, b'n', 1, b'c', 1, b'v', 1, b'h', 5, 2, 2, 3, 1, 9, b'i', b'n', b'v', b'e',
                b'n', b't', b'o', b'r', b'y', 7, 9
            ]
        );
        let welcome = CollectorMessage::Welcome {
            node_id: "n".into(),
            agency: "a".into(),
            heartbeat_interval_ms: 2,
            protocol: 3,
            features: vec![],
            policy_key: vec![1],
        };
        assert_eq!(encode(&welcome), [3, 1, 1, b'n', 1, b'a', 2, 3, 0, 1, 1]);
    }

    /// Every collector message survives the binary encoding, empty fields
    /// included (postcard is positional: a field skipped when empty would
    /// shift everything after it).
    #[test]
    fn collector_messages_round_trip() {
        let inv =
            Inventory::parse("[[agencies]]\ncode = \"a\"\n[[nodes]]\nid = \"n\"\nagency = \"a\"\n")
                .unwrap();
        for m in [
            CollectorMessage::Inventory(inv),
            CollectorMessage::Inventory(Inventory::default()),
            CollectorMessage::Policy(SignedPolicy {
                policy_json: "{}".into(),
                signature: vec![1; 64],
                key_id: "k".into(),
            }),
        ] {
            assert_eq!(decode_collector(&encode(&m)).unwrap(), m);
        }
    }

    #[test]
    fn v2_sessions_are_served() {
        let old = v2::AgentMessage::Hello(v2::Hello {
            node_id: "n".into(),
            credential: "c".into(),
            agent_version: "0.1.0".into(),
            hostname: "h".into(),
            boot_epoch: 5,
        });
        let frame = encode_as(2, &old);
        let (version, msg) = decode_agent(&frame).unwrap();
        assert_eq!(version, 2);
        match msg {
            AgentMessage::Hello(h) => {
                assert_eq!(h.protocols, vec![2]);
                assert!(h.features.is_empty());
                assert_eq!(h.boot_epoch, 5);
            }
            other => panic!("{other:?}"),
        }
        let ack = encode_collector(
            2,
            &CollectorMessage::Ack {
                boot_epoch: 1,
                seq: 2,
            },
        )
        .unwrap();
        assert_eq!(ack, [2, 2, 1, 2]);
        assert!(encode_collector(2, &CollectorMessage::Inventory(Inventory::default())).is_err());
        let refused = encode_as(
            2,
            &v2::CollectorMessage::Refused {
                reason: "old".into(),
            },
        );
        assert_eq!(
            decode_collector(&refused),
            Ok(CollectorMessage::Refused {
                reason: "old".into()
            })
        );
    }
}
