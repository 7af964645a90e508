//! Named lists against a real collector: uploads in every format (gzip
//! too) made canonical and named by their hash, every bad line with its
//! place, a shrunk or empty version held until an administrator confirms,
//! sync from a URL (a real HTTP server on loopback), bounds (a gzip bomb),
//! roles and the audit chain — and an agent session that fetches a list by
//! hash in chunks, resumes at an offset, and is refused a list its policy
//! does not name. The real agent doing this on a router is in
//! tests/tests/policy_e2e.rs.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{bearer, raw_request, request, token};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use simpul_collector::server::Collector;
use simpul_proto::inventory::Node;
use simpul_proto::wire::{self, AgentMessage, CollectorMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

async fn upload(c: &Collector, name: &str, query: &str, body: &[u8]) -> (u16, Value) {
    request(
        c,
        "PUT",
        &format!("/api/v1/lists/{name}?comment=surat%20001{query}"),
        Some("text/plain"),
        body,
    )
    .await
}

async fn post(c: &Collector, path: &str, body: Value) -> (u16, Value) {
    request(c, "POST", path, Some("application/json"), body.to_string()).await
}

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text).unwrap();
    e.finish().unwrap()
}

fn rates() -> Value {
    json!({"rate_bps": 10_000_000, "ceil_bps": 20_000_000})
}

/// A list of `n` generated names.
fn names(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("site-{i}.example\n"))
        .collect::<String>()
        .into_bytes()
}

