//! Local endpoints that stand in for the world the collector notifies: an
//! HTTP server (Alertmanager-style webhook, Telegram Bot API, WhatsApp
//! gateway) and an SMTP server. They record what arrives, and when.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub path: String,
    pub body: String,
}

/// Everything received so far.
#[derive(Clone, Default)]
pub struct Hits(Arc<Mutex<Vec<Hit>>>);

impl Hits {
    pub fn all(&self) -> Vec<Hit> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn push(&self, h: Hit) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(h);
    }
}

/// An HTTP/1.1 server answering 200 `{"ok":true}` to everything.
pub fn http(addr: &str) -> (SocketAddr, Hits) {
    let listener = TcpListener::bind(addr).expect("bind HTTP receiver");
    let local = listener.local_addr().expect("addr");
    let hits = Hits::default();
    let h = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let h = h.clone();
            std::thread::spawn(move || serve_http(conn, &h));
        }
    });
    (local, hits)
}

fn serve_http(conn: TcpStream, hits: &Hits) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        hits.push(Hit {
            at: Instant::now(),
            path,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let reply = b"{\"ok\":true,\"result\":{}}";
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            reply.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(reply).is_err() {
            return;
        }
    }
}

/// A plain SMTP server accepting every message.
pub fn smtp(addr: &str) -> (SocketAddr, Hits) {
    let listener = TcpListener::bind(addr).expect("bind SMTP receiver");
    let local = listener.local_addr().expect("addr");
    let hits = Hits::default();
    let h = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let h = h.clone();
            std::thread::spawn(move || serve_smtp(conn, &h));
        }
    });
    (local, hits)
}

fn serve_smtp(conn: TcpStream, hits: &Hits) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(conn);
    let mut say = |s: &str| out.write_all(format!("{s}\r\n").as_bytes()).is_ok();
    if !say("220 sink ESMTP") {
        return;
    }
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        let ok = if cmd.starts_with("EHLO") {
            say("250-sink") && say("250 8BITMIME")
        } else if cmd.starts_with("DATA") {
            if !say("354 go ahead") {
                return;
            }
            let mut msg = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).unwrap_or(0) == 0 {
                    return;
                }
                if l == ".\r\n" || l == ".\n" {
                    break;
                }
                msg.push_str(&l);
            }
            hits.push(Hit {
                at: Instant::now(),
                path: "smtp".into(),
                body: msg,
            });
            say("250 queued")
        } else if cmd.starts_with("QUIT") {
            let _ = say("221 bye");
            return;
        } else {
            say("250 ok")
        };
        if !ok {
            return;
        }
    }
}
