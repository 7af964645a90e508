//! Two collectors on one PostgreSQL control store (flows each in their own
//! SQLite file), as `[storage.control] backend = "postgres"` runs them: one
//! outage detector leads through the lease; agents on the follower are not
//! called down by the leader; a node that goes down gives one incident and
//! one webhook message, not two; when the leader dies without a word, the
//! follower leads within a heartbeat window and the next outage is again
//! one incident and one message. Both make the monthly reports; one mails
//! them, and a month whose claimant died before mailing is mailed by the
//! other once the claim lapses.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::SinkExt;
use serde_json::Value;
use simpul_collector::config::CollectorConfig;
use simpul_collector::server::Collector;
use simpul_collector::store::postgres::server::TempPostgres;
use simpul_collector::store::IncidentFilter;
use simpul_proto::inventory::Node;
use simpul_proto::wire::{self, AgentMessage, Health, Heartbeat};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

const HEARTBEAT_MS: u64 = 500;
/// Registry sightings are persisted about every 2 s and read every 1 s: a
/// leader hears of a follower's agent within ~3.5 s, well inside this.
const DOWN_AFTER_SECS: u64 = 6;
const LEASE_SECS: u64 = 2;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Webhook bodies as received (Alertmanager v4 JSON).
type Received = Arc<Mutex<Vec<Value>>>;

async fn webhook_receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/alert",
            axum::routing::post(
                |axum::extract::State(g): axum::extract::State<Received>, body: String| async move {
                    g.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                    "ok"
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alert", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// Just enough SMTP (as the reports' test): counts the messages.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails: Arc<Mutex<Vec<String>>> = Arc::default();
    let store = mails.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 sink.test ESMTP\r\n").await?;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        return Ok::<(), std::io::Error>(());
                    }
                    let up = line.trim_end().to_ascii_uppercase();
                    if up.starts_with("EHLO") || up.starts_with("HELO") {
                        w.write_all(b"250-sink.test\r\n250 8BITMIME\r\n").await?;
                    } else if up == "DATA" {
                        w.write_all(b"354 go ahead\r\n").await?;
                        let mut data = String::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).await? == 0 || line == ".\r\n" {
                                break;
                            }
                            data.push_str(&line);
                        }
                        store.lock().unwrap().push(data);
                        w.write_all(b"250 queued\r\n").await?;
                    } else if up == "QUIT" {
                        w.write_all(b"221 bye\r\n").await?;
                        return Ok(());
                    } else {
                        w.write_all(b"250 OK\r\n").await?;
                    }
                }
            });
        }
    });
    (port, mails)
}

