//! Per node: liveness as the outage detector sees it, heartbeat age, and
//! the agent's health as its last heartbeat reported it. Labels are the
//! node's id and agency (inventory codes) and fixed words — never the
//! node's or a client's address.

use super::text::{Exposition, Family, Kind};
use crate::state::AppState;

const STATES: [&str; 5] = ["up", "down", "unreachable", "flapping", "unknown"];

const UP: Family = Family {
    name: "simpul_node_up",
    kind: Kind::Gauge,
    help: "1 when the outage detector sees the node up (heartbeats arriving), 0 otherwise.",
};
const STATE: Family = Family {
    name: "simpul_node_state",
    kind: Kind::Gauge,
    help: "The node's liveness, one series per state (up, down, unreachable: behind a parent that is down, flapping, unknown: not heard since the collector started); 1 for the state it is in.",
};
const HEARTBEAT_AGE: Family = Family {
    name: "simpul_node_heartbeat_age_seconds",
    kind: Kind::Gauge,
    help: "Seconds since the node's last heartbeat reached the collector (absent until one has since the collector started).",
};
const CONNECTED: Family = Family {
    name: "simpul_agent_connected",
    kind: Kind::Gauge,
    help: "1 while the node's agent holds a session with the collector, 0 after it ended (nodes seen since the collector started).",
};
const INFO: Family = Family {
    name: "simpul_agent_info",
    kind: Kind::Gauge,
    help: "Always 1: the agent version the node reported in its last heartbeat.",
};
const CAPTURE_FRAMES: Family = Family {
    name: "simpul_agent_capture_frames_total",
    kind: Kind::Counter,
    help: "Frames the agent's capture saw, all interfaces, since the agent started.",
};
const CAPTURE_DROPS: Family = Family {
    name: "simpul_agent_capture_drops_total",
    kind: Kind::Counter,
    help: "Frames the capture lost since the agent started, all interfaces, by where: kernel (ring full) or queue (the agent's own queue full).",
};
const DECODE_ERRORS: Family = Family {
    name: "simpul_agent_decode_errors_total",
    kind: Kind::Counter,
    help: "Packets the agent could not decode since it started.",
};
const ACTIVE_FLOWS: Family = Family {
    name: "simpul_agent_active_flows",
    kind: Kind::Gauge,
    help: "Flows the agent is tracking now.",
};
const SPOOL_BYTES: Family = Family {
    name: "simpul_agent_spool_bytes",
    kind: Kind::Gauge,
    help: "Bytes of batches waiting in the agent's spool (not yet acknowledged by the collector).",
};
const SPOOL_QUOTA: Family = Family {
    name: "simpul_agent_spool_quota_bytes",
    kind: Kind::Gauge,
    help: "The agent's spool quota; at the quota it drops the oldest records.",
};
const SPOOL_BATCHES: Family = Family {
    name: "simpul_agent_spool_batches",
    kind: Kind::Gauge,
    help: "Batches waiting in the agent's spool.",
};
const SPOOL_DROPPED: Family = Family {
    name: "simpul_agent_spool_dropped_records_total",
    kind: Kind::Counter,
    help: "Records the agent dropped at its spool quota since it started.",
};
const POLICY_VERSION: Family = Family {
    name: "simpul_agent_policy_version",
    kind: Kind::Gauge,
    help: "Version of the enforcement policy in force on the node (0: none); compare with simpul_agency_policy_version.",
};
const POLICY_FAILURES: Family = Family {
    name: "simpul_agent_policy_failures_total",
    kind: Kind::Counter,
    help: "Policies or schedule changes the agent failed to apply since it started.",
};
const CPU: Family = Family {
    name: "simpul_agent_cpu_ratio",
    kind: Kind::Gauge,
    help: "The agent process's CPU use over its last interval, in cores (1 = one core fully busy).",
};
const RSS: Family = Family {
    name: "simpul_agent_resident_memory_bytes",
    kind: Kind::Gauge,
    help: "The agent process's resident memory.",
};
const UPTIME: Family = Family {
    name: "simpul_agent_uptime_seconds",
    kind: Kind::Gauge,
    help: "Seconds since the agent process started.",
};
const SKEW: Family = Family {
    name: "simpul_agent_clock_skew_seconds",
    kind: Kind::Gauge,
    help: "The agent's clock minus the collector's at its last heartbeat.",
};

const NAME_LANES: Family = Family {
    name: "simpul_agent_name_lanes",
    kind: Kind::Gauge,
    help: "Capture interfaces with a name lane (the filtered socket that refuses blocked names within milliseconds); 0 with pnet capture or an agent that does not report it.",
};
const NAME_LANE_FRAMES: Family = Family {
    name: "simpul_agent_name_lane_frames_total",
    kind: Kind::Counter,
    help: "Frames the name lanes' filters passed (TLS handshakes, HTTP request lines, QUIC Initials), all interfaces, since the agent started.",
};
const NAME_LANE_BLOCKS: Family = Family {
    name: "simpul_agent_name_lane_blocks_total",
    kind: Kind::Counter,
    help: "Connections the name lanes asked the kernel to refuse since the agent started.",
};
const NAME_LANE_LOST: Family = Family {
    name: "simpul_agent_name_lane_lost_total",
    kind: Kind::Counter,
    help: "Name-lane work lost since the agent started, by what: dropped (a refusal not handed on, the kernel side behind; the capture's packet path asks later) or read_error (the lane's socket failed a read).",
};

