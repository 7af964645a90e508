//! The collector link against a stand-in collector on 127.0.0.1: a small
//! tokio-tungstenite server speaking the collector's side of `proto::wire`
//! (the real collector is tested end to end separately). Its "database" (the
//! committed batches) survives its restarts, and it deduplicates by
//! (boot_epoch, seq) as the real one must.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use simpul_agent::config::CollectorConfig;
use simpul_agent::link::{HealthState, LinkError, LinkOptions, LinkSink, Uplink};
use simpul_core::processor::RecordSink;
use simpul_proto::wire::{self, AgentMessage, Batch, CollectorMessage};
use simpul_proto::{CounterSample, TrafficScope};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;

const CREDENTIAL: &str = "cred-of-node";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Behavior {
    Normal,
    /// Commit every batch, acknowledge only the first `acks`, drop the
    /// connection after receiving `close_after` batches.
    AckSome {
        acks: usize,
        close_after: usize,
    },
    Refuse,
    /// Answer the first Hello with a malformed frame.
    GarbageFirst,
}

#[derive(Default, Debug)]
struct Db {
    connections: usize,
    enrolls: Vec<wire::Enroll>,
    hellos: Vec<wire::Hello>,
    /// Every batch received, in arrival order, re-sends included.
    received: Vec<(u64, u64)>,
    committed: BTreeMap<(u64, u64), Batch>,
    heartbeats: Vec<wire::Heartbeat>,
    text_frames: usize,
    binary_frames: usize,
}

type SharedDb = Arc<Mutex<Db>>;

struct Collector {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    fn start(addr: SocketAddr, behavior: Behavior, db: SharedDb) -> Self {
        Self::start_with(addr, behavior, db, None)
    }

    fn start_with(
        addr: SocketAddr,
        behavior: Behavior,
        db: SharedDb,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let std_listener = std::net::TcpListener::bind(addr).expect("bind collector");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                while !stop2.load(Ordering::Relaxed) {
                    let accepted =
                        tokio::time::timeout(Duration::from_millis(20), listener.accept()).await;
                    let Ok(Ok((tcp, _))) = accepted else { continue };
                    let (db, tls) = (db.clone(), tls.clone());
                    tokio::spawn(async move {
                        match tls {
                            None => serve(tcp, behavior, db).await,
                            Some(cfg) => {
                                let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                                if let Ok(s) = acceptor.accept(tcp).await {
                                    serve(s, behavior, db).await;
                                }
                            }
                        }
                    });
                }
            });
            // Dropping the runtime drops every connection: a crash, as far as
            // the agent can tell.
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/api/v1/agent", self.addr)
    }

    fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, behavior: Behavior, db: SharedDb) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    db.lock().unwrap().connections += 1;
    let mut json = false;
    let mut batches_here = 0usize;
    let mut acks_here = 0usize;
    while let Some(Ok(m)) = ws.next().await {
        let msg: AgentMessage = match &m {
            Message::Binary(b) => {
                db.lock().unwrap().binary_frames += 1;
                wire::decode(b).expect("agent sent a malformed binary frame")
            }
            Message::Text(t) => {
                db.lock().unwrap().text_frames += 1;
                json = true;
                wire::decode_json(t.as_str()).expect("agent sent malformed JSON")
            }
            Message::Close(_) => return,
            _ => continue,
        };
        let reply = |r: CollectorMessage| {
            if json {
                Message::text(serde_json::to_string(&r).unwrap())
            } else {
                Message::binary(wire::encode(&r))
            }
        };
        match msg {
            AgentMessage::Enroll(e) => {
                let refuse = behavior == Behavior::Refuse;
                db.lock().unwrap().enrolls.push(e.clone());
                let r = if refuse || e.token != "tok-1" {
                    CollectorMessage::Refused {
                        reason: "bad enrollment token".into(),
                    }
                } else {
                    CollectorMessage::Enrolled {
                        node_id: e.node_id,
                        credential: CREDENTIAL.into(),
                        agency: "dinkes".into(),
                        policy_key: vec![7; 32],
                    }
                };
                let _ = ws.send(reply(r)).await;
            }
            AgentMessage::Hello(h) => {
                let ok = h.credential == CREDENTIAL && behavior != Behavior::Refuse;
                let first_hello = {
                    let mut d = db.lock().unwrap();
                    d.hellos.push(h.clone());
                    d.hellos.len() == 1
                };
                if behavior == Behavior::GarbageFirst && first_hello {
                    let _ = ws.send(Message::binary(vec![0xee, 1, 2, 3])).await;
                    continue;
                }
                let r = if ok {
                    CollectorMessage::Welcome {
                        node_id: h.node_id,
                        agency: "dinkes".into(),
                        heartbeat_interval_ms: 200,
                        protocol: wire::PROTOCOL_VERSION,
                        features: vec![],
                        policy_key: vec![7; 32],
                    }
                } else {
                    CollectorMessage::Refused {
                        reason: "unknown node or bad credential".into(),
                    }
                };
                if ws.send(reply(r)).await.is_err() || !ok {
                    return;
                }
            }
            AgentMessage::Heartbeat(hb) => db.lock().unwrap().heartbeats.push(hb),
            AgentMessage::PolicyState(_) | AgentMessage::ListFetch { .. } => {}
            AgentMessage::Batch(b) => {
                let id = (b.boot_epoch, b.seq);
                {
                    let mut d = db.lock().unwrap();
                    d.received.push(id);
                    d.committed.entry(id).or_insert(b); // dedup by (boot_epoch, seq)
                }
                batches_here += 1;
                let ack = match behavior {
                    Behavior::AckSome { acks, .. } => acks_here < acks,
                    _ => true,
                };
                if ack {
                    acks_here += 1;
                    let r = CollectorMessage::Ack {
                        boot_epoch: id.0,
                        seq: id.1,
                    };
                    if ws.send(reply(r)).await.is_err() {
                        return;
                    }
                }
                if let Behavior::AckSome { close_after, .. } = behavior {
                    if batches_here >= close_after {
                        return; // dropped without a close frame
                    }
                }
            }
        }
    }
}

