//! A minimal live-feed client for tests and bench/live.sh: it speaks the
//! WebSocket protocol itself over a plain TCP socket so it can count the
//! bytes on the wire (after permessage-deflate) and inflate them as a
//! browser does, then rebuilds the overview from the snapshot and the
//! patches exactly as dashboard/live.js does.

#![allow(dead_code)]

use std::net::SocketAddr;

use flate2::{Decompress, FlushDecompress};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What Chromium offers.
pub const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";
/// Each message compressed on its own (what a compressed binary frame
/// inflated with the browser's DecompressionStream would cost).
pub const PER_MESSAGE_OFFER: &str =
    "permessage-deflate; server_no_context_takeover; client_max_window_bits";

pub struct LiveClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes read from the socket so far (the handshake's answer included).
    pub wire_bytes: u64,
    /// Bytes of the messages once inflated.
    pub text_bytes: u64,
    /// The server agreed to permessage-deflate.
    pub deflate: bool,
    inflater: Decompress,
    reset_each: bool,
}

fn err(m: impl Into<String>) -> std::io::Error {
    std::io::Error::other(m.into())
}

impl LiveClient {
    /// Open `/api/v1/live` with a bearer token, offering permessage-deflate
    /// as browsers do ([`BROWSER_OFFER`]), another offer, or none.
    pub async fn connect(
        addr: SocketAddr,
        token: &str,
        offer: Option<&str>,
    ) -> std::io::Result<LiveClient> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let ext = offer
            .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET /api/v1/live HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {token}\r\n{ext}\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        let mut c = LiveClient {
            stream,
            buf: Vec::new(),
            wire_bytes: 0,
            text_bytes: 0,
            deflate: false,
            inflater: Decompress::new(false),
            reset_each: offer.is_some_and(|o| o.contains("server_no_context_takeover")),
        };
        let end = loop {
            if let Some(i) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if c.buf.len() > 16 * 1024 {
                return Err(err("handshake answer too long"));
            }
            c.fill().await?;
        };
        let head = String::from_utf8_lossy(&c.buf[..end]).to_string();
        if !head.starts_with("HTTP/1.1 101") {
            return Err(err(format!("no upgrade: {head}")));
        }
        c.deflate = head.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("sec-websocket-extensions:") && l.contains("permessage-deflate")
        });
        c.buf.drain(..end);
        Ok(c)
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(err("connection closed"));
        }
        self.wire_bytes += n as u64;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn need(&mut self, n: usize) -> std::io::Result<()> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(())
    }

    /// The next text message (pings answered, other frames passed over).
    pub async fn next_text(&mut self) -> std::io::Result<String> {
        loop {
            self.need(2).await?;
            let (b0, b1) = (self.buf[0], self.buf[1]);
            let (fin, rsv1, opcode) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0f);
            if b1 & 0x80 != 0 {
                return Err(err("a server frame was masked"));
            }
            let (len, at) = match b1 & 0x7f {
                126 => {
                    self.need(4).await?;
                    (u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]])), 4)
                }
                127 => {
                    self.need(10).await?;
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&self.buf[2..10]);
                    (u64::from_be_bytes(b), 10)
                }
                n => (u64::from(n), 2),
            };
            let len = usize::try_from(len).map_err(|_| err("frame too long"))?;
            if len > 64 * 1024 * 1024 {
                return Err(err("frame too long"));
            }
            self.need(at + len).await?;
            let payload: Vec<u8> = self.buf[at..at + len].to_vec();
            self.buf.drain(..at + len);
            if !fin {
                return Err(err("fragmented message (the feed sends whole ones)"));
            }
            match opcode {
                0x1 => {
                    let data = if rsv1 {
                        if !self.deflate {
                            return Err(err("RSV1 without permessage-deflate"));
                        }
                        self.inflate(&payload)?
                    } else {
                        payload
                    };
                    self.text_bytes += data.len() as u64;
                    return String::from_utf8(data).map_err(|_| err("text is not UTF-8"));
                }
                0x8 => return Err(err("closed by the server")),
                0x9 => {
                    // Pong, masked (with a zero mask) as a client must.
                    let mut f = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                    f.extend_from_slice(&payload);
                    self.stream.write_all(&f).await?;
                }
                _ => {}
            }
        }
    }

    fn inflate(&mut self, payload: &[u8]) -> std::io::Result<Vec<u8>> {
        if self.reset_each {
            self.inflater = Decompress::new(false);
        }
        let mut input = payload.to_vec();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(input.len() * 4 + 1024);
        let start_in = self.inflater.total_in();
        loop {
            let done = (self.inflater.total_in() - start_in) as usize;
            if out.capacity() - out.len() < 1024 {
                out.reserve(out.capacity());
            }
            self.inflater
                .decompress_vec(&input[done..], &mut out, FlushDecompress::Sync)
                .map_err(|e| err(format!("inflate: {e}")))?;
            let done = (self.inflater.total_in() - start_in) as usize;
            if done >= input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The overview as a page holds it: the snapshot, then every patch.
#[derive(Default)]
pub struct Mirror {
    pub seq: Option<u64>,
    pub overview: Value,
    /// The newest per-second points: (agency, in, out).
    pub points: Vec<(String, u64, u64)>,
    pub snapshots: u64,
    pub deltas: u64,
}

impl Mirror {
    /// Apply one message; Err on a gap or a malformed message.
    pub fn take(&mut self, text: &str) -> Result<&'static str, String> {
        let m: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match m["type"].as_str() {
            Some("snapshot") => {
                self.seq = m["seq"].as_u64();
                self.overview = m["overview"].clone();
                self.snapshots += 1;
                Ok("snapshot")
            }
            Some("delta") => {
                if self.seq.is_none() || m["base"].as_u64() != self.seq {
                    return Err(format!("gap: held {:?}, patch on {}", self.seq, m["base"]));
                }
                simpul_collector::live::delta::apply(&mut self.overview, &m["o"]);
                let r: Vec<u64> = m["r"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                simpul_collector::live::delta::apply_rates(&mut self.overview, &r);
                self.seq = m["seq"].as_u64();
                let p: Vec<u64> = m["p"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                self.points = self.overview["agencies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .filter_map(|(i, a)| {
                        Some((
                            a["code"].as_str()?.to_string(),
                            *p.get(2 * i)?,
                            *p.get(2 * i + 1)?,
                        ))
                    })
                    .collect();
                self.deltas += 1;
                Ok("delta")
            }
            other => Err(format!("unknown message type {other:?}")),
        }
    }
}
