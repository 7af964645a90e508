//! Helpers for tests against an in-process collector: an agent's TLS
//! WebSocket (enroll, hello, batches) and plain HTTP GETs of the API.
#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use simpul_collector::config::CollectorConfig;
use simpul_collector::server::Collector;
use simpul_proto::inventory::{Agency, Inventory, Node};
use simpul_proto::wire::{self, AgentMessage, Batch, CollectorMessage, Enroll, Hello};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A collector on loopback ports in `dir` with these agencies.
pub async fn collector(dir: &std::path::Path, agencies: &[&str]) -> Collector {
    start(base_config(dir), agencies, vec![]).await
}

/// Loopback listeners, storage in `dir`.
pub fn base_config(dir: &std::path::Path) -> CollectorConfig {
    let mut cfg = CollectorConfig::default();
    cfg.server.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.server.listen_tls = Some("127.0.0.1:0".parse().unwrap());
    cfg.storage.data_dir = dir.to_owned();
    cfg
}

/// A collector of several on one PostgreSQL control store, named `id`,
/// with `extra` collector.toml after its storage sections.
pub fn postgres_config(
    dir: &std::path::Path,
    url: &str,
    id: &str,
    lease_secs: u64,
    extra: &str,
) -> CollectorConfig {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
listen_tls = "127.0.0.1:0"

[storage]
data_dir = "{dir}"

[storage.control]
backend = "postgres"
url = "{url}"
lease_secs = {lease_secs}
collector_id = "{id}"
{extra}"#,
        dir = dir.display()
    );
    CollectorConfig::parse(&text, std::path::Path::new("collector.toml")).unwrap()
}

/// Start `cfg` with an inventory of these agencies and nodes (tests add
/// nodes as they enroll them: [`add_node`]).
pub async fn start(cfg: CollectorConfig, agencies: &[&str], nodes: Vec<Node>) -> Collector {
    let c = Collector::start(cfg).await.unwrap();
    with_inventory(c, agencies, nodes)
}

/// An API token of `role` ("admin", "operator", "viewer", or "agency" with
/// `agency`) on this collector.
pub fn token(c: &Collector, role: &str, agency: Option<&str>) -> String {
    let role = simpul_collector::auth::Role::parse(role, agency).unwrap();
    c.state
        .access
        .create_api_token(&simpul_collector::store::NewApiToken {
            name: &format!("test-{role}"),
            role: &role,
            kiosk: false,
            created_by: "test",
            now_ms: simpul_collector::state::now_ms(),
            expires_ms: None,
        })
        .unwrap()
        .0
}

/// The header line of a bearer token, for [`raw_request`].
pub fn bearer(t: &str) -> String {
    format!("Authorization: Bearer {t}\r\n")
}

/// The admin token requests use unless told otherwise, per collector.
fn admin_token(c: &Collector) -> String {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static TOKENS: OnceLock<Mutex<HashMap<SocketAddr, String>>> = OnceLock::new();
    let addr = c.http_addr.unwrap();
    let mut m = TOKENS.get_or_init(Default::default).lock().unwrap();
    m.entry(addr)
        .or_insert_with(|| token(c, "admin", None))
        .clone()
}

/// The same with flows kept in memory (the control store stays SQLite).
pub async fn start_in_memory(cfg: CollectorConfig, agencies: &[&str]) -> Collector {
    use simpul_collector::store::{memory::MemoryFlowStore, Store};
    let store_cfg = simpul_collector::server::store_config(&cfg);
    let control = Arc::new(Store::open(&cfg.storage.data_dir, store_cfg.clone()).unwrap());
    let flows = Arc::new(MemoryFlowStore::new(store_cfg));
    let c = Collector::start_with(cfg, flows, control.clone(), control)
        .await
        .unwrap();
    with_inventory(c, agencies, vec![])
}

fn with_inventory(c: Collector, agencies: &[&str], nodes: Vec<Node>) -> Collector {
    let inv = Inventory {
        agencies: agencies
            .iter()
            .map(|code| Agency {
                code: (*code).into(),
                name: (*code).into(),
                units: vec![],
            })
            .collect(),
        nodes,
        ..Inventory::default()
    };
    c.state.inventory.set(&inv).unwrap();
    c.state.outage.set_topology(c.state.inventory.topology());
    c
}

/// A node of `agency` in the inventory (an operator adds a router there
/// before issuing its enrollment token).
pub fn add_node(c: &Collector, agency: &str, node: &str) {
    let mut inv = (*c.state.inventory.current()).clone();
    if inv.node(node).is_none() {
        inv.nodes.push(Node {
            id: node.into(),
            agency: agency.into(),
            ..Node::default()
        });
        c.state.inventory.set(&inv).unwrap();
    }
}

pub async fn connect(addr: SocketAddr, ca: &std::path::Path) -> Ws {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    let url = format!("wss://localhost:{}{}", addr.port(), wire::AGENT_PATH);
    let (ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    ws
}

/// The next message from the collector (binary frames only).
pub async fn next(ws: &mut Ws) -> CollectorMessage {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("collector answers within 15 s")
            .expect("connection open")
            .expect("no websocket error");
        if let Message::Binary(b) = m {
            return wire::decode_collector(&b).expect("a collector message");
        }
    }
}

/// A named list "judi" (one domain), for the routes that read one.
pub fn seed_list(c: &Collector) {
    c.state
        .lists
        .store(
            "judi",
            b"togel.example\n",
            simpul_core::policy::domains::ListFormat::Auto,
            "upload",
            "test",
            "seed",
            None,
        )
        .unwrap();
}