fn sample(n: u64) -> CounterSample {
    CounterSample {
        ts: 1_800_000_000 + n,
        agency: "dinkes".into(),
        unit: "sekretariat".into(),
        scope: TrafficScope::Internet,
        bytes_in: n * 10,
        bytes_out: n,
        packets_in: 1,
        packets_out: 1,
    }
}

/// The link's settings and the agent's state directory.
struct Cfg {
    link: CollectorConfig,
    state: PathBuf,
}

impl std::ops::Deref for Cfg {
    type Target = CollectorConfig;
    fn deref(&self) -> &CollectorConfig {
        &self.link
    }
}

impl std::ops::DerefMut for Cfg {
    fn deref_mut(&mut self) -> &mut CollectorConfig {
        &mut self.link
    }
}

fn config(url: &str, state: &Path) -> Cfg {
    let mut c = CollectorConfig::new(url);
    c.enroll_token = Some("tok-1".into());
    c.batch_interval_ms = 100;
    c.heartbeat_interval_ms = 200;
    Cfg {
        link: c,
        state: state.to_owned(),
    }
}

fn start(cfg: &Cfg, health: Arc<HealthState>) -> Result<(Uplink, LinkSink), LinkError> {
    Uplink::start(
        &cfg.link,
        "dinkes-01",
        &cfg.state,
        health,
        LinkOptions::default(),
    )
}