const COLLECTOR_INDEX: Family = Family {
    name: "simpul_agent_collector_index",
    kind: Kind::Gauge,
    help: "Which of its collector addresses ([collector] urls) the agent is on: 0 is the first, most preferred (absent from an agent that does not report it).",
};
const COLLECTOR_FAILOVERS: Family = Family {
    name: "simpul_agent_collector_failovers_total",
    kind: Kind::Counter,
    help: "Times since the agent started that another collector address welcomed it than the one before.",
};

const NAME_BLOCK_ENTRIES: Family = Family {
    name: "simpul_agent_name_block_entries_total",
    kind: Kind::Counter,
    help: "Connections the agent put in the kernel's refusal set (blocked by name) since it started; absent from an agent not enforcing or not reporting it.",
};
const NAME_BLOCK_BATCHES: Family = Family {
    name: "simpul_agent_name_block_batches_total",
    kind: Kind::Counter,
    help: "Kernel transactions that added name refusals since the agent started.",
};
const NAME_BLOCK_NFT_FALLBACKS: Family = Family {
    name: "simpul_agent_name_block_nft_fallbacks_total",
    kind: Kind::Counter,
    help: "Name-refusal transactions that went through the nft command because netlink failed, since the agent started.",
};
const NAME_BLOCK_CLEARS: Family = Family {
    name: "simpul_agent_name_block_clears_total",
    kind: Kind::Counter,
    help: "Times the agent emptied its name-refusal set (a policy change) since it started.",
};
const NAME_BLOCK_RESETS: Family = Family {
    name: "simpul_agent_name_block_resets_total",
    kind: Kind::Counter,
    help: "TCP resets sent to either end of a connection refused by name, since the agent started.",
};
const NAME_BLOCK_ERRORS: Family = Family {
    name: "simpul_agent_name_block_errors_total",
    kind: Kind::Counter,
    help: "Name-refusal failures since the agent started, by what: kernel (a transaction or clear the kernel refused) or reset (a reset that could not be sent).",
};

const IPFIX_MESSAGES: Family = Family {
    name: "simpul_agent_ipfix_messages_total",
    kind: Kind::Counter,
    help: "IPFIX messages the agent exported ([export.ipfix]) since it started; absent from an agent not exporting or not reporting it.",
};
const IPFIX_RECORDS: Family = Family {
    name: "simpul_agent_ipfix_records_total",
    kind: Kind::Counter,
    help: "Flow records the agent exported as IPFIX since it started.",
};
const IPFIX_ERRORS: Family = Family {
    name: "simpul_agent_ipfix_errors_total",
    kind: Kind::Counter,
    help: "IPFIX export failures since the agent started, by what: send (a message the socket refused) or record (a flow that could not be encoded).",
};
const IPFIX_INTERIM_SKIPPED: Family = Family {
    name: "simpul_agent_ipfix_interim_skipped_total",
    kind: Kind::Counter,
    help: "Interim records not exported as IPFIX because the running flows' table was full (the final record carries the whole flow), since the agent started.",
};

/// Longest agent version kept as a label value (agents send it).
const MAX_VERSION: usize = 64;

pub fn write(e: &mut Exposition, s: &AppState, now_ms: u64) {
    liveness(e, s, now_ms);
    health(e, s);
}

fn liveness(e: &mut Exposition, s: &AppState, now_ms: u64) {
    let mut views = s.outage.nodes();
    // Allocation conditions are recorded under "agency:CODE" pseudo-nodes.
    views.retain(|v| !v.node_id.starts_with("agency:"));
    views.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    e.family(&UP);
    e.family(&STATE);
    e.family(&HEARTBEAT_AGE);
    for v in &views {
        let l = [("node", v.node_id.as_str()), ("agency", v.agency.as_str())];
        e.family(&UP).int(&l, u64::from(v.status == "up"));
        for st in STATES {
            let l = [l[0], l[1], ("state", st)];
            e.family(&STATE).int(&l, u64::from(v.status == st));
        }
        if let Some(at) = v.last_heartbeat_ms {
            let age = now_ms.saturating_sub(at) as f64 / 1000.0;
            e.family(&HEARTBEAT_AGE).sample(&l, age);
        }
    }
}