/// Say Hello with a credential and wait for Welcome.
pub async fn hello(addr: SocketAddr, ca: &std::path::Path, node: &str, credential: &str) -> Ws {
    hello_with(addr, ca, node, credential, &[]).await
}

/// As [`hello`], asking for these `wire::feature`s.
pub async fn hello_with(
    addr: SocketAddr,
    ca: &std::path::Path,
    node: &str,
    credential: &str,
    features: &[&str],
) -> Ws {
    let mut ws = connect(addr, ca).await;
    ws.send(Message::Binary(
        wire::encode(&AgentMessage::Hello(Hello {
            node_id: node.into(),
            credential: credential.into(),
            agent_version: "t".into(),
            hostname: "t".into(),
            boot_epoch: 1,
            protocols: vec![wire::PROTOCOL_VERSION],
            features: features.iter().map(|f| f.to_string()).collect(),
            inventory_version: 0,
            policy_version: 0,
        }))
        .into(),
    ))
    .await
    .unwrap();
    let Some(Ok(Message::Binary(b))) = ws.next().await else {
        panic!("no Welcome")
    };
    assert!(matches!(
        wire::decode_collector(&b),
        Ok(CollectorMessage::Welcome { .. })
    ));
    ws
}

/// Enroll `node` of `agency` with a fresh token; the connection stays open.
pub async fn enroll(c: &Collector, agency: &str, node: &str) -> Ws {
    add_node(c, agency, node);
    let token = c.enrollment_token(node).await.unwrap();
    let mut ws = connect(c.tls_addr.unwrap(), c.tls.ca_cert.as_ref().unwrap()).await;
    ws.send(Message::Binary(
        wire::encode(&AgentMessage::Enroll(Enroll {
            node_id: node.into(),
            token,
            agent_version: "t".into(),
            hostname: "t".into(),
        }))
        .into(),
    ))
    .await
    .unwrap();
    match next(&mut ws).await {
        CollectorMessage::Enrolled { .. } => ws,
        other => panic!("not Enrolled: {other:?}"),
    }
}

/// Enroll `node` of `agency`; its credential (the connection is closed).
pub async fn enroll_credential(c: &Collector, agency: &str, node: &str) -> String {
    add_node(c, agency, node);
    let token = c.enrollment_token(node).await.unwrap();
    let mut ws = connect(c.tls_addr.unwrap(), c.tls.ca_cert.as_ref().unwrap()).await;
    ws.send(Message::Binary(
        wire::encode(&AgentMessage::Enroll(Enroll {
            node_id: node.into(),
            token,
            agent_version: "t".into(),
            hostname: "t".into(),
        }))
        .into(),
    ))
    .await
    .unwrap();
    match next(&mut ws).await {
        CollectorMessage::Enrolled { credential, .. } => credential,
        other => panic!("not Enrolled: {other:?}"),
    }
}

/// Send a batch and wait for its Ack.
pub async fn send_batch(ws: &mut Ws, batch: Batch) {
    let (boot_epoch, seq) = (batch.boot_epoch, batch.seq);
    ws.send(Message::Binary(
        wire::encode(&AgentMessage::Batch(batch)).into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        next(ws).await,
        CollectorMessage::Ack { boot_epoch, seq },
        "batch {boot_epoch}/{seq} acknowledged"
    );
}

/// GET `path` from the plain HTTP listener: (status, body as JSON or, when
/// not JSON, as a string).
pub async fn get(c: &Collector, path: &str) -> (u16, serde_json::Value) {
    request(c, "GET", path, None, "").await
}

/// POST `body` as JSON to `path`.
pub async fn post(c: &Collector, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    request(c, "POST", path, Some("application/json"), &body.to_string()).await
}

/// Any request to the plain HTTP listener as the test's admin, with this
/// content type and body: (status, body as JSON or, when not JSON, as a
/// string).
pub async fn request(
    c: &Collector,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: impl AsRef<[u8]>,
) -> (u16, serde_json::Value) {
    let auth = format!("Authorization: Bearer {}\r\n", admin_token(c));
    raw_request(c, method, path, content_type, body, &auth).await
}

/// The same with extra header lines (each ending in CRLF) instead of the
/// admin's token: another role's token, a cookie, nothing.
pub async fn raw_request(
    c: &Collector,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: impl AsRef<[u8]>,
    headers: &str,
) -> (u16, serde_json::Value) {
    let body = body.as_ref();
    let mut tcp = tokio::net::TcpStream::connect(c.http_addr.unwrap())
        .await
        .unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}");
    if let Some(t) = content_type {
        req += &format!("Content-Type: {t}\r\n");
    }
    if method != "GET" {
        req += &format!("Content-Length: {}\r\n", body.len());
    }
    req += "\r\n";
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    tcp.write_all(&req).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut raw))
        .await
        .expect("response within 15 s")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    if head.to_ascii_lowercase().contains("content-encoding: gzip") {
        // A list's content: the status is what the callers here read.
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        return (status, serde_json::Value::Null);
    }
    let text = String::from_utf8(raw[split + 4..].to_vec()).expect("UTF-8 response");
    let body = text.as_str();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    let value = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (status, value)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n..];
        s = s.strip_prefix("\r\n").unwrap_or(s);
    }
    out
}

/// RFC 4180 records (quoted cells may hold commas, quotes, line breaks).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let text = text
        .strip_prefix('\u{feff}')
        .expect("a BOM for spreadsheets");
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(cell.is_empty() && row.is_empty(), "the last line ends");
    rows
}