/// Seal one batch holding the samples `range`.
fn produce(sink: &mut LinkSink, range: std::ops::Range<u64>) {
    for n in range {
        sink.counters(sample(n));
    }
    sink.seal_now();
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn committed_samples(db: &SharedDb) -> Vec<u64> {
    let d = db.lock().unwrap();
    let mut v: Vec<u64> = d
        .committed
        .values()
        .flat_map(|b| b.counters.iter().map(|c| c.bytes_out))
        .collect();
    v.sort_unstable();
    v
}

fn spool_files(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("spool"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "batch"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn enrollment_stores_credential_then_hello() {
    let tmp = tempfile::tempdir().unwrap();
    let db = SharedDb::default();
    let server = Collector::start("127.0.0.1:0".parse().unwrap(), Behavior::Normal, db.clone());
    let cfg = config(&server.url(), tmp.path());

    let health = Arc::new(HealthState::new());
    let (uplink, mut sink) = start(&cfg, health.clone()).unwrap();
    produce(&mut sink, 0..5);
    wait_until("first batch committed", Duration::from_secs(10), || {
        db.lock().unwrap().committed.len() == 1
    });
    wait_until("a heartbeat", Duration::from_secs(10), || {
        !db.lock().unwrap().heartbeats.is_empty()
    });
    let report = uplink.stop();
    assert_eq!(report.spooled_batches, 0);
    assert!(report.clean);
    drop(sink);

    let cred = tmp.path().join("credential");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cred).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "credential must be private");
    }
    let stored = std::fs::read_to_string(&cred).unwrap();
    assert!(stored.contains(CREDENTIAL), "{stored}");
    {
        let d = db.lock().unwrap();
        assert_eq!(d.enrolls.len(), 1);
        assert_eq!(d.enrolls[0].token, "tok-1");
        assert_eq!(d.enrolls[0].node_id, "dinkes-01");
        assert_eq!(d.hellos.len(), 1, "Hello right after enrolling");
        assert_eq!(d.hellos[0].credential, CREDENTIAL);
        let hb = &d.heartbeats[0];
        assert_eq!(hb.health.agent_version, env!("CARGO_PKG_VERSION"));
        assert!(hb.health.rss_bytes > 0);
        assert_eq!(hb.health.spool_quota_bytes, 512 << 20);
    }

    // A second start uses the stored credential: Hello only, no enrollment.
    let (uplink, mut sink) = start(&cfg, Arc::new(HealthState::new())).unwrap();
    produce(&mut sink, 5..7);
    wait_until("second batch committed", Duration::from_secs(10), || {
        db.lock().unwrap().committed.len() == 2
    });
    assert_eq!(uplink.stop().spooled_batches, 0);
    let d = db.lock().unwrap();
    assert_eq!(d.enrolls.len(), 1, "enrolled once only");
    assert_eq!(d.hellos.len(), 2);
    assert!(d.hellos[1].boot_epoch > d.hellos[0].boot_epoch);
    assert_eq!(d.text_frames, 0);
    drop(d);
    assert_eq!(committed_samples(&db), (0..7).collect::<Vec<_>>());
    assert!(spool_files(tmp.path()).is_empty());
    server.shutdown();
}