async fn agency_lists(c: &Collector) -> Value {
    let (s, v) = request(c, "GET", "/api/v1/agencies/dinkes/policy", None, "").await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_uploaded_synced_held_and_followed_by_policies() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_config(dir.path());
    cfg.policy.lists.max_bytes = 1 << 20;
    let c = common::start(
        cfg,
        &["dinkes", "bappeda"],
        vec![Node {
            id: "dinkes-01".into(),
            agency: "dinkes".into(),
            ..Node::default()
        }],
    )
    .await;

    // Plain, hosts and adblock lines in one upload; bad lines reported
    // with their line numbers, the rest kept, canonical and hashed.
    let (s, v) = upload(
        &c,
        "judi",
        "",
        b"# kategori judi\nTogel.example\n0.0.0.0 slot.example\n||kasino.example^\nnot a domain!\n",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"]["version"], 1);
    assert_eq!(v["version"]["state"], "current");
    assert_eq!(v["version"]["domains"], 3);
    assert_eq!(v["invalid"], 1);
    assert_eq!(v["first_invalid"][0]["line"], 5, "{v}");
    let sha1 = v["version"]["sha256"].as_str().unwrap().to_string();
    assert_eq!(
        sha1,
        simpul_core::lists::sha256_hex(b"kasino.example\nslot.example\ntogel.example\n")
    );
    // The same names in another order, case and format: no new version.
    let (s, v) = upload(
        &c,
        "judi",
        "&format=plain",
        &gzip(b"slot.example\nKASINO.example\ntogel.example\n"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["changed"], false, "{v}");
    assert_eq!(v["version"]["version"], 1);

    // Bad requests say what was wrong.
    let (s, v) = upload(&c, "..%2Fetc", "", b"a.example\n").await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = request(
        &c,
        "PUT",
        "/api/v1/lists/judi",
        Some("text/plain"),
        "a.example\n",
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("comment"), "{v}");
    let (s, v) = upload(&c, "judi", "&format=csv", b"a.example\n").await;
    assert_eq!(s, 400, "{v}");
    // A gzip bomb: 8 MiB of zeros in 8 KiB, past max_bytes (1 MiB).
    let bomb = gzip(&vec![b'\n'; 8 << 20]);
    assert!(bomb.len() < 64 << 10);
    let (s, v) = upload(&c, "judi", "", &bomb).await;
    assert_eq!(s, 413, "{v}");
    let (s, v) = upload(&c, "judi", "", b"\x1f\x8bnot gzip at all").await;
    assert_eq!(s, 422, "{v}");

    // Roles: the operator and an agency officer read, only the admin writes.
    let op = bearer(&token(&c, "operator", None));
    let officer = bearer(&token(&c, "agency", Some("dinkes")));
    let (s, _) = raw_request(
        &c,
        "PUT",
        "/api/v1/lists/judi?comment=xyz",
        Some("text/plain"),
        "a.example\n",
        &op,
    )
    .await;
    assert_eq!(s, 403);
    let (s, v) = raw_request(&c, "GET", "/api/v1/lists", None, "", &officer).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[0]["name"], "judi");
    assert_eq!(v[0]["current"]["domains"], 3);

    // Enabled in the province default: each agency's policy names the
    // list by its hash; a category that is no list is refused with its place.
    let (s, v) = request(
        &c,
        "PUT",
        "/api/v1/policy/default",
        Some("application/json"),
        json!({"base_version": 0, "comment": "SE 1/2026", "policy": {
            "allocation": {"download": rates(), "upload": rates()},
            "blocking": {"enabled_categories": ["judi", "nope"]}}})
        .to_string(),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v.to_string().contains("blocking.enabled_categories[1]"),
        "{v}"
    );
    let (s, v) = request(
        &c,
        "PUT",
        "/api/v1/policy/default",
        Some("application/json"),
        json!({"base_version": 0, "comment": "SE 1/2026", "policy": {
            "allocation": {"download": rates(), "upload": rates()},
            // A client's own `lists` is ignored: the collector sets it.
            "blocking": {"enabled_categories": ["judi"], "lists": {"judi": {"sha256": "0".repeat(64), "domains": 1}}}}})
        .to_string(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let p = agency_lists(&c).await;
    assert_eq!(p["version"], 1);
    assert_eq!(
        p["effective"]["blocking"]["lists"]["judi"]["sha256"], sha1,
        "{p}"
    );

    // A new version: every agency that enables it gets a new policy version.
    let (s, v) = upload(
        &c,
        "judi",
        "",
        b"togel.example\nslot.example\nkasino.example\nbaru.example\n",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"]["version"], 2);
    assert_eq!(v["policies"].as_array().unwrap().len(), 2, "{v}");
    let sha2 = v["version"]["sha256"].as_str().unwrap().to_string();
    let p = agency_lists(&c).await;
    assert_eq!(p["version"], 2);
    assert_eq!(p["effective"]["blocking"]["lists"]["judi"]["sha256"], sha2);
    assert!(
        p["comment"].as_str().unwrap().contains("list judi v2"),
        "{p}"
    );

    // Shrunk by half (more than the 20 % allowed): held, nothing changes
    // until an administrator confirms; an empty list is held too.
    let (s, v) = upload(&c, "judi", "", b"togel.example\nslot.example\n").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"]["state"], "held", "{v}");
    assert!(
        v["version"]["hold_reason"]
            .as_str()
            .unwrap()
            .contains("shrank from 4 to 2"),
        "{v}"
    );
    assert_eq!(v["policies"], json!([]));
    assert_eq!(agency_lists(&c).await["version"], 2);
    let (s, v) = upload(&c, "judi", "", b"# nothing left\n").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"]["state"], "held");
    assert_eq!(v["version"]["hold_reason"], "the new list is empty");
    let (s, v) = request(&c, "GET", "/api/v1/lists/judi", None, "").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["held"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["versions"].as_array().unwrap().len(), 4, "{v}");
    let (s, v) = post(
        &c,
        "/api/v1/lists/judi/versions/4/discard",
        json!({"comment": "sumber rusak"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"]["state"], "discarded");
    let (s, v) = post(
        &c,
        "/api/v1/lists/judi/versions/4/confirm",
        json!({"comment": "sumber rusak"}),
    )
    .await;
    assert_eq!(s, 404, "not held any more: {v}");
    let (s, v) = post(
        &c,
        "/api/v1/lists/judi/versions/3/confirm",
        json!({"comment": "surat 002: dikurangi"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"]["state"], "current");
    assert_eq!(agency_lists(&c).await["version"], 3);

    // Sync from a URL (a real HTTP server on loopback).
    let served = Arc::new(Mutex::new(names(100)));
    let url = serve(served.clone()).await;
    let (s, v) = request(
        &c,
        "PUT",
        "/api/v1/lists/trustpositif/source",
        Some("application/json"),
        json!({"url": "ftp://x/list", "interval_secs": 3600}).to_string(),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = request(
        &c,
        "PUT",
        "/api/v1/lists/trustpositif/source",
        Some("application/json"),
        json!({"url": url, "format": "plain", "interval_secs": 3600, "max_shrink_percent": 10})
            .to_string(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(&c, "/api/v1/lists/trustpositif/sync", json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"]["domains"], 100);
    assert_eq!(v["version"]["origin"], "sync");
    // The source lost 15 of its names: held (10 % allowed), shown on the source.
    *served.lock().unwrap() = names(85);
    let (s, v) = post(&c, "/api/v1/lists/trustpositif/sync", json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"]["state"], "held", "{v}");
    let (_, v) = request(&c, "GET", "/api/v1/lists/trustpositif", None, "").await;
    assert!(
        v["source"]["last_error"]
            .as_str()
            .unwrap()
            .contains("shrank"),
        "{v}"
    );
    assert_eq!(v["current"]["domains"], 100);
    // A source that answers 500: an error on the source, the list stays.
    *served.lock().unwrap() = b"FAIL".to_vec();
    let (s, v) = post(&c, "/api/v1/lists/trustpositif/sync", json!({})).await;
    assert_eq!(s, 502, "{v}");
    let (_, v) = request(&c, "GET", "/api/v1/lists/trustpositif", None, "").await;
    assert!(
        v["source"]["last_error"].as_str().unwrap().contains("500"),
        "{v}"
    );
    assert_eq!(v["current"]["domains"], 100);

    // The content, for download.
    let (s, _) = request(&c, "GET", "/api/v1/lists/judi/content?version=2", None, "").await;
    assert_eq!(s, 200);
    let (s, _) = request(&c, "GET", "/api/v1/lists/judi/content?version=99", None, "").await;
    assert_eq!(s, 404);

    // Every change is in the audit chain, with its comment.
    let (s, audit) = request(&c, "GET", "/api/v1/audit?action=list.", None, "").await;
    assert_eq!(s, 200, "{audit}");
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "list.upload",
        "list.discard",
        "list.confirm",
        "list.source",
        "list.sync",
    ] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
    assert!(audit.to_string().contains("surat 002: dikurangi"));

    // An agent fetches the list its policy names, by hash, in chunks from
    // any offset; a hash its policy does not name is refused.
    let cred = common::enroll_credential(&c, "dinkes", "dinkes-01").await;
    let mut ws = common::hello_with(
        c.tls_addr.unwrap(),
        c.tls.ca_cert.as_ref().unwrap(),
        "dinkes-01",
        &cred,
        &[wire::feature::POLICY, wire::feature::LISTS],
    )
    .await;
    let policy = loop {
        if let CollectorMessage::Policy(p) = next(&mut ws).await {
            break simpul_proto::policy::Policy::from_json(&p.policy_json).unwrap();
        }
    };
    let r = policy.blocking.lists["judi"].clone();
    assert_eq!(r.domains, 2);
    let mut blob = Vec::new();
    let mut total = u64::MAX;
    let mut offset = 0;
    while offset < total {
        send(
            &mut ws,
            AgentMessage::ListFetch {
                sha256: r.sha256.clone(),
                offset,
            },
        )
        .await;
        match next(&mut ws).await {
            CollectorMessage::ListChunk {
                sha256,
                offset: o,
                total: t,
                data,
            } => {
                assert_eq!((sha256.as_str(), o), (r.sha256.as_str(), offset));
                total = t;
                // Take a few bytes at a time: the next request resumes there.
                let take = data.len().min(10);
                blob.extend_from_slice(&data[..take]);
                offset += take as u64;
            }
            other => panic!("{other:?}"),
        }
    }
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&blob[..])
        .read_to_end(&mut text)
        .unwrap();
    assert_eq!(text, b"slot.example\ntogel.example\n");
    assert_eq!(simpul_core::lists::sha256_hex(&text), r.sha256);
    send(
        &mut ws,
        AgentMessage::ListFetch {
            sha256: sha1.clone(),
            offset: 0,
        },
    )
    .await;
    match next(&mut ws).await {
        CollectorMessage::ListUnavailable { sha256, reason } => {
            assert_eq!(sha256, sha1);
            assert!(reason.contains("no policy"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    send(
        &mut ws,
        AgentMessage::ListFetch {
            sha256: r.sha256.clone(),
            offset: total + 1,
        },
    )
    .await;
    assert!(matches!(
        next(&mut ws).await,
        CollectorMessage::ListUnavailable { .. }
    ));
    c.stop().await;
}

/// A list fetch from an agent that did not ask for the feature ends its
/// session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_fetch_without_the_feature_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes"]).await;
    let cred = common::enroll_credential(&c, "dinkes", "dinkes-01").await;
    // (common::hello asserts the Welcome.)
    let mut ws = common::hello(
        c.tls_addr.unwrap(),
        c.tls.ca_cert.as_ref().unwrap(),
        "dinkes-01",
        &cred,
    )
    .await;
    send(
        &mut ws,
        AgentMessage::ListFetch {
            sha256: "0".repeat(64),
            offset: 0,
        },
    )
    .await;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert_eq!(end, Ok(true));
    c.stop().await;
}

async fn send(ws: &mut common::Ws, m: AgentMessage) {
    ws.send(Message::Binary(wire::encode(&m).into()))
        .await
        .unwrap();
}

/// The next collector message but acks and the Welcome.
async fn next(ws: &mut common::Ws) -> CollectorMessage {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("open")
            .expect("frame");
        if let Message::Binary(b) = m {
            match wire::decode_collector(&b).unwrap() {
                CollectorMessage::Ack { .. } | CollectorMessage::Inventory(_) => {}
                other => return other,
            }
        }
    }
}

/// A plain HTTP server on loopback answering every request with `body`
/// (or 500 when it is "FAIL").
async fn serve(body: Arc<Mutex<Vec<u8>>>) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let body = body.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut req = vec![0u8; 4096];
                let _ = s.read(&mut req).await;
                let status = if body == b"FAIL" {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}/daftar.txt")
}
