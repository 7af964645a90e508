//! End-to-end tests of the notification component against real receivers
//! in the test: an HTTP server (Telegram, WhatsApp gateways, webhook, also
//! over HTTPS) and a minimal SMTP server. Timings are shortened through
//! `[notify.delivery]`, so every test runs in about a second.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;

// ---------------------------------------------------------------------------
// Receivers

#[derive(Debug, Clone)]
struct Req {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: String,
    at: Instant,
}

impl Req {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{} body is not JSON ({e}): {}", self.path, self.body))
    }

    fn form(&self) -> BTreeMap<String, String> {
        form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Per path: the answers (status, body) to give next.
type Script = HashMap<String, VecDeque<(u16, String)>>;

/// Records every request; answers from a per-path script, else 200 with a
/// body every gateway takes as success.
#[derive(Clone, Default)]
struct Receiver {
    reqs: Arc<Mutex<Vec<Req>>>,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    fn answer(&self, path: &str, answers: &[(u16, &str)]) {
        self.script.lock().unwrap().insert(
            path.to_string(),
            answers.iter().map(|(c, b)| (*c, b.to_string())).collect(),
        );
    }

    fn requests(&self) -> Vec<Req> {
        self.reqs.lock().unwrap().clone()
    }

    fn to(&self, prefix: &str) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    fn count(&self) -> usize {
        self.reqs.lock().unwrap().len()
    }

    fn app(&self) -> axum::Router {
        axum::Router::new()
            .fallback(record)
            .with_state(self.clone())
    }

    async fn serve(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = self.app();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }

    /// Over HTTPS with a certificate from a private CA; returns the CA file.
    async fn serve_tls(&self, dir: &Path) -> (SocketAddr, PathBuf) {
        let files = crate::tls::ensure(&crate::config::ServerConfig::default(), dir).unwrap();
        let cfg = crate::tls::server_config(&files).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = self.app();
        tokio::spawn(async move {
            let _ = axum_server::from_tcp_rustls(
                listener,
                axum_server::tls_rustls::RustlsConfig::from_config(cfg),
            )
            .serve(app.into_make_service())
            .await;
        });
        (addr, files.ca_cert.unwrap())
    }
}

async fn record(
    State(rx): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let path = uri.path().to_string();
    rx.reqs.lock().unwrap().push(Req {
        method,
        path: path.clone(),
        query: uri.query().map(str::to_string),
        headers,
        body,
        at: Instant::now(),
    });
    let scripted = rx
        .script
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    let (code, body) =
        scripted.unwrap_or((200, r#"{"ok":true,"status":true,"sent":true}"#.to_string()));
    let mut resp = (StatusCode::from_u16(code).unwrap(), body).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    resp
}

#[derive(Debug, Clone, Default)]
struct Mail {
    helo: String,
    from: String,
    to: Vec<String>,
    data: String,
}

/// Just enough SMTP: 220, EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
async fn smtp_sink() -> (SocketAddr, Arc<Mutex<Vec<Mail>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let store = mails.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let _ = smtp_session(sock, store).await;
            });
        }
    });
    (addr, mails)
}

async fn smtp_session(
    sock: tokio::net::TcpStream,
    mails: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut mail = Mail::default();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let up = cmd.to_ascii_uppercase();
        if up.starts_with("EHLO") || up.starts_with("HELO") {
            mail.helo = cmd[4..].trim().to_string();
            w.write_all(b"250-sink.test\r\n250 8BITMIME\r\n").await?;
        } else if up.starts_with("MAIL FROM:") {
            mail.from = cmd[10..].trim().to_string();
            w.write_all(b"250 OK\r\n").await?;
        } else if up.starts_with("RCPT TO:") {
            mail.to.push(cmd[8..].trim().to_string());
            w.write_all(b"250 OK\r\n").await?;
        } else if up == "DATA" {
            w.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(&line);
            }
            mail.data = data;
            mails.lock().unwrap().push(std::mem::take(&mut mail));
            w.write_all(b"250 queued\r\n").await?;
        } else if up == "QUIT" {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if up == "RSET" || up == "NOOP" {
            w.write_all(b"250 OK\r\n").await?;
        } else {
            w.write_all(b"502 not implemented\r\n").await?;
        }
    }
}

