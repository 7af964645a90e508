//! Several collectors, one set of nodes: an agent heartbeats to whichever
//! collector it is on, so each collector's detector also reads the shared
//! registry's last-seen times (written by every collector as its agents
//! heartbeat, `agent_ws::persist_seen`, about every 2 s) and takes a newer
//! one as a heartbeat. The leader then calls a node down only when no
//! collector has heard it for a heartbeat window, and a follower that takes
//! over already knows every node's state.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::state::AppState;

/// How often the registry is read: well inside the 2 s between an agent's
/// persisted sightings and any heartbeat window.
pub const POLL: Duration = Duration::from_secs(1);

/// Unix ms of an RFC 3339 time (the registry's `last_seen`).
fn unix_ms(rfc: &str) -> Option<u64> {
    simpul_proto::time_format::parse_rfc3339(rfc)
        .ok()
        .map(|ns| ns / 1_000_000)
}

/// Feed newer last-seen times to the outage monitor until the collector
/// stops.
pub async fn seen_elsewhere(state: AppState) {
    let mut fed: HashMap<String, u64> = HashMap::new();
    let mut interval = tokio::time::interval(POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stop = state.shutdown.subscribe();
    let timeout = Duration::from_secs(state.config.nodes.down_after_secs);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.wait() => return,
        }
        let control = state.control.clone();
        let nodes =
            match tokio::task::spawn_blocking(move || control.nodes(SystemTime::now(), timeout))
                .await
            {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the shared registry's last-seen times");
                    continue;
                }
                Err(_) => continue,
            };
        for n in nodes.iter().filter(|n| !n.revoked) {
            let Some(at_ms) = n.last_seen.as_deref().and_then(unix_ms) else {
                continue;
            };
            if fed.get(&n.node_id).is_some_and(|&last| last >= at_ms) {
                continue;
            }
            fed.insert(n.node_id.clone(), at_ms);
            state.outage.seen_elsewhere(&n.node_id, &n.agency, at_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_times_read_as_unix_ms() {
        assert_eq!(super::unix_ms("1970-01-01T00:00:01.5Z"), Some(1_500));
        assert_eq!(super::unix_ms("not a time"), None);
    }
}