#[test]
fn exactly_once_across_collector_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let db = SharedDb::default();
    // First collector: takes 6 batches, acknowledges 3, then dies.
    let first = Collector::start(
        "127.0.0.1:0".parse().unwrap(),
        Behavior::AckSome {
            acks: 3,
            close_after: 6,
        },
        db.clone(),
    );
    let addr = first.addr;
    let cfg = config(&first.url(), tmp.path());
    let (uplink, mut sink) = start(&cfg, Arc::new(HealthState::new())).unwrap();
    for b in 0..10u64 {
        produce(&mut sink, b * 10..b * 10 + 10);
    }
    wait_until(
        "six batches at the first collector",
        Duration::from_secs(10),
        || db.lock().unwrap().received.len() >= 6,
    );
    first.shutdown();
    let seen_by_first: Vec<(u64, u64)> = db.lock().unwrap().received.clone();
    assert_eq!(seen_by_first.len(), 6, "{seen_by_first:?}");
    // Produced while the collector is down: spooled, sent later.
    for b in 10..13u64 {
        produce(&mut sink, b * 10..b * 10 + 10);
    }
    std::thread::sleep(Duration::from_millis(300));
    let second = Collector::start(addr, Behavior::Normal, db.clone());
    for b in 13..15u64 {
        produce(&mut sink, b * 10..b * 10 + 10);
    }
    wait_until("all batches committed", Duration::from_secs(20), || {
        db.lock().unwrap().committed.len() == 15
    });
    wait_until("spool emptied by acks", Duration::from_secs(10), || {
        uplink.spool_stats().batches == 0
    });
    let report = uplink.stop();
    assert_eq!(report.spooled_batches, 0);
    second.shutdown();

    // Union equals what was produced, each record once.
    assert_eq!(committed_samples(&db), (0..150).collect::<Vec<_>>());
    let d = db.lock().unwrap();
    let seqs: Vec<u64> = d.committed.keys().map(|k| k.1).collect();
    assert_eq!(seqs, (1..=15).collect::<Vec<_>>());
    // Batches 4..=6 reached the first collector unacknowledged: re-sent.
    let after: Vec<(u64, u64)> = d.received[6..].to_vec();
    for unacked in &seen_by_first[3..] {
        assert!(
            after.contains(unacked),
            "unacknowledged {unacked:?} was not re-sent: {after:?}"
        );
    }
    // Acknowledged batches may still come again: an ack in flight when the
    // first collector dropped the connection is never read by the agent.
    // Delivery is at least once; the committed set above shows the collector
    // side's dedup makes it exactly once.
    // Re-sent in order: the second collector saw the sequence ascending.
    let resent_seqs: Vec<u64> = after.iter().map(|k| k.1).collect();
    let mut sorted = resent_seqs.clone();
    sorted.sort_unstable();
    assert_eq!(resent_seqs, sorted);
    assert!(d.connections >= 2);
    drop(d);
    drop(sink);
    assert!(spool_files(tmp.path()).is_empty());
}

/// The collector a heartbeat says the agent is on: (index, failovers, url).
fn last_link(db: &SharedDb) -> Option<(u32, u64, String)> {
    let d = db.lock().unwrap();
    let c = d.heartbeats.last()?.health.collector.clone()?;
    Some((c.index, c.failovers, c.url))
}

#[test]
fn fails_over_to_the_next_collector_stays_there_and_wraps_around() {
    let tmp = tempfile::tempdir().unwrap();
    // A and B share one store (`db`), as two collectors on one data dir or
    // one database do; B is not running yet.
    let db = SharedDb::default();
    let a = Collector::start(
        "127.0.0.1:0".parse().unwrap(),
        Behavior::AckSome {
            acks: 3,
            close_after: 6,
        },
        db.clone(),
    );
    let (addr_a, addr_b) = (a.addr, free_addr());
    let url_b = format!("ws://{addr_b}/api/v1/agent");
    let mut cfg = config("", tmp.path());
    cfg.urls = Some(vec![a.url(), url_b.clone()]);
    let (uplink, mut sink) = start(&cfg, Arc::new(HealthState::new())).unwrap();
    for b in 0..10u64 {
        produce(&mut sink, b * 10..b * 10 + 10);
    }
    wait_until("six batches at A", Duration::from_secs(10), || {
        db.lock().unwrap().received.len() >= 6
    });
    wait_until("a heartbeat at A", Duration::from_secs(10), || {
        last_link(&db).is_some()
    });
    assert_eq!(last_link(&db).map(|l| (l.0, l.1)), Some((0, 0)));
    a.shutdown();
    let seen_by_a: Vec<(u64, u64)> = db.lock().unwrap().received.clone();
    for b in 10..13u64 {
        produce(&mut sink, b * 10..b * 10 + 10);
    }
    std::thread::sleep(Duration::from_millis(300));
    let b = Collector::start(addr_b, Behavior::Normal, db.clone());
    for n in 13..15u64 {
        produce(&mut sink, n * 10..n * 10 + 10);
    }
    wait_until(
        "all batches committed through B",
        Duration::from_secs(30),
        || db.lock().unwrap().committed.len() == 15,
    );
    wait_until("spool emptied by B's acks", Duration::from_secs(10), || {
        uplink.spool_stats().batches == 0
    });
    wait_until("a heartbeat naming B", Duration::from_secs(10), || {
        last_link(&db).is_some_and(|l| l.0 == 1)
    });
    assert_eq!(last_link(&db), Some((1, 1, url_b)));
    {
        let d = db.lock().unwrap();
        // A's unacknowledged batches went to B.
        let after = &d.received[seen_by_a.len()..];
        for unacked in &seen_by_a[3..] {
            assert!(
                after.contains(unacked),
                "{unacked:?} not re-sent: {after:?}"
            );
        }
        assert_eq!(
            d.enrolls.len(),
            1,
            "B took A's credential: no new enrollment"
        );
    }
    assert_eq!(committed_samples(&db), (0..150).collect::<Vec<_>>());

    // A is back (its own store here, to tell its traffic apart): the agent
    // stays on B, which works.
    let db_a = SharedDb::default();
    let a = Collector::start(addr_a, Behavior::Normal, db_a.clone());
    produce(&mut sink, 150..160);
    wait_until("B took the next batch", Duration::from_secs(10), || {
        db.lock().unwrap().committed.len() == 16
    });
    let beats = db.lock().unwrap().heartbeats.len();
    wait_until("more heartbeats at B", Duration::from_secs(10), || {
        db.lock().unwrap().heartbeats.len() >= beats + 5
    });
    assert_eq!(
        db_a.lock().unwrap().connections,
        0,
        "went back to A unasked"
    );

    // B dies: the list wraps around to A.
    b.shutdown();
    produce(&mut sink, 160..170);
    wait_until("a heartbeat at A again", Duration::from_secs(30), || {
        last_link(&db_a).is_some()
    });
    let (index, failovers, _) = last_link(&db_a).unwrap();
    assert_eq!((index, failovers), (0, 2));
    wait_until("the batch after B at A", Duration::from_secs(10), || {
        db_a.lock().unwrap().committed.len() == 1
    });
    assert_eq!(uplink.stop().spooled_batches, 0);
    a.shutdown();
    drop(sink);
}