fn health(e: &mut Exposition, s: &AppState) {
    let mut nodes: Vec<_> = s.nodes.snapshot().into_iter().collect();
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    for f in [
        &CONNECTED,
        &INFO,
        &CAPTURE_FRAMES,
        &CAPTURE_DROPS,
        &DECODE_ERRORS,
        &ACTIVE_FLOWS,
        &SPOOL_BYTES,
        &SPOOL_QUOTA,
        &SPOOL_BATCHES,
        &SPOOL_DROPPED,
        &POLICY_VERSION,
        &POLICY_FAILURES,
        &CPU,
        &RSS,
        &UPTIME,
        &SKEW,
        &NAME_LANES,
        &NAME_LANE_FRAMES,
        &NAME_LANE_BLOCKS,
        &NAME_LANE_LOST,
        &COLLECTOR_INDEX,
        &COLLECTOR_FAILOVERS,
        &NAME_BLOCK_ENTRIES,
        &NAME_BLOCK_BATCHES,
        &NAME_BLOCK_NFT_FALLBACKS,
        &NAME_BLOCK_CLEARS,
        &NAME_BLOCK_RESETS,
        &NAME_BLOCK_ERRORS,
        &IPFIX_MESSAGES,
        &IPFIX_RECORDS,
        &IPFIX_ERRORS,
        &IPFIX_INTERIM_SKIPPED,
    ] {
        e.family(f);
    }
    for (node, live) in &nodes {
        let l = [("node", node.as_str()), ("agency", live.agency.as_str())];
        e.family(&CONNECTED).int(&l, u64::from(live.connected));
        let Some(h) = &live.health else { continue };
        let version: String = h.agent_version.chars().take(MAX_VERSION).collect();
        e.family(&INFO)
            .int(&[l[0], l[1], ("version", version.as_str())], 1);
        let frames: u64 = h.interfaces.iter().map(|i| i.frames).sum();
        let kernel: u64 = h.interfaces.iter().map(|i| i.kernel_drops).sum();
        let queue: u64 = h.interfaces.iter().map(|i| i.queue_drops).sum();
        e.family(&CAPTURE_FRAMES).int(&l, frames);
        e.family(&CAPTURE_DROPS)
            .int(&[l[0], l[1], ("where", "kernel")], kernel)
            .int(&[l[0], l[1], ("where", "queue")], queue);
        e.family(&DECODE_ERRORS).int(&l, h.decode_errors);
        e.family(&ACTIVE_FLOWS).int(&l, h.active_flows);
        e.family(&SPOOL_BYTES).int(&l, h.spool_bytes);
        e.family(&SPOOL_QUOTA).int(&l, h.spool_quota_bytes);
        e.family(&SPOOL_BATCHES).int(&l, h.spool_batches);
        e.family(&SPOOL_DROPPED).int(&l, h.spool_dropped_records);
        e.family(&POLICY_VERSION).int(&l, h.policy_version);
        e.family(&POLICY_FAILURES).int(&l, h.policy_failures);
        e.family(&CPU).sample(&l, f64::from(h.cpu_percent) / 100.0);
        e.family(&RSS).int(&l, h.rss_bytes);
        e.family(&UPTIME).int(&l, h.uptime_secs);
        e.family(&SKEW)
            .sample(&l, live.clock_skew_ms as f64 / 1000.0);
        let lanes = &h.name_lanes;
        let sum = |f: fn(&simpul_proto::wire::NameLaneHealth) -> u64| -> u64 {
            lanes.iter().map(f).fold(0, u64::saturating_add)
        };
        e.family(&NAME_LANES).int(&l, lanes.len() as u64);
        e.family(&NAME_LANE_FRAMES).int(&l, sum(|n| n.frames));
        e.family(&NAME_LANE_BLOCKS).int(&l, sum(|n| n.blocks));
        e.family(&NAME_LANE_LOST)
            .int(&[l[0], l[1], ("what", "dropped")], sum(|n| n.dropped))
            .int(
                &[l[0], l[1], ("what", "read_error")],
                sum(|n| n.read_errors),
            );
        let link = h.collector.as_ref();
        if let Some(c) = link {
            e.family(&COLLECTOR_INDEX).int(&l, u64::from(c.index));
        }
        e.family(&COLLECTOR_FAILOVERS)
            .int(&l, link.map_or(0, |c| c.failovers));
        if let Some(b) = &h.name_block {
            e.family(&NAME_BLOCK_ENTRIES).int(&l, b.entries_added);
            e.family(&NAME_BLOCK_BATCHES).int(&l, b.batches);
            e.family(&NAME_BLOCK_NFT_FALLBACKS).int(&l, b.nft_fallbacks);
            e.family(&NAME_BLOCK_CLEARS).int(&l, b.clears);
            e.family(&NAME_BLOCK_RESETS).int(&l, b.resets_sent);
            e.family(&NAME_BLOCK_ERRORS)
                .int(&[l[0], l[1], ("what", "kernel")], b.failures)
                .int(&[l[0], l[1], ("what", "reset")], b.reset_errors);
        }
        if let Some(x) = &h.ipfix {
            e.family(&IPFIX_MESSAGES).int(&l, x.messages);
            e.family(&IPFIX_RECORDS).int(&l, x.records);
            e.family(&IPFIX_ERRORS)
                .int(&[l[0], l[1], ("what", "send")], x.send_errors)
                .int(&[l[0], l[1], ("what", "record")], x.record_errors);
            e.family(&IPFIX_INTERIM_SKIPPED).int(&l, x.interim_skipped);
        }
    }
}
