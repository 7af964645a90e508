//! Policy push latency: a save through the API → applied and acknowledged
//! by every agent of the agencies it reaches.
//!
//! A real collector (in-process, default settings but the per-address
//! connection cap, since every link comes from 127.0.0.1) and `NODES` real
//! agents spread over `AGENCIES` agencies. Each agent is the agent's own
//! collector-mode pair: a link (`simpul_agent::link::Uplink`, TLS WebSocket,
//! offering the inventory and policy features, heartbeats every 2 s) and its
//! control thread (`simpul_agent::control::Control`, `Source::Collector`)
//! with **no enforcer** — what `simpul-agent run` does when `[enforce]`
//! names no interfaces (`AgentConfig::enforce_target` is None). That is the
//! agent's real path minus the kernel: the control thread pins the
//! collector's key from enrollment, takes the inventory, verifies each
//! signed policy with the pinned key (`simpul_core::signing::verify`),
//! refuses replays, validates it against the node's inventory with the
//! same core code the collector ran (`simpul_core::policy::validate`),
//! keeps it in the state directory (write, fsync, rename) and reports
//! `applied` through the link at once (`LinkControl::report` wakes the
//! link). No code was added to the agent for this benchmark; the nft/tc
//! apply it skips is measured by `bench/enforce.sh` (enforce-apply).
//!
//! After a warm-up save of the province default (every agency's version
//! 1, applied everywhere), `SAVES` saves through the HTTP API with an
//! admin's API token: agency documents in turn (`PUT
//! /api/v1/agencies/{code}/policy`, a new download allocation: the
//! agency's nodes) and every tenth one the default (`PUT
//! /api/v1/policy/default`, a new blocked domain: every agency, every
//! node). For each save and each node it reaches, the time from the PUT's
//! start to the collector holding that node's `applied` for the new
//! version (`Policies::state`, the in-memory state behind the nodes API's
//! `policy` object, set after the state is stored; polled every 2 ms from
//! a thread of its own), and to the agent's own `at_ms` in its report (same
//! host clock: push + verify + validate + keep). HDR histograms, one JSON
//! line.
//!
//! Run with `cargo run --release -p simpul-demo --example policy_push --
//! [NODES] [AGENCIES] [SAVES]` (defaults 500, 10, 20; bench/policy.sh).
//! State directories go under `$TMPDIR`.

// A benchmark or tool on synthetic, known-good input: a failed unwrap is a
// broken benchmark, reported by the panic.
#![allow(clippy::unwrap_used)]

#[path = "common/agents.rs"]
mod agents;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agents::now_ms;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use simpul_collector::policies::Policies;
use simpul_proto::wire::PolicyOutcome;

/// How long one save may take to reach every node before the missing ones
/// count as timed out.
const SAVE_DEADLINE: Duration = Duration::from_secs(15);
/// Between saves (after the previous one reached everyone).
const PAUSE: Duration = Duration::from_millis(300);
/// Every this many saves, the default instead of an agency.
const DEFAULT_EVERY: usize = 10;

fn rates(rate: u64, ceil: u64) -> Value {
    json!({"rate_bps": rate, "ceil_bps": ceil})
}

/// The province default; `n` changes its blocklist.
fn default_doc(n: usize) -> Value {
    json!({
        "allocation": {"download": rates(50_000_000, 100_000_000), "upload": rates(20_000_000, 40_000_000)},
        "blocking": {"domains": ["judi.example", format!("bench-{n}.example")], "block_dot": true},
    })
}

/// What the collector holds for a node once it moved past `before`.
#[derive(Clone, Copy)]
struct Seen {
    at: Instant,
    version: u64,
    state: PolicyOutcome,
    agent_at_ms: u64,
}