/// (status, node) of every message received.
fn messages(got: &Received) -> Vec<(String, String)> {
    got.lock()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["status"].as_str().unwrap_or("").to_string(),
                v["commonLabels"]["node"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn config(dir: &Path, url: &str, id: &str, webhook: &str, smtp: u16) -> CollectorConfig {
    let extra = format!(
        r#"
[nodes]
heartbeat_interval_ms = {HEARTBEAT_MS}
down_after_secs = {DOWN_AFTER_SECS}

[notify.webhook.noc]
url = "{webhook}"

[[notify.routes]]
channels = ["noc"]

[notify.delivery]
retry_initial_ms = 100
retry_max_ms = 400
poll_ms = 50

[notify.email.pimpinan]
host = "127.0.0.1"
port = {smtp}
tls = "none"
from = "NOC <noc@example.go.id>"
to = ["noc@example.go.id"]

[reports]
recipients = ["kadis@example.go.id"]
"#
    );
    common::postgres_config(dir, url, id, LEASE_SECS, &extra)
}

fn nodes() -> Vec<Node> {
    ["n1", "n2"]
        .iter()
        .map(|id| Node {
            id: (*id).into(),
            agency: "dinkes".into(),
            ..Node::default()
        })
        .collect()
}

/// An agent on `c` sending heartbeats until `cut` (its link then closes).
async fn agent(c: &Collector, node: &str) -> oneshot::Sender<()> {
    let cred = common::enroll_credential(c, "dinkes", node).await;
    let mut ws = common::hello(
        c.tls_addr.unwrap(),
        c.tls.ca_cert.as_ref().unwrap(),
        node,
        &cred,
    )
    .await;
    let (cut, mut cut_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(HEARTBEAT_MS));
        loop {
            tokio::select! {
                _ = &mut cut_rx => break,
                _ = tick.tick() => {
                    let hb = AgentMessage::Heartbeat(Heartbeat {
                        sent_ms: now_ms(),
                        health: Health::default(),
                    });
                    if ws.send(Message::Binary(wire::encode(&hb).into())).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = ws.close(None).await;
    });
    cut
}

/// Incidents of `node`, open or not, as the shared store has them.
fn incidents_of(c: &Collector, node: &str) -> Vec<simpul_collector::store::Incident> {
    c.state
        .control
        .incidents()
        .unwrap()
        .list(&IncidentFilter {
            node_id: Some(node.into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
}

/// A private PostgreSQL with database `name`: (server, URL).
async fn postgres(name: &'static str) -> (TempPostgres, String) {
    // The server's setup client blocks: not on the runtime's threads.
    tokio::task::spawn_blocking(move || {
        let pg = TempPostgres::start()
            .unwrap_or_else(|e| panic!("this test needs PostgreSQL (scripts/setup.sh): {e}"));
        let url = pg.database(name).unwrap();
        (pg, url)
    })
    .await
    .unwrap()
}

/// Collector `id` on the shared control store at `url`, Dinkes' nodes in
/// its inventory.
async fn collector(dir: &Path, url: &str, id: &str, webhook: &str, smtp: u16) -> Collector {
    common::start(config(dir, url, id, webhook, smtp), &["dinkes"], nodes()).await
}

async fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < end, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Watch both for `d`: never two leaders at one instant.
async fn never_both(a: &Collector, b: &Collector, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        assert!(
            !(a.state.outage.is_leading() && b.state.outage.is_leading()),
            "two outage detectors lead at once"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_collectors_one_leader_one_incident_one_message() {
    let (_pg, url) = postgres("two_collectors").await;
    let (webhook, got) = webhook_receiver().await;
    let (smtp, mails) = smtp_sink().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = collector(dir_a.path(), &url, "noc-a", &webhook, smtp).await;
    let b = collector(dir_b.path(), &url, "noc-b", &webhook, smtp).await;
    assert_eq!(a.collector_id(), Some("noc-a"));

    // Last month's reports: both make them, one mails them.
    let now_s = now_ms() / 1000;
    let mut mailed = 0;
    for c in [&a, &b, &a] {
        let pass = simpul_collector::reports::schedule::run_once(&c.state, now_s)
            .await
            .unwrap();
        assert!(pass.month.is_some(), "{pass:?}");
        mailed += pass.mailed;
    }
    assert_eq!(mailed, 1);
    assert_eq!(mails.lock().unwrap().len(), 1);
    for d in [&dir_a, &dir_b] {
        assert!(std::fs::read_dir(d.path().join("reports")).unwrap().count() > 0);
    }

    // One leads, never both.
    wait_for("a leader", Duration::from_secs(10), || {
        a.state.outage.is_leading() || b.state.outage.is_leading()
    })
    .await;
    never_both(&a, &b, Duration::from_secs(2)).await;
    let (mut leader, follower) = if a.state.outage.is_leading() {
        (a, b)
    } else {
        (b, a)
    };
    let (_, health) = common::get(&leader, "/healthz").await;
    assert_eq!(health["outage_leader"], true, "{health}");
    assert_eq!(health["control"], "postgres", "{health}");
    let (_, health) = common::get(&follower, "/healthz").await;
    assert_eq!(health["outage_leader"], false, "{health}");

    // Both agents are on the follower: the leader hears of them only
    // through the shared registry, and must not call them down.
    let cut_n1 = agent(&follower, "n1").await;
    let cut_n2 = agent(&follower, "n2").await;
    never_both(&leader, &follower, Duration::from_secs(DOWN_AFTER_SECS + 3)).await;
    assert!(incidents_of(&leader, "n1").is_empty());
    assert!(incidents_of(&leader, "n2").is_empty());
    assert!(messages(&got).is_empty(), "{:?}", messages(&got));

    // n1 goes down: both detectors see it, only the leader records it;
    // both dispatchers read the log, one sends.
    let _ = cut_n1.send(());
    wait_for(
        "n1's outage and its message",
        Duration::from_secs(30),
        || !incidents_of(&leader, "n1").is_empty() && !messages(&got).is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n1 = incidents_of(&follower, "n1");
    assert_eq!(n1.len(), 1, "{n1:?}");
    assert_eq!(n1[0].kind, "down");
    assert_eq!(messages(&got), [("firing".to_string(), "n1".to_string())]);

    // The leader dies without giving the lease up: the follower leads
    // within a heartbeat window.
    leader.abandon_lease();
    let died = Instant::now();
    leader.stop().await;
    wait_for(
        "the follower takes the lead",
        Duration::from_secs(DOWN_AFTER_SECS),
        || follower.state.outage.is_leading(),
    )
    .await;
    eprintln!("took the lead {:?} after the leader died", died.elapsed());
    let (_, health) = common::get(&follower, "/healthz").await;
    assert_eq!(health["outage_leader"], true, "{health}");

    // Taking over neither reopens n1 nor alerts it again; n2 going down
    // now is one incident and one message from the new leader.
    let _ = cut_n2.send(());
    wait_for(
        "n2's outage and its message",
        Duration::from_secs(30),
        || !incidents_of(&follower, "n2").is_empty() && messages(&got).len() >= 2,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(incidents_of(&follower, "n1").len(), 1);
    assert_eq!(incidents_of(&follower, "n2").len(), 1);
    assert_eq!(
        messages(&got),
        [
            ("firing".to_string(), "n1".to_string()),
            ("firing".to_string(), "n2".to_string())
        ]
    );
    follower.stop().await;
}

/// The lease rows named like `pattern`: (holder, seconds until it lapses).
fn leases(url: &str, pattern: &str) -> Vec<(String, f64)> {
    let mut pg = postgres::Client::connect(url, postgres::NoTls).unwrap();
    pg.query(
        "SELECT holder, EXTRACT(EPOCH FROM expires - clock_timestamp())::float8 \
         FROM leases WHERE name LIKE $1",
        &[&pattern],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_month_claimed_by_a_collector_that_died_unmailed_is_mailed_by_another() {
    let (pg, url) = postgres("mail_claim").await;
    let (webhook, _) = webhook_receiver().await;
    let (smtp, mails) = smtp_sink().await;
    // A's mail server refuses: nothing listens on the port any more.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = collector(dir_a.path(), &url, "noc-a", &webhook, refused).await;
    let b = collector(dir_b.path(), &url, "noc-b", &webhook, smtp).await;
    let now_s = now_ms() / 1000;
    use simpul_collector::reports::schedule::run_once;

    // A claims the month and fails to mail; while its claim lasts, B
    // leaves the month to it.
    let err = run_once(&a.state, now_s).await.unwrap_err();
    assert!(format!("{err:#}").contains("mailing"), "{err:#}");
    assert_eq!(run_once(&b.state, now_s).await.unwrap().mailed, 0);
    let held = tokio::task::spawn_blocking({
        let url = url.clone();
        move || leases(&url, "reports-mailed-%")
    })
    .await
    .unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].0, "noc-a");
    assert!(held[0].1 > 3000.0 && held[0].1 < 2.0 * 3600.0, "{held:?}");

    // A dies; its claim lapses (two hours on, here by the lease's clock).
    a.stop().await;
    tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            let mut pg = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            pg.execute(
                "UPDATE leases SET expires = clock_timestamp() - interval '1 second' \
                 WHERE name LIKE 'reports-mailed-%'",
                &[],
            )
            .unwrap();
        }
    })
    .await
    .unwrap();
    let pass = run_once(&b.state, now_s).await.unwrap();
    assert_eq!(pass.mailed, 1, "{pass:?}");
    assert_eq!(mails.lock().unwrap().len(), 1);

    // Mailed: B keeps the claim for good, and nobody mails again.
    let held = tokio::task::spawn_blocking({
        let url = url.clone();
        move || leases(&url, "reports-mailed-%")
    })
    .await
    .unwrap();
    assert_eq!(held[0].0, "noc-b");
    assert!(held[0].1 > 300.0 * 86_400.0, "{held:?}");
    let a = collector(dir_a.path(), &url, "noc-a", &webhook, smtp).await;
    assert_eq!(run_once(&a.state, now_s).await.unwrap().mailed, 0);
    assert_eq!(run_once(&b.state, now_s).await.unwrap().mailed, 0);
    assert_eq!(mails.lock().unwrap().len(), 1);
    a.stop().await;
    b.stop().await;
    drop(pg);
}
