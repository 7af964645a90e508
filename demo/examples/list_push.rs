//! A named list of millions of domains reaching a fleet: uploaded through
//! the API, enabled in the province default, fetched by every agent by
//! its hash in chunks, verified and held; then an allocation-only change
//! that must not send the list again.
//!
//! A real collector (in-process) and `NODES` real agents over `AGENCIES`
//! agencies (`common/agents.rs`: each the agent's own link and control
//! thread with its own state directory, no enforcer). For each agent the
//! time from the default's save (PUT start) to:
//! - *held*: the list verified (SHA-256 of its text) and renamed into the
//!   agent's state directory (`lists/<sha256>.gz`, polled every 10 ms);
//! - *applied*: the collector holding the agent's `applied` for the new
//!   version — after the agent built its matcher of the whole list (the
//!   domain set: about 1.3 s of CPU and 95 MB for 3 M names, see the
//!   "domains" section). All agents share this machine's cores here; on
//!   routers each has its own.
//!
//! Run with `cargo run --release -p simpul-demo --example list_push --
//! LIST_FILE [NODES] [AGENCIES]` (bench/lists.sh). One JSON line.

// A benchmark on synthetic, known-good input: a failed unwrap is a broken
// benchmark, reported by the panic.
#![allow(clippy::unwrap_used)]

#[path = "common/agents.rs"]
mod agents;

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use simpul_proto::wire::PolicyOutcome;

const DEADLINE: Duration = Duration::from_secs(300);

fn rates(rate: u64) -> Value {
    json!({"rate_bps": rate, "ceil_bps": rate * 2})
}

fn pct(h: &Histogram<u64>) -> Value {
    json!({"p50": h.value_at_quantile(0.5), "p90": h.value_at_quantile(0.9),
           "p99": h.value_at_quantile(0.99), "max": h.max(), "min": h.min(), "count": h.len()})
}

fn metric(c: &simpul_collector::server::Collector, name: &str) -> u64 {
    c.state
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Save the default and wait until every node holds `version` applied;
/// per node, ms from the PUT's start to the list file (when `list` names
/// one) and to `applied`.
async fn save_and_wait(
    fleet: &agents::Fleet,
    client: &reqwest::Client,
    token: &str,
    body: Value,
    version: u64,
    list: Option<&str>,
) -> (Histogram<u64>, Histogram<u64>, u64) {
    let t0 = Instant::now();
    let r = client
        .put(format!("http://{}/api/v1/policy/default", fleet.http))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let put_ms = t0.elapsed().as_millis() as u64;
    let n = fleet.agents.len();
    let mut held = vec![None; n];
    let mut applied = vec![None; n];
    while t0.elapsed() < DEADLINE {
        for (i, a) in fleet.agents.iter().enumerate() {
            if held[i].is_none() {
                if let Some(sha) = list {
                    if a.state_dir.join(format!("lists/{sha}.gz")).exists() {
                        held[i] = Some(t0.elapsed().as_millis() as u64);
                    }
                }
            }
            if applied[i].is_none() {
                if let Some(s) = fleet.collector.state.policies.state(&a.node) {
                    if s.version >= version && s.state == PolicyOutcome::Applied {
                        applied[i] = Some(t0.elapsed().as_millis() as u64);
                    }
                }
            }
        }
        if applied.iter().all(Option::is_some)
            && (list.is_none() || held.iter().all(Option::is_some))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let hist = |v: &[Option<u64>]| {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for x in v.iter().flatten() {
            h.record(*x).unwrap();
        }
        h
    };
    (hist(&held), hist(&applied), put_ms)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let file = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("list_push LIST_FILE [NODES] [AGENCIES]"))?;
    let arg = |n: usize, d: usize| args.get(n).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (nodes, agencies) = (arg(2, 50), arg(3, 5).max(1));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let fleet = agents::start(dir.path(), nodes, agencies).await?;
    let token = agents::admin_token(&fleet.collector)?;
    let client = reqwest::Client::new();
    let base = json!({"allocation": {"download": rates(50_000_000), "upload": rates(20_000_000)}});

    // Warm-up: every agency's first version, applied everywhere.
    let (_, warm, _) = save_and_wait(
        &fleet,
        &client,
        &token,
        json!({"base_version": 0, "policy": base, "comment": "bench warm-up"}),
        1,
        None,
    )
    .await;
    assert_eq!(warm.len() as usize, nodes, "warm-up not applied everywhere");

    // The upload: plain text as the NOC would send it.
    let body = std::fs::read(file)?;
    let t = Instant::now();
    let r = client
        .put(format!(
            "http://{}/api/v1/lists/bench?comment=bench%20upload",
            fleet.http
        ))
        .bearer_auth(&token)
        .header("Content-Type", "text/plain")
        .body(body.clone())
        .send()
        .await?;
    let upload_ms = t.elapsed().as_millis() as u64;
    let up: Value = r.json().await?;
    let sha = up["version"]["sha256"].as_str().unwrap().to_string();
    let domains = up["version"]["domains"].as_u64().unwrap_or(0);
    let stored = up["version"]["stored_bytes"].as_u64().unwrap_or(0);

    // Enabled in the default: every agency's next version names it.
    let sent_before = metric(&fleet.collector, "simpul_list_bytes_sent_total");
    let mut doc = base.clone();
    doc["blocking"] = json!({"enabled_categories": ["bench"]});
    let (held, applied, put_ms) = save_and_wait(
        &fleet,
        &client,
        &token,
        json!({"base_version": 1, "policy": doc, "comment": "bench: enable the list"}),
        2,
        Some(&sha),
    )
    .await;
    let sent = metric(&fleet.collector, "simpul_list_bytes_sent_total") - sent_before;

    // An allocation-only change: version 3, the list not sent again.
    let mut doc2 = doc.clone();
    doc2["allocation"]["download"] = rates(60_000_000);
    let before = metric(&fleet.collector, "simpul_list_bytes_sent_total");
    let (_, realloc, realloc_put_ms) = save_and_wait(
        &fleet,
        &client,
        &token,
        json!({"base_version": 2, "policy": doc2, "comment": "bench: allocation"}),
        3,
        None,
    )
    .await;
    let resent = metric(&fleet.collector, "simpul_list_bytes_sent_total") - before;

    let out = json!({
        "nodes": nodes, "agencies": agencies,
        "file_bytes": body.len(), "domains": domains, "stored_bytes": stored, "sha256": sha,
        "upload_ms": upload_ms,
        "enable": {"put_ms": put_ms, "held_ms": pct(&held), "applied_ms": pct(&applied),
                   "held": held.len(), "applied": applied.len(), "list_bytes_sent": sent},
        "allocation_change": {"put_ms": realloc_put_ms, "applied_ms": pct(&realloc),
                              "applied": realloc.len(), "list_bytes_sent": resent},
        "connect_secs": (fleet.connect_secs * 10.0).round() / 10.0,
        "vm_hwm_kb": status_kb("VmHWM:"),
    });
    println!("{out}");
    fleet.stop().await;
    Ok(())
}
