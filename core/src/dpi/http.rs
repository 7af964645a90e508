//! HTTP/1.x request → Host header.

/// Result of looking for a Host header in the first bytes a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpHost {
    Found(String),
    /// A complete request head without Host (HTTP/1.0).
    Absent,
    /// Starts like a request; more bytes are needed.
    Incomplete,
    NotHttp,
}

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Cheap first-bytes check, so TLS and binary protocols skip `httparse`.
pub fn looks_like_http(first: &[u8]) -> bool {
    METHODS.iter().any(|m| {
        let n = m.len().min(first.len());
        n > 0 && first[..n] == m[..n]
    })
}

/// Parse the start of a client's TCP byte stream.
pub fn request_host(stream: &[u8]) -> HttpHost {
    if !looks_like_http(stream) {
        return HttpHost::NotHttp;
    }
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(stream) {
        Ok(httparse::Status::Complete(_)) => host_of(req.headers),
        Ok(httparse::Status::Partial) => {
            // httparse reports Partial until the blank line; a Host header that is
            // already complete is enough.
            match host_of(req.headers) {
                HttpHost::Found(h) => HttpHost::Found(h),
                _ => HttpHost::Incomplete,
            }
        }
        Err(httparse::Error::TooManyHeaders) => HttpHost::Absent,
        Err(_) => HttpHost::NotHttp,
    }
}

fn host_of(headers: &[httparse::Header<'_>]) -> HttpHost {
    for h in headers {
        if h.name.eq_ignore_ascii_case("host") {
            let Ok(v) = std::str::from_utf8(h.value) else {
                return HttpHost::Absent;
            };
            let host = strip_port(v.trim()).to_ascii_lowercase();
            if host.is_empty() || host.len() > 253 {
                return HttpHost::Absent;
            }
            return HttpHost::Found(host);
        }
    }
    HttpHost::Absent
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: Intranet.Example.go.id:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";

    #[test]
    fn finds_host_and_strips_port() {
        assert_eq!(
            request_host(REQ),
            HttpHost::Found("intranet.example.go.id".into())
        );
    }

    #[test]
    fn prefixes_never_claim_not_http() {
        for n in 1..REQ.len() {
            let r = request_host(&REQ[..n]);
            assert!(
                matches!(r, HttpHost::Incomplete | HttpHost::Found(_)),
                "{n}: {r:?}"
            );
        }
    }

    #[test]
    fn tls_is_not_http() {
        assert_eq!(
            request_host(&[0x16, 0x03, 0x01, 0x02, 0x00]),
            HttpHost::NotHttp
        );
    }

    #[test]
    fn http10_without_host() {
        assert_eq!(request_host(b"GET / HTTP/1.0\r\n\r\n"), HttpHost::Absent);
    }
}
