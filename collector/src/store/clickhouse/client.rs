//! A blocking client for ClickHouse's HTTP interface: one request per TCP
//! connection (HTTP/1.0, `Connection: close`), the statement in the URL or
//! the body, rows as JSONEachRow both ways.
//!
//! Why not reqwest's `blocking` feature or ureq: reqwest's blocking client
//! runs a tokio runtime of its own and panics when it is created or dropped
//! inside the collector's runtime (readers are opened from async handlers),
//! and ureq is not in the lock file. ClickHouse's HTTP surface needs only a
//! POST and a status line, so a plain `TcpStream` does: no new crate, no
//! runtime, a timeout per request. One connection per request costs ~0.1 ms
//! on a LAN, small beside an insert or a query.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;

use crate::store::StoreError;

/// Answers larger than this are refused (a query of ours that returns more
/// is a bug, not something to buffer without bound).
const MAX_RESPONSE: usize = 1 << 30;

#[derive(Debug, Clone)]
pub struct Client {
    url: String,
    host_port: String,
    timeout: Duration,
    /// Settings sent with every request (`&name=value…`).
    settings: String,
}

impl Client {
    /// `url` is `http://HOST:PORT` (a trailing `/` is allowed; no path, no
    /// TLS: run ClickHouse on the collector's network or behind a tunnel).
    pub fn new(url: &str, timeout: Duration) -> Result<Client, StoreError> {
        let bad = |reason| StoreError::Invalid {
            what: "storage.clickhouse.url",
            value: url.to_string(),
            reason,
        };
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            bad("must start with http:// (the HTTP interface, e.g. http://127.0.0.1:8123)")
        })?;
        let host_port = rest.trim_end_matches('/');
        if host_port.is_empty() || host_port.contains('/') || host_port.contains('@') {
            return Err(bad(
                "must be http://HOST:PORT, without a path or credentials",
            ));
        }
        let host_port = if host_port
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host_port.to_string()
        } else {
            format!("{host_port}:8123")
        };
        Ok(Client {
            url: url.trim_end_matches('/').to_string(),
            host_port,
            timeout,
            settings: String::new(),
        })
    }

    /// For Distributed tables (`[storage.clickhouse] cluster`): an insert
    /// returns once every shard has its rows (not when they are queued on
    /// this server), and IN/JOIN subqueries over a Distributed table read
    /// each shard's own rows (rows of one node live on one shard).
    pub fn distributed(mut self) -> Client {
        self.settings = "&insert_distributed_sync=1&distributed_product_mode=local".into();
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn error(&self, detail: impl Into<String>) -> StoreError {
        StoreError::ClickHouse {
            url: self.url.clone(),
            detail: detail.into(),
        }
    }

    /// Run a statement that returns nothing we read (DDL, ALTER).
    pub fn exec(&self, sql: &str) -> Result<(), StoreError> {
        self.post("", sql.as_bytes()).map(|_| ())
    }

    /// `INSERT INTO {table} FORMAT JSONEachRow` with `rows` (one JSON object
    /// a line) as the body. One request is one insert: ClickHouse writes it
    /// as one block (below `max_insert_block_size` rows), which the
    /// materialized views then see whole.
    pub fn insert(&self, table: &str, rows: &[u8]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let q = format!("INSERT INTO {table} FORMAT JSONEachRow");
        self.post(&q, rows).map(|_| ())
    }

    /// The rows of a SELECT, each decoded as `T`.
    pub fn rows<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>, StoreError> {
        let body = self.post("", format!("{sql} FORMAT JSONEachRow").as_bytes())?;
        let text = std::str::from_utf8(&body)
            .map_err(|e| self.error(format!("answer is not UTF-8: {e}")))?;
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| StoreError::Corrupt {
                    table: "clickhouse answer",
                    detail: format!("{e}: {}", &l[..l.len().min(200)]),
                })
            })
            .collect()
    }

    /// One POST; `query` goes in the URL (with the body as data), or is
    /// empty and the body is the statement.
    fn post(&self, query: &str, body: &[u8]) -> Result<Vec<u8>, StoreError> {
        // 64-bit integers as JSON numbers (serde reads them exactly).
        let mut path = String::from("/?output_format_json_quote_64bit_integers=0");
        path.push_str(&self.settings);
        if !query.is_empty() {
            path.push_str("&query=");
            path.extend(utf8_percent_encode(query, NON_ALPHANUMERIC));
        }
        let addr = self
            .host_port
            .to_socket_addrs()
            .map_err(|e| self.error(format!("cannot resolve {}: {e}", self.host_port)))?
            .next()
            .ok_or_else(|| self.error(format!("{} resolves to no address", self.host_port)))?;
        let io = |e: std::io::Error| self.error(e.to_string());
        let mut s = TcpStream::connect_timeout(&addr, self.timeout).map_err(io)?;
        s.set_read_timeout(Some(self.timeout)).map_err(io)?;
        s.set_write_timeout(Some(self.timeout)).map_err(io)?;
        s.set_nodelay(true).map_err(io)?;
        let head = format!(
            "POST {path} HTTP/1.0\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.host_port,
            body.len()
        );
        s.write_all(head.as_bytes()).map_err(io)?;
        s.write_all(body).map_err(io)?;
        let mut answer = Vec::new();
        s.take(MAX_RESPONSE as u64 + 1)
            .read_to_end(&mut answer)
            .map_err(io)?;
        if answer.len() > MAX_RESPONSE {
            return Err(self.error("answer larger than 1 GiB"));
        }
        let end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| self.error("answer without an HTTP header"))?;
        let head = String::from_utf8_lossy(&answer[..end]).to_string();
        let mut body = answer.split_off(end + 4);
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| self.error("answer without an HTTP status"))?;
        if head.lines().any(|l| {
            l.to_ascii_lowercase().starts_with("transfer-encoding:")
                && l.to_ascii_lowercase().contains("chunked")
        }) {
            body = dechunk(&body).ok_or_else(|| self.error("malformed chunked answer"))?;
        }
        if status != 200 {
            let text = String::from_utf8_lossy(&body);
            let first = text.trim().lines().next().unwrap_or("").to_string();
            return Err(self.error(format!("HTTP {status}: {}", &first[..first.len().min(500)])));
        }
        Ok(body)
    }
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&b[..nl]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        b = &b[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// A string literal for SQL: ClickHouse's escapes for `\` and `'`.
pub fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_literals() {
        let t = Duration::from_secs(1);
        assert_eq!(
            Client::new("http://ch:8124/", t).unwrap().host_port,
            "ch:8124"
        );
        assert_eq!(Client::new("http://ch", t).unwrap().host_port, "ch:8123");
        for bad in [
            "https://ch:8123",
            "ch:8123",
            "http://u:p@ch:1",
            "http://ch:1/db",
            "http://",
        ] {
            assert!(Client::new(bad, t).is_err(), "{bad}");
        }
        assert_eq!(lit(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"9\r\nabc").is_none());
    }
}