#[test]
fn spool_survives_agent_restart_and_is_sent_first_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr(); // nobody listens yet
    let cfg = config(&format!("ws://{addr}/api/v1/agent"), tmp.path());

    let (uplink, mut sink) = start(&cfg, Arc::new(HealthState::new())).unwrap();
    let first_epoch = uplink.boot_epoch();
    for b in 0..3u64 {
        produce(&mut sink, b * 10..b * 10 + 10);
    }
    let report = uplink.stop_within(Duration::from_millis(300));
    assert_eq!(report.spooled_batches, 3);
    drop(sink);
    assert_eq!(spool_files(tmp.path()).len(), 3);

    // Next boot: more batches, then the collector appears.
    let (uplink, mut sink) = start(&cfg, Arc::new(HealthState::new())).unwrap();
    assert!(uplink.boot_epoch() > first_epoch);
    for b in 3..5u64 {
        produce(&mut sink, b * 10..b * 10 + 10);
    }
    wait_until("new boot's batches spooled", Duration::from_secs(5), || {
        uplink.spool_stats().batches == 5
    });
    let db = SharedDb::default();
    let server = Collector::start(addr, Behavior::Normal, db.clone());
    wait_until("five batches committed", Duration::from_secs(15), || {
        db.lock().unwrap().committed.len() == 5
    });
    assert_eq!(uplink.stop().spooled_batches, 0);
    server.shutdown();
    let d = db.lock().unwrap();
    let want: Vec<(u64, u64)> = vec![
        (first_epoch, 1),
        (first_epoch, 2),
        (first_epoch, 3),
        (d.hellos[0].boot_epoch, 1),
        (d.hellos[0].boot_epoch, 2),
    ];
    assert_eq!(d.received, want, "older boot first, each in sequence");
    drop(d);
    assert_eq!(committed_samples(&db), (0..50).collect::<Vec<_>>());
}