/// Poll the collector's policy states of `nodes` until each moved past its
/// `before` version (or the deadline); and when the new versions were
/// published to the sessions (`published`, the watch they wait on).
fn watch(
    policies: Arc<Policies>,
    mut published: tokio::sync::watch::Receiver<u64>,
    nodes: Vec<(usize, String, u64)>,
    deadline: Instant,
) -> (HashMap<usize, Seen>, Option<Instant>) {
    let mut pending = nodes;
    let mut seen = HashMap::new();
    let mut published_at = None;
    while !pending.is_empty() && Instant::now() < deadline {
        if published_at.is_none() && published.has_changed().unwrap_or(false) {
            published.borrow_and_update();
            published_at = Some(Instant::now());
        }
        pending.retain(|(i, node, before)| match policies.state(node) {
            Some(s) if s.version > *before => {
                seen.insert(
                    *i,
                    Seen {
                        at: Instant::now(),
                        version: s.version,
                        state: s.state,
                        agent_at_ms: s.at_ms,
                    },
                );
                false
            }
            _ => true,
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    (seen, published_at)
}

/// The figures of one kind of save.
struct Figures {
    /// Per node: PUT start → the collector holds its `applied`.
    applied: Histogram<u64>,
    /// Per node: PUT start → the agent's `at_ms` in that report.
    agent_applied: Histogram<u64>,
    /// Per save: PUT start → the last node's `applied`.
    fanout: Histogram<u64>,
    /// Per save: the PUT's answer.
    put: Histogram<u64>,
    /// Per save: PUT start → the new versions published to the sessions.
    published: Histogram<u64>,
}

impl Figures {
    fn new() -> Figures {
        let h = || Histogram::<u64>::new(3).unwrap();
        Figures {
            applied: h(),
            agent_applied: h(),
            fanout: h(),
            put: h(),
            published: h(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "applied_ms": pct(&self.applied),
            "agent_applied_ms": pct(&self.agent_applied),
            "fanout_ms": pct(&self.fanout),
            "put_ms": pct(&self.put),
            "published_ms": pct(&self.published),
        })
    }
}

fn pct(h: &Histogram<u64>) -> Value {
    json!({"p50": h.value_at_quantile(0.5), "p90": h.value_at_quantile(0.9),
           "p99": h.value_at_quantile(0.99), "max": h.max(), "min": h.min(), "count": h.len()})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let arg = |n: usize, default: usize| {
        std::env::args()
            .nth(n)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (nodes, agencies, saves) = (arg(1, 500), arg(2, 10).max(1), arg(3, 20));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let fleet = agents::start(dir.path(), nodes, agencies).await?;
    let (collector, codes, node_ids, http, connect_secs) = (
        &fleet.collector,
        fleet.codes.clone(),
        fleet.node_ids.clone(),
        fleet.http,
        fleet.connect_secs,
    );

    let api_token = agents::admin_token(collector)?;
    let client = reqwest::Client::new();
    let policies = collector.state.policies.clone();
    let mut agency_version: Vec<u64> = vec![0; agencies];
    let mut default_version = 0u64;

    // Every save, agency saves, default saves.
    let (mut all, mut agency_figs, mut default_figs) =
        (Figures::new(), Figures::new(), Figures::new());
    let mut failures: HashMap<&'static str, u64> = HashMap::new();
    let mut per_save = Vec::new();

    // Save 0 is the warm-up (the default's first version everywhere);
    // saves 1..=SAVES are measured.
    let mut agency_turn = 0usize;
    for s in 0..=saves {
        let is_default = s == 0 || s % DEFAULT_EVERY == 0;
        let target: Option<usize> = if is_default {
            None
        } else {
            let a = agency_turn % agencies;
            agency_turn += 1;
            Some(a)
        };
        let reached: Vec<(usize, String, u64)> = node_ids
            .iter()
            .enumerate()
            .filter(|(_, (_, a))| target.is_none_or(|t| t == *a))
            .map(|(i, (node, _))| {
                let before = policies.state(node).map_or(0, |st| st.version);
                (i, node.clone(), before)
            })
            .collect();
        let (path, body) = match target {
            None => (
                "/api/v1/policy/default".to_string(),
                json!({"base_version": default_version, "policy": default_doc(s), "comment": format!("bench save {s}")}),
            ),
            Some(a) => (
                format!("/api/v1/agencies/{}/policy", codes[a]),
                json!({"base_version": agency_version[a],
                       "policy": {"allocation": {"download": rates(30_000_000 + s as u64 * 10_000, 100_000_000)}},
                       "comment": format!("bench save {s}")}),
            ),
        };
        let t0 = Instant::now();
        let wall0 = now_ms();
        let watcher = {
            let (p, r) = (policies.clone(), reached.clone());
            let mut published = policies.subscribe();
            published.borrow_and_update();
            let deadline = t0
                + if s == 0 {
                    Duration::from_secs(120)
                } else {
                    SAVE_DEADLINE
                };
            std::thread::spawn(move || watch(p, published, r, deadline))
        };
        let resp = client
            .put(format!("http://{http}{path}"))
            .bearer_auth(&api_token)
            .json(&body)
            .send()
            .await?;
        let put_ms = t0.elapsed().as_millis() as u64;
        let status = resp.status();
        let answer: Value = resp.json().await?;
        anyhow::ensure!(status.is_success(), "save {s}: {status} {answer}");
        // The version each agency reached should now hold.
        let mut expected: HashMap<usize, u64> = HashMap::new();
        match target {
            None => {
                default_version = answer["version"].as_u64().unwrap();
                for v in answer["agencies"].as_array().unwrap() {
                    let a = codes
                        .iter()
                        .position(|c| v["agency"] == c.as_str())
                        .unwrap();
                    agency_version[a] = v["version"].as_u64().unwrap();
                    expected.insert(a, agency_version[a]);
                }
            }
            Some(a) => {
                anyhow::ensure!(answer["changed"] == true, "save {s} changed nothing");
                agency_version[a] = answer["version"].as_u64().unwrap();
                expected.insert(a, agency_version[a]);
            }
        }
        let (seen, published_at) =
            tokio::task::spawn_blocking(move || watcher.join().unwrap()).await?;
        let kind = if target.is_none() {
            &mut default_figs
        } else {
            &mut agency_figs
        };
        let mut last = 0u64;
        let mut ok = 0usize;
        let mut failed_here = 0usize;
        for (i, node, _) in &reached {
            let a = node_ids[*i].1;
            let Some(want) = expected.get(&a) else {
                continue; // an agency this save did not change
            };
            let why = match seen.get(i) {
                None => Some("timeout"),
                Some(x) if x.version != *want => Some("wrong_version"),
                Some(x) if x.state == PolicyOutcome::Rejected => Some("rejected"),
                Some(x) if x.state == PolicyOutcome::Failed => Some("failed"),
                Some(_) => None,
            };
            if let Some(why) = why {
                if s > 0 {
                    *failures.entry(why).or_default() += 1;
                }
                failed_here += 1;
                eprintln!("save {s}: {node}: {why}");
                continue;
            }
            let x = seen[i];
            let ms = x.at.duration_since(t0).as_millis() as u64;
            last = last.max(ms);
            ok += 1;
            if s > 0 {
                let agent_ms = x.agent_at_ms.saturating_sub(wall0);
                for f in [&mut all, &mut *kind] {
                    f.applied.record(ms)?;
                    f.agent_applied.record(agent_ms)?;
                }
            }
        }
        if s == 0 {
            anyhow::ensure!(
                failed_here == 0,
                "the warm-up save did not reach every node"
            );
        } else {
            let published_ms = published_at.map(|t| t.duration_since(t0).as_millis() as u64);
            for f in [&mut all, &mut *kind] {
                f.put.record(put_ms)?;
                if failed_here == 0 {
                    f.fanout.record(last)?;
                }
                if let Some(p) = published_ms {
                    f.published.record(p)?;
                }
            }
            per_save.push(json!({
                "save": s, "kind": if target.is_none() { "default" } else { "agency" },
                "nodes": ok + failed_here, "applied": ok, "put_ms": put_ms,
                "published_ms": published_ms, "last_applied_ms": last,
            }));
        }
        tokio::time::sleep(PAUSE).await;
    }

    let out = json!({
        "nodes": nodes,
        "agencies": agencies,
        "saves": saves,
        "default_saves": per_save.iter().filter(|s| s["kind"] == "default").count(),
        "agency_saves": per_save.iter().filter(|s| s["kind"] == "agency").count(),
        "connect_secs": (connect_secs * 10.0).round() / 10.0,
        "poll_ms": 2,
        "failures": failures,
        "all": all.json(),
        "agency": agency_figs.json(),
        "default": default_figs.json(),
        "per_save": per_save,
    });
    println!("{out}");
    fleet.stop().await;
    Ok(())
}