/// Undo quoted-printable soft breaks and escapes (enough for assertions).
fn unqp(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------
// Helpers

/// 2024-05-06 00:00:00 UTC (07:00 WIB, a Monday).
const T0: u64 = 1_714_953_600_000;

const FAST: &str = r#"
[notify.delivery]
retry_initial_ms = 100
retry_max_ms = 400
max_attempts = 5
poll_ms = 50
stop_grace_ms = 1000
"#;

fn config(text: &str) -> NotifyConfig {
    #[derive(serde::Deserialize)]
    struct File {
        notify: NotifyConfig,
    }
    let f: File = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    f.notify.check().unwrap_or_else(|e| panic!("{e:?}"));
    f.notify
}

fn note(incident_id: i64, state: NotifyState) -> Notification {
    Notification {
        incident_id,
        state,
        severity: Severity::Critical,
        agency: "dinkes".into(),
        node: Some("dinkes-01".into()),
        kind: "node_down".into(),
        title: "Node dinkes-01 mati".into(),
        body: "Tidak ada heartbeat sejak 07:00 WIB.\nTerdampak: 2 node (dinkes-02, dinkes-03)."
            .into(),
        labels: [("site".to_string(), "gedung-a".to_string())].into(),
        starts_at_ms: T0,
        ends_at_ms: match state {
            NotifyState::Resolved => Some(T0 + 300_000),
            _ => None,
        },
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stop(n: Notifier) {
    tokio::task::spawn_blocking(move || n.stop()).await.unwrap();
}

fn statuses(n: &Notifier, incident: i64) -> Vec<(String, String, Status)> {
    n.for_incident(incident)
        .unwrap()
        .into_iter()
        .map(|e| (e.channel, e.state, e.status))
        .collect()
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_channels_deliver_expected_bodies() {
    let rx = Receiver::default();
    let addr = rx.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&format!(
        r#"
[notify]
dashboard_url = "http://noc.example/"

[notify.telegram.tg]
token = "123:SECRET"
chat_ids = ["-1001", "-1002"]
base_url = "http://{addr}/tg/"

[notify.whatsapp.fonnte]
url = "http://{addr}/fonnte/send"
format = "form"
body_template = "target={{{{phone}}}}&message={{{{text}}}}&countryCode=62"
phones = ["08111", "08222"]
headers = {{ Authorization = "fonnte-token" }}
success_pointer = "/status"

[notify.whatsapp.waha]
url = "http://{addr}/waha/api/sendText?session={{{{agency}}}}"
body_template = '{{"chatId": "{{{{phones}}}}", "text": "*{{{{title}}}}*\n{{{{body}}}}", "sev": "{{{{severity}}}}", "node": "{{{{node}}}}", "state": "{{{{state}}}}"}}'
phones = ["62811@c.us"]
success_pointer = "/sent"

[notify.webhook.am]
url = "http://{addr}/am"
headers = {{ Authorization = "Bearer abc" }}

[[notify.routes]]
channels = ["tg", "fonnte", "waha", "am"]
{FAST}"#
    ));
    let n = Notifier::start(cfg, &dir.path().join("simpul.db")).unwrap();
    assert_eq!(n.enqueue(&note(42, NotifyState::Firing)).unwrap(), 4);
    wait_for("6 firing requests", || rx.count() == 6).await;

    // Telegram: one sendMessage per chat, HTML with a bold headline.
    let tg = rx.to("/tg/");
    assert_eq!(tg.len(), 2);
    for (r, chat) in tg.iter().zip(["-1001", "-1002"]) {
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.path, "/tg/bot123:SECRET/sendMessage");
        let j = r.json();
        assert_eq!(j["chat_id"], chat);
        assert_eq!(j["parse_mode"], "HTML");
        // The acknowledgement button (see telegram_ack.rs).
        assert_eq!(
            j["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
            "ack:42"
        );
        let text = j["text"].as_str().unwrap();
        assert!(
            text.starts_with("<b>[KRITIS] GANGGUAN: Node dinkes-01 mati</b>\n\n"),
            "{text}"
        );
        assert!(
            text.contains("Tidak ada heartbeat sejak 07:00 WIB."),
            "{text}"
        );
        assert!(
            text.contains("Instansi: dinkes · Node: dinkes-01"),
            "{text}"
        );
        assert!(text.contains("Mulai: 2024-05-06 07:00:00 WIB"), "{text}");
        assert!(text.contains("Insiden #42 (node_down)"), "{text}");
        assert!(text.contains("Dasbor: http://noc.example/"), "{text}");
    }

    // Fonnte-style form gateway: one request per phone.
    let f = rx.to("/fonnte/");
    assert_eq!(f.len(), 2);
    for (r, phone) in f.iter().zip(["08111", "08222"]) {
        assert_eq!(
            r.header("content-type"),
            "application/x-www-form-urlencoded"
        );
        assert_eq!(r.header("authorization"), "fonnte-token");
        let form = r.form();
        assert_eq!(form["target"], phone);
        assert_eq!(form["countryCode"], "62");
        assert!(form["message"].starts_with("[KRITIS] GANGGUAN: Node dinkes-01 mati\n\n"));
        assert!(form["message"].contains("Terdampak: 2 node"));
    }

    // WAHA-style JSON gateway: placeholders JSON-escaped, one request for all.
    let w = rx.to("/waha/");
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].query.as_deref(), Some("session=dinkes"));
    assert_eq!(w[0].header("content-type"), "application/json");
    let j = w[0].json();
    assert_eq!(j["chatId"], "62811@c.us");
    assert_eq!(
        j["text"],
        "*Node dinkes-01 mati*\nTidak ada heartbeat sejak 07:00 WIB.\nTerdampak: 2 node (dinkes-02, dinkes-03)."
    );
    assert_eq!(j["sev"], "KRITIS");
    assert_eq!(j["node"], "dinkes-01");
    assert_eq!(j["state"], "GANGGUAN");

    // Alertmanager webhook, version 4.
    let am = rx.to("/am");
    assert_eq!(am.len(), 1);
    assert_eq!(am[0].header("authorization"), "Bearer abc");
    assert_eq!(am[0].header("content-type"), "application/json");
    let j = am[0].json();
    assert_eq!(j["version"], "4");
    assert_eq!(j["status"], "firing");
    assert_eq!(j["receiver"], "am");
    assert_eq!(j["groupKey"], "{}:{incident_id=\"42\"}");
    assert_eq!(j["truncatedAlerts"], 0);
    assert_eq!(j["groupLabels"], serde_json::json!({"incident_id": "42"}));
    assert_eq!(j["externalURL"], "http://noc.example/");
    assert_eq!(j["commonLabels"]["alertname"], "node_down");
    let alerts = j["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a["status"], "firing");
    assert_eq!(
        a["labels"],
        serde_json::json!({
            "alertname": "node_down", "severity": "critical", "agency": "dinkes",
            "node": "dinkes-01", "incident_id": "42", "site": "gedung-a"
        })
    );
    assert_eq!(a["annotations"]["summary"], "Node dinkes-01 mati");
    assert!(a["annotations"]["description"]
        .as_str()
        .unwrap()
        .starts_with("Tidak ada heartbeat"));
    assert_eq!(a["annotations"]["simpul_state"], "firing");
    assert_eq!(a["startsAt"], "2024-05-06T00:00:00.000Z");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(a["generatorURL"], "http://noc.example/");
    let fp = a["fingerprint"].as_str().unwrap();
    assert!(
        fp.len() == 16 && fp.chars().all(|c| c.is_ascii_hexdigit()),
        "{fp}"
    );

    // Resolved: the same channels, Alertmanager status resolved with endsAt.
    assert_eq!(n.enqueue(&note(42, NotifyState::Resolved)).unwrap(), 4);
    wait_for("6 resolved requests", || rx.count() == 12).await;
    let am = rx.to("/am");
    let j = am[1].json();
    assert_eq!(j["status"], "resolved");
    assert_eq!(j["alerts"][0]["status"], "resolved");
    assert_eq!(j["alerts"][0]["endsAt"], "2024-05-06T00:05:00.000Z");
    assert_eq!(
        j["alerts"][0]["fingerprint"], fp,
        "same alert, same fingerprint"
    );
    let tg = rx.to("/tg/");
    let text = tg[2].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("<b>[KRITIS] PULIH: Node dinkes-01 mati</b>"),
        "{text}"
    );
    assert!(text.contains("Selesai: 2024-05-06 07:05:00 WIB"), "{text}");

    wait_for("all rows sent", || {
        n.recent(100)
            .unwrap()
            .iter()
            .all(|e| e.status == Status::Sent)
    })
    .await;
    let log = n.recent(100).unwrap();
    assert_eq!(log.len(), 8);
    let tg_row = log
        .iter()
        .find(|e| e.channel == "tg" && e.state == "firing")
        .unwrap();
    assert_eq!((tg_row.attempts, tg_row.progress), (1, 2));
    assert!(tg_row.sent_ms.is_some());
    assert_eq!(tg_row.title, "Node dinkes-01 mati");
    assert_eq!(n.stats()["tg"].sent, 2);
    stop(n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_email_reaches_smtp_sink() {
    let (smtp, mails) = smtp_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&format!(
        r#"
[notify.email.pimpinan]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "NOC Diskominfo <noc@example.go.id>"
to = ["kadis@example.go.id", "Kabid TIK <kabid@example.go.id>"]
hello_name = "collector.test"

[[notify.routes]]
min_severity = "major"
channels = ["pimpinan"]
{FAST}"#,
        port = smtp.port()
    ));
    let n = Notifier::start(cfg, &dir.path().join("simpul.db")).unwrap();
    assert_eq!(n.enqueue(&note(7, NotifyState::Firing)).unwrap(), 1);
    let minor = Notification {
        incident_id: 8,
        severity: Severity::Minor,
        ..note(8, NotifyState::Firing)
    };
    assert_eq!(n.enqueue(&minor).unwrap(), 0, "below the route's severity");
    wait_for("one e-mail", || mails.lock().unwrap().len() == 1).await;
    let m = mails.lock().unwrap()[0].clone();
    assert_eq!(m.helo, "collector.test");
    assert_eq!(m.from, "<noc@example.go.id>");
    assert_eq!(m.to, ["<kadis@example.go.id>", "<kabid@example.go.id>"]);
    let data = unqp(&m.data);
    assert!(
        data.contains("Subject: [Simpul] [KRITIS] GANGGUAN: Node dinkes-01 mati"),
        "{data}"
    );
    assert!(
        data.contains("From: \"NOC Diskominfo\" <noc@example.go.id>"),
        "{data}"
    );
    assert!(data.contains("kadis@example.go.id"), "{data}");
    assert!(
        data.contains("Content-Type: text/plain; charset=utf-8"),
        "{data}"
    );
    assert!(
        data.contains("Tidak ada heartbeat sejak 07:00 WIB."),
        "{data}"
    );
    assert!(
        data.contains("Instansi: dinkes · Node: dinkes-01"),
        "{data}"
    );
    wait_for("row sent", || {
        statuses(&n, 7) == [("pimpinan".into(), "firing".into(), Status::Sent)]
    })
    .await;
    stop(n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_retries_with_backoff_and_keeps_order() {
    let rx = Receiver::default();
    let addr = rx.serve().await;
    rx.answer(
        "/tg/bot1:SECRET/sendMessage",
        &[
            (
                500,
                r#"{"ok":false,"error_code":500,"description":"Internal Server Error"}"#,
            ),
            (502, "bad gateway"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&format!(
        r#"
[notify.telegram.tg]
token = "1:SECRET"
chat_ids = ["-1"]
base_url = "http://{addr}/tg"
[[notify.routes]]
channels = ["tg"]
{FAST}"#
    ));
    let n = Notifier::start(cfg, &dir.path().join("simpul.db")).unwrap();
    n.enqueue(&note(1, NotifyState::Firing)).unwrap();
    wait_for("first attempt", || rx.count() == 1).await;
    // Resolved while the firing is retrying: it waits for the firing.
    n.enqueue(&note(1, NotifyState::Resolved)).unwrap();
    wait_for("firing ×3 then resolved", || rx.count() == 4).await;
    let reqs = rx.requests();
    let texts: Vec<String> = reqs
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .collect();
    for t in &texts[..3] {
        assert!(t.contains("GANGGUAN"), "{t}");
    }
    assert!(texts[3].contains("PULIH"), "{}", texts[3]);
    // Backoff: retry 1 after 50–100 ms, retry 2 after 100–200 ms.
    let gap1 = reqs[1].at - reqs[0].at;
    let gap2 = reqs[2].at - reqs[1].at;
    assert!(gap1 >= Duration::from_millis(50), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(100), "{gap2:?}");
    assert!(gap2 < Duration::from_secs(2), "{gap2:?}");
    wait_for("both sent", || {
        statuses(&n, 1).iter().all(|(_, _, s)| *s == Status::Sent)
    })
    .await;
    let rows = n.for_incident(1).unwrap();
    assert_eq!(rows[0].state, "firing");
    assert_eq!(rows[0].attempts, 3);
    let err = rows[0].last_error.as_deref().unwrap();
    assert!(err.contains("502"), "{err}");
    assert!(
        !err.contains("SECRET"),
        "the token never reaches the log: {err}"
    );
    assert_eq!(rows[1].attempts, 1);
    let st = &n.stats()["tg"];
    assert_eq!((st.sent, st.retries, st.failed), (2, 2, 0));
    stop(n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_gives_up_visibly() {
    let rx = Receiver::default();
    let addr = rx.serve().await;
    rx.answer(
        "/tg/bot9:SECRET/sendMessage",
        &[(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
        )],
    );
    rx.answer("/down", &[(503, "maintenance"); 10]);
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &format!(
            r#"
[notify.telegram.tg]
token = "9:SECRET"
chat_ids = ["-1"]
base_url = "http://{addr}/tg"
[notify.telegram.nowhere]
token = "9:SECRET"
chat_ids = ["-1"]
base_url = "http://{closed}"
[notify.webhook.down]
url = "http://{addr}/down"
[[notify.routes]]
channels = ["tg", "down", "nowhere"]
{FAST}
max_attempts = 3
"#
        )
        .replace("max_attempts = 5\n", ""),
    );
    let n = Notifier::start(cfg, &dir.path().join("simpul.db")).unwrap();
    n.enqueue(&note(5, NotifyState::Firing)).unwrap();
    wait_for("all failed", || {
        statuses(&n, 5).iter().all(|(_, _, s)| *s == Status::Failed)
    })
    .await;
    let rows: BTreeMap<String, LogEntry> = n
        .for_incident(5)
        .unwrap()
        .into_iter()
        .map(|e| (e.channel.clone(), e))
        .collect();
    // 400 is permanent: one attempt.
    assert_eq!(rows["tg"].attempts, 1);
    assert!(rows["tg"]
        .last_error
        .as_deref()
        .unwrap()
        .contains("chat not found"));
    // 503 is not: max_attempts.
    assert_eq!(rows["down"].attempts, 3);
    assert_eq!(rx.to("/down").len(), 3);
    let e = rows["down"].last_error.as_deref().unwrap();
    assert!(
        e.contains("503") && e.contains("gave up after 3 attempts"),
        "{e}"
    );
    let e = rows["nowhere"].last_error.as_deref().unwrap();
    assert_eq!(rows["nowhere"].attempts, 3);
    assert!(!e.contains("SECRET"), "{e}");
    assert!(e.to_lowercase().contains("connect"), "{e}");
    assert_eq!(n.stats()["down"].failed, 1);
    stop(n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_enqueue_twice_sends_once() {
    let rx = Receiver::default();
    let addr = rx.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&format!(
        r#"
[notify.webhook.am]
url = "http://{addr}/am"
[[notify.routes]]
channels = ["am"]
{FAST}"#
    ));
    let n = Notifier::start(cfg, &dir.path().join("simpul.db")).unwrap();
    let h = n.handle();
    let f = note(3, NotifyState::Firing);
    assert_eq!(n.enqueue(&f).unwrap(), 1);
    assert_eq!(h.enqueue(&f).unwrap(), 0, "same key: no new row");
    wait_for("sent", || rx.count() == 1).await;
    assert_eq!(h.enqueue(&f).unwrap(), 0, "still nothing after it was sent");
    // Another transition of the same incident is another message.
    let esc = note(3, NotifyState::Escalated { level: 1 });
    assert_eq!(h.enqueue(&esc).unwrap(), 0, "no route takes escalations");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), 1);
    assert_eq!(n.recent(10).unwrap().len(), 1);
    stop(n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_restart_delivers_exactly_once() {
    let rx = Receiver::default();
    let addr = rx.serve().await;
    let dir = tempfile::tempdir().unwrap();
    // The collector's own store lives in the same file.
    let store =
        crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).unwrap();
    let db = store.path().to_path_buf();
    let text = |rate: u32| {
        format!(
            r#"
[notify.webhook.am]
url = "http://{addr}/am"
rate_per_minute = {rate}
[[notify.routes]]
channels = ["am"]
{FAST}"#
        )
    };
    // One message a minute: the first goes, two stay pending.
    let n = Notifier::start(config(&text(1)), &db).unwrap();
    for id in 1..=3 {
        assert_eq!(n.enqueue(&note(id, NotifyState::Firing)).unwrap(), 1);
    }
    wait_for("first sent", || rx.count() == 1).await;
    wait_for("two held", || n.stats()["am"].rate_limited == 2).await;
    stop(n).await;
    assert_eq!(rx.count(), 1);

    // Started again on the same file (without the limit): the two pending
    // go, the sent one does not, and re-enqueueing everything is a no-op.
    let n = Notifier::start(config(&text(0)), &db).unwrap();
    for id in 1..=3 {
        assert_eq!(n.enqueue(&note(id, NotifyState::Firing)).unwrap(), 0);
    }
    wait_for("all three delivered", || rx.count() == 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| {
            r.json()["groupLabels"]["incident_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["1", "2", "3"], "each exactly once");
    wait_for("all sent", || {
        n.recent(10)
            .unwrap()
            .iter()
            .all(|e| e.status == Status::Sent)
    })
    .await;
    stop(n).await;

    // The store still works on the shared file.
    store.reader().unwrap().check().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_rate_limit_holds_then_sends() {
    let rx = Receiver::default();
    let addr = rx.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&format!(
        r#"
[notify.webhook.am]
url = "http://{addr}/am"
rate_per_minute = 2
[notify.webhook.free]
url = "http://{addr}/free"
rate_per_minute = 0
[[notify.routes]]
channels = ["am", "free"]
{FAST}
rate_window_ms = 700
"#
    ));
    let n = Notifier::start(cfg, &dir.path().join("simpul.db")).unwrap();
    let t0 = Instant::now();
    for id in 1..=5 {
        n.enqueue(&note(id, NotifyState::Firing)).unwrap();
    }
    wait_for("unlimited channel", || rx.to("/free").len() == 5).await;
    wait_for("two in the first window", || rx.to("/am").len() == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.to("/am").len(), 2, "the rest is held");
    let pending = n
        .recent(20)
        .unwrap()
        .into_iter()
        .filter(|e| e.channel == "am" && e.status == Status::Pending)
        .count();
    assert_eq!(pending, 3);
    assert_eq!(n.stats()["am"].rate_limited, 3);
    wait_for("all five, later", || rx.to("/am").len() == 5).await;
    let am = rx.to("/am");
    // Windows of 700 ms: 2 + 2 + 1, oldest first. The limiter counts when
    // a send starts (the log's last attempt); arrival adds connection setup.
    wait_for("all sent", || {
        n.recent(20)
            .unwrap()
            .iter()
            .all(|e| e.status == Status::Sent)
    })
    .await;
    let mut started: Vec<u64> = n
        .recent(20)
        .unwrap()
        .into_iter()
        .filter(|e| e.channel == "am")
        .map(|e| e.last_attempt_ms.unwrap())
        .collect();
    started.sort();
    assert!(started[2] - started[0] >= 700, "{started:?}");
    assert!(started[4] - started[2] >= 700, "{started:?}");
    assert!(started[4] - started[0] < 2000, "{started:?}");
    assert!(am[2].at - am[0].at >= Duration::from_millis(500));
    assert!(t0.elapsed() < Duration::from_secs(5));
    let order: Vec<String> = am
        .iter()
        .map(|r| {
            r.json()["groupLabels"]["incident_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(order, ["1", "2", "3", "4", "5"]);
    assert_eq!(n.stats()["free"].rate_limited, 0);
    stop(n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_routing_by_severity_agency_time_and_escalation() {
    let rx = Receiver::default();
    let addr = rx.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&format!(
        r#"
[notify.webhook.noc]
url = "http://{addr}/noc"
[notify.webhook.dinkes]
url = "http://{addr}/dinkes"
[notify.webhook.malam]
url = "http://{addr}/malam"
[notify.webhook.kabid]
url = "http://{addr}/kabid"

[[notify.routes]]
name = "noc kantor"
min_severity = "major"
channels = ["noc"]
window = {{ days = ["mon", "tue", "wed", "thu", "fri"], from = "07:30", to = "16:00" }}
[[notify.routes]]
name = "piket malam"
min_severity = "critical"
channels = ["malam"]
window = {{ from = "16:00", to = "07:30" }}
[[notify.routes]]
agencies = ["dinkes"]
channels = ["dinkes"]
[[notify.routes]]
states = ["escalated"]
escalation_levels = [1]
channels = ["kabid"]
{FAST}"#
    ));
    let n = Notifier::start(cfg, &dir.path().join("simpul.db")).unwrap();
    let at = |h: u64, m: u64| T0 - 7 * 3_600_000 + (h * 60 + m) * 60_000; // Monday, WIB
    let channels = |id: i64| -> Vec<String> {
        let mut v: Vec<String> = n
            .for_incident(id)
            .unwrap()
            .into_iter()
            .map(|e| format!("{}:{}", e.channel, e.state))
            .collect();
        v.sort();
        v
    };
    let mk = |id: i64, sev: Severity, agency: &str| Notification {
        severity: sev,
        agency: agency.into(),
        ..note(id, NotifyState::Firing)
    };
    n.enqueue_at(&mk(1, Severity::Major, "bappeda"), at(10, 0))
        .unwrap();
    n.enqueue_at(&mk(2, Severity::Major, "bappeda"), at(20, 0))
        .unwrap();
    n.enqueue_at(&mk(3, Severity::Critical, "bappeda"), at(20, 0))
        .unwrap();
    n.enqueue_at(&mk(4, Severity::Minor, "dinkes"), at(10, 0))
        .unwrap();
    n.enqueue_at(&mk(5, Severity::Critical, "dinkes"), at(7, 0))
        .unwrap();
    assert_eq!(channels(1), ["noc:firing"]);
    assert!(channels(2).is_empty(), "major at night reaches nobody");
    assert_eq!(channels(3), ["malam:firing"]);
    assert_eq!(channels(4), ["dinkes:firing"]);
    assert_eq!(channels(5), ["dinkes:firing", "malam:firing"]);

    wait_for("firings sent", || {
        n.recent(100)
            .unwrap()
            .iter()
            .all(|e| e.status == Status::Sent)
    })
    .await;
    // Escalation: level 1's contacts; level 2 has none configured.
    n.enqueue_at(&note(3, NotifyState::Escalated { level: 1 }), at(20, 30))
        .unwrap();
    n.enqueue_at(&note(3, NotifyState::Escalated { level: 2 }), at(20, 40))
        .unwrap();
    wait_for("escalation sent", || {
        n.recent(100)
            .unwrap()
            .iter()
            .all(|e| e.status == Status::Sent)
    })
    .await;
    // Resolved in office hours: the routes now say "noc", and everyone who
    // was told (malam, kabid) hears it too.
    let resolved = Notification {
        agency: "bappeda".into(),
        ..note(3, NotifyState::Resolved)
    };
    n.enqueue_at(&resolved, at(8, 0)).unwrap();
    assert_eq!(
        channels(3),
        [
            "kabid:escalated:1",
            "kabid:resolved",
            "malam:firing",
            "malam:resolved",
            "noc:resolved"
        ]
    );
    wait_for("everything sent", || {
        n.recent(100)
            .unwrap()
            .iter()
            .all(|e| e.status == Status::Sent)
    })
    .await;
    let kabid = rx.to("/kabid");
    assert_eq!(
        kabid[0].json()["alerts"][0]["annotations"]["escalation_level"],
        "1"
    );
    stop(n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_resolved_before_sent_is_suppressed() {
    let rx = Receiver::default();
    let addr = rx.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&format!(
        r#"
[notify.webhook.am]
url = "http://{addr}/am"
rate_per_minute = 1
[[notify.routes]]
channels = ["am"]
{FAST}
rate_window_ms = 60000
"#
    ));
    let n = Notifier::start(cfg, &dir.path().join("simpul.db")).unwrap();
    // Incident 1 goes out and uses the minute; incident 2 is held.
    n.enqueue(&note(1, NotifyState::Firing)).unwrap();
    wait_for("first sent", || rx.count() == 1).await;
    n.enqueue(&note(2, NotifyState::Firing)).unwrap();
    wait_for("held", || n.stats()["am"].rate_limited == 1).await;
    // Incident 2 ends before its firing could go: neither is sent.
    n.enqueue(&note(2, NotifyState::Resolved)).unwrap();
    assert_eq!(
        statuses(&n, 2),
        [
            ("am".into(), "firing".into(), Status::Suppressed),
            ("am".into(), "resolved".into(), Status::Suppressed)
        ]
    );
    let rows = n.for_incident(2).unwrap();
    assert!(rows[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("resolved before"));
    // Incident 1 was told: its resolved waits for the rate limit, pending.
    n.enqueue(&note(1, NotifyState::Resolved)).unwrap();
    assert_eq!(statuses(&n, 1)[1].2, Status::Pending);
    assert_eq!(rx.count(), 1);
    let counts = n.handle().counts().unwrap();
    assert_eq!(counts[&Status::Suppressed], 2);
    stop(n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_webhook_over_https_with_private_ca() {
    let rx = Receiver::default();
    let dir = tempfile::tempdir().unwrap();
    let (addr, ca) = rx.serve_tls(dir.path()).await;
    let cfg = config(
        &format!(
            r#"
[notify.webhook.secure]
url = "https://127.0.0.1:{port}/am"
ca_cert = "{ca}"
[notify.webhook.untrusted]
url = "https://127.0.0.1:{port}/other"
[[notify.routes]]
channels = ["secure", "untrusted"]
{FAST}
max_attempts = 1
"#,
            port = addr.port(),
            ca = ca.display()
        )
        .replace("max_attempts = 5\n", ""),
    );
    let n = Notifier::start(cfg, &dir.path().join("simpul.db")).unwrap();
    n.enqueue(&note(11, NotifyState::Firing)).unwrap();
    wait_for("both final", || {
        statuses(&n, 11)
            .iter()
            .all(|(_, _, s)| *s != Status::Pending)
    })
    .await;
    let rows: BTreeMap<String, LogEntry> = n
        .for_incident(11)
        .unwrap()
        .into_iter()
        .map(|e| (e.channel.clone(), e))
        .collect();
    assert_eq!(rows["secure"].status, Status::Sent);
    assert_eq!(rx.to("/am").len(), 1);
    // Without the CA the certificate is refused (public roots only).
    assert_eq!(rows["untrusted"].status, Status::Failed);
    let e = rows["untrusted"].last_error.as_deref().unwrap();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert!(rx.to("/other").is_empty());
    stop(n).await;
}

#[test]
fn notify_start_reports_missing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        r#"
[notify.telegram.tg]
token = "env:SIMPUL_TEST_SURELY_UNSET_TOKEN"
chat_ids = ["-1"]
"#,
    );
    let e = Notifier::start(cfg, &dir.path().join("simpul.db"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("notify.telegram.tg.token: environment variable SIMPUL_TEST_SURELY_UNSET_TOKEN is not set"),
        "{e}"
    );
    assert_eq!(secret("plain", "x").unwrap(), "plain");
    assert_eq!(
        secret("env:PATH", "x").unwrap(),
        std::env::var("PATH").unwrap()
    );
}

/// The outage monitor's alerts through [`NotifyHandle::alert_sink`]: their
/// titles already carry the state word, which the headline does not repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_outage_alerts_through_the_sink() {
    use crate::outage::monitor::{Alert, AlertState};
    let rx = Receiver::default();
    let addr = rx.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&format!(
        r#"
[notify.telegram.tg]
token = "1:T"
chat_ids = ["-1"]
base_url = "http://{addr}"
[[notify.routes]]
channels = ["tg"]
[[notify.routes]]
states = ["escalated"]
channels = ["tg"]
{FAST}"#
    ));
    let n = Notifier::start(cfg, &dir.path().join("simpul.db")).unwrap();
    let sink = n.handle().alert_sink();
    let alert = |state, title: &str| Alert {
        incident_id: 77,
        state,
        severity: "critical".into(),
        agency: "dinkes".into(),
        node: "dinkes-01".into(),
        kind: "node_down".into(),
        title: title.into(),
        body: "Node dinkes-01 tidak mengirim heartbeat sejak 07:00.".into(),
        starts_at_ms: T0,
        ends_at_ms: None,
        labels: Default::default(),
    };
    sink(&alert(AlertState::Firing, "PADAM: dinkes-01 (dinkes)")).unwrap();
    sink(&alert(AlertState::Firing, "PADAM: dinkes-01 (dinkes)")).unwrap();
    wait_for("firing", || rx.count() == 1).await;
    sink(&alert(
        AlertState::Escalated(1),
        "Eskalasi 1: PADAM: dinkes-01 (dinkes)",
    ))
    .unwrap();
    wait_for("escalation", || rx.count() == 2).await;
    sink(&alert(AlertState::Resolved, "PULIH: dinkes-01 (dinkes)")).unwrap();
    wait_for("resolved", || rx.count() == 3).await;
    let heads: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| {
            let t = r.json()["text"].as_str().unwrap().to_string();
            t.lines().next().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        heads,
        [
            "<b>[KRITIS] PADAM: dinkes-01 (dinkes)</b>",
            "<b>[KRITIS] Eskalasi 1: PADAM: dinkes-01 (dinkes)</b>",
            "<b>[KRITIS] PULIH: dinkes-01 (dinkes)</b>",
        ]
    );
    let states: Vec<String> = n
        .for_incident(77)
        .unwrap()
        .into_iter()
        .map(|e| e.state)
        .collect();
    assert_eq!(states, ["firing", "escalated:1", "resolved"]);
    stop(n).await;
}