#[test]
fn refused_backs_off_without_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let db = SharedDb::default();
    let server = Collector::start("127.0.0.1:0".parse().unwrap(), Behavior::Refuse, db.clone());
    let cfg = config(&server.url(), tmp.path());
    let (uplink, mut sink) = start(&cfg, Arc::new(HealthState::new())).unwrap();
    produce(&mut sink, 0..3);
    std::thread::sleep(Duration::from_secs(3));
    {
        let d = db.lock().unwrap();
        assert!(d.connections >= 1);
        // Refusals are retried after seconds, not at the 0.5 s link-error pace.
        assert!(
            d.connections <= 2,
            "hammered: {} connections",
            d.connections
        );
        assert!(d.committed.is_empty());
    }
    assert!(!tmp.path().join("credential").exists());
    let report = uplink.stop_within(Duration::from_millis(300));
    assert_eq!(report.spooled_batches, 1, "refused data stays spooled");
    server.shutdown();
}

#[test]
fn malformed_collector_message_reconnects() {
    let tmp = tempfile::tempdir().unwrap();
    let db = SharedDb::default();
    let server = Collector::start(
        "127.0.0.1:0".parse().unwrap(),
        Behavior::GarbageFirst,
        db.clone(),
    );
    let cfg = config(&server.url(), tmp.path());
    let (uplink, mut sink) = start(&cfg, Arc::new(HealthState::new())).unwrap();
    produce(&mut sink, 0..4);
    wait_until(
        "delivery after reconnecting",
        Duration::from_secs(10),
        || db.lock().unwrap().committed.len() == 1,
    );
    assert_eq!(uplink.stop().spooled_batches, 0);
    // enroll, Hello answered with garbage, Hello again on a new connection
    let d = db.lock().unwrap();
    assert!(d.connections >= 3, "{d:?}");
    assert!(d.hellos.len() >= 2, "{d:?}");
    drop(d);
    server.shutdown();
}

#[test]
fn json_debug_sends_text_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let db = SharedDb::default();
    let server = Collector::start("127.0.0.1:0".parse().unwrap(), Behavior::Normal, db.clone());
    let mut cfg = config(&server.url(), tmp.path());
    cfg.json_debug = true;
    let (uplink, mut sink) = start(&cfg, Arc::new(HealthState::new())).unwrap();
    produce(&mut sink, 0..4);
    wait_until("delivery", Duration::from_secs(10), || {
        db.lock().unwrap().committed.len() == 1
    });
    assert_eq!(uplink.stop().spooled_batches, 0);
    let d = db.lock().unwrap();
    assert!(d.text_frames >= 3, "{d:?}");
    assert_eq!(d.binary_frames, 0);
    drop(d);
    server.shutdown();
}

struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn pki(san: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![san.to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: Arc::new(server),
    }
}

#[test]
fn wss_trusts_only_the_collector_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let good = pki("127.0.0.1");
    let db = SharedDb::default();
    let server = Collector::start_with(
        "127.0.0.1:0".parse().unwrap(),
        Behavior::Normal,
        db.clone(),
        Some(good.server.clone()),
    );
    let ca_path = tmp.path().join("ca.pem");
    std::fs::write(&ca_path, &good.ca_pem).unwrap();
    let mut cfg = config(
        &format!("wss://127.0.0.1:{}/api/v1/agent", server.addr.port()),
        &tmp.path().join("state"),
    );
    cfg.ca_cert = Some(ca_path.clone());
    let (uplink, mut sink) = start(&cfg, Arc::new(HealthState::new())).unwrap();
    produce(&mut sink, 0..4);
    wait_until("delivery over TLS", Duration::from_secs(10), || {
        db.lock().unwrap().committed.len() == 1
    });
    assert_eq!(uplink.stop().spooled_batches, 0);

    // Another CA: the handshake fails, nothing is delivered, nothing crashes.
    let other = pki("127.0.0.1");
    std::fs::write(&ca_path, &other.ca_pem).unwrap();
    let (uplink, mut sink) = start(&cfg, Arc::new(HealthState::new())).unwrap();
    produce(&mut sink, 4..8);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        db.lock().unwrap().hellos.len(),
        1,
        "no Hello over an untrusted link"
    );
    assert_eq!(
        uplink
            .stop_within(Duration::from_millis(200))
            .spooled_batches,
        1
    );
    server.shutdown();

    // A CA file that is not PEM is a start-up error naming the file.
    std::fs::write(&ca_path, "junk").unwrap();
    let err = start(&cfg, Arc::new(HealthState::new()))
        .err()
        .expect("bad CA must fail")
        .to_string();
    assert!(err.contains("ca.pem"), "{err}");
}

#[test]
fn cli_realtime_replay_streams_to_the_collector() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let db = SharedDb::default();
    let server = Collector::start("127.0.0.1:0".parse().unwrap(), Behavior::Normal, db.clone());
    let cfg_path = tmp.path().join("agent.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[agent]\nid = \"fixture-router\"\nstate_dir = \"{}\"\n[collector]\nurl = \"{}\"\nenroll_token = \"tok-1\"\nbatch_interval_ms = 100\n",
            tmp.path().join("state").display(),
            server.url(),
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_simpul-agent");
    let pcap = fixtures.join("http.pcap");
    let out = std::process::Command::new(bin)
        .args(["replay", "--realtime", "--json-summary", "--config"])
        .arg(&cfg_path)
        .arg("--pcap")
        .arg(&pcap)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let flows = summary["flows"].as_u64().unwrap();
    assert!(flows > 0, "{summary}");
    let d = db.lock().unwrap();
    let delivered: usize = d.committed.values().map(|b| b.flows.len()).sum();
    assert_eq!(
        delivered as u64, flows,
        "every final record reached the collector"
    );
    assert!(d.committed.values().any(|b| !b.counters.is_empty()));
    assert_eq!(
        d.enrolls[0].node_id, "fixture-router",
        "node_id defaults to agent.id"
    );
    drop(d);
    assert!(
        spool_files(&tmp.path().join("state")).is_empty(),
        "all acknowledged"
    );
    server.shutdown();

    // Without a collector, --flows-out stays required.
    let out = std::process::Command::new(bin)
        .args(["replay", "--pcap"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--flows-out is required"));
}

#[test]
fn without_credential_or_token_it_does_not_connect() {
    let tmp = tempfile::tempdir().unwrap();
    let db = SharedDb::default();
    let server = Collector::start("127.0.0.1:0".parse().unwrap(), Behavior::Normal, db.clone());
    let mut cfg = config(&server.url(), tmp.path());
    cfg.enroll_token = None;
    let (uplink, mut sink) = start(&cfg, Arc::new(HealthState::new())).unwrap();
    produce(&mut sink, 0..2);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(db.lock().unwrap().connections, 0);
    let report = uplink.stop_within(Duration::from_millis(200));
    assert_eq!(
        report.spooled_batches, 1,
        "kept for when a credential appears"
    );
    assert!(report.clean);
    server.shutdown();
}

/// A caller that stops the uplink without `seal_now` (the sink still holds
/// records) loses nothing: dropping the sink spools them for the next start.
#[test]
fn records_left_in_the_sink_after_stop_are_spooled() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let cfg = config(&format!("ws://{addr}/api/v1/agent"), tmp.path());
    let (uplink, mut sink) = start(&cfg, Arc::new(HealthState::new())).unwrap();
    produce(&mut sink, 0..3);
    for n in 3..5 {
        sink.counters(sample(n)); // gathered, not sealed
    }
    uplink.stop_within(Duration::from_millis(200));
    drop(sink);
    assert_eq!(spool_files(tmp.path()).len(), 2);

    let db = SharedDb::default();
    let server = Collector::start(addr, Behavior::Normal, db.clone());
    let (uplink, _sink) = start(&cfg, Arc::new(HealthState::new())).unwrap();
    wait_until("both batches delivered", Duration::from_secs(10), || {
        db.lock().unwrap().committed.len() == 2
    });
    uplink.stop();
    assert_eq!(committed_samples(&db), (0..5).collect::<Vec<_>>());
    let seqs: Vec<u64> = db.lock().unwrap().committed.keys().map(|k| k.1).collect();
    assert_eq!(seqs, [1, 2]);
    server.shutdown();
}
