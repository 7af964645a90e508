//! TLS ClientHello → server_name (SNI), RFC 8446 §4.1.2 / RFC 6066 §3.
//!
//! Pure byte-slice parsing: never panics, never allocates more than
//! [`MAX_HELLO`] bytes, and only allocates at all when the ClientHello is
//! fragmented over several TLS records.

use std::borrow::Cow;

/// Result of looking for an SNI in the first bytes a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSni {
    /// A complete ClientHello with a server_name extension.
    Found(String),
    /// A complete ClientHello without server_name.
    Absent,
    /// Looks like a TLS handshake but more bytes are needed.
    Incomplete,
    /// Not a TLS ClientHello.
    NotTls,
}

/// Largest handshake prefix we are willing to buffer or look at. Real
/// ClientHellos, post-quantum key shares included, stay well below this.
pub(crate) const MAX_HELLO: usize = 16 * 1024;

const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const RECORD_HEADER: usize = 5;
const HANDSHAKE_HEADER: usize = 4;
/// RFC 8446 §5.1: TLSPlaintext.length MUST NOT exceed 2^14.
const MAX_RECORD: usize = 1 << 14;
/// version(2) + random(32) + session_id len(1) + suites len(2) + one suite(2)
/// + compression len(1) + one method(1).
const MIN_HELLO_BODY: usize = 41;
const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;
const MAX_DNS_NAME: usize = 253;

/// Cheap test on the first bytes of a TCP stream: does it start like a TLS
/// handshake record carrying a ClientHello? Only the bytes present (up to 6)
/// are checked, so a 1-byte prefix can already say yes; empty says no.
pub fn looks_like_tls(first: &[u8]) -> bool {
    !first.is_empty() && record_header_ok(first).is_some()
}

/// Checks the record header bytes present in `b` (which may be shorter than a
/// header) plus the handshake type if the first fragment byte is there.
/// `Some(Some(len))` = full header, `Some(None)` = consistent prefix.
fn record_header_ok(b: &[u8]) -> Option<Option<usize>> {
    if let Some(&t) = b.first() {
        if t != CONTENT_HANDSHAKE {
            return None;
        }
    }
    if let Some(&major) = b.get(1) {
        if major != 3 {
            return None;
        }
    }
    if let Some(&minor) = b.get(2) {
        if !(1..=4).contains(&minor) {
            return None;
        }
    }
    // Lengths above 2^14 are illegal; checking the high byte early lets a
    // 4-byte prefix already reject most non-TLS traffic.
    if let Some(&hi) = b.get(3) {
        if usize::from(hi) << 8 > MAX_RECORD {
            return None;
        }
    }
    let len = match (b.get(3), b.get(4)) {
        (Some(&hi), Some(&lo)) => usize::from(u16::from_be_bytes([hi, lo])),
        _ => return Some(None),
    };
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    Some(Some(len))
}

/// Parse the start of a client's TCP byte stream.
///
/// `stream` may hold several TLS records and may end at any byte. The
/// ClientHello may be fragmented over several handshake records.
pub fn client_hello_sni(stream: &[u8]) -> TlsSni {
    let first_len = match record_header_ok(stream) {
        None => return TlsSni::NotTls,
        Some(None) => return TlsSni::Incomplete,
        Some(Some(len)) => len,
    };
    let first_frag = stream
        .get(RECORD_HEADER..)
        .map(|rest| &rest[..rest.len().min(first_len)])
        .unwrap_or(&[]);
    let needed = match hello_total_len(first_frag) {
        Err(()) => return TlsSni::NotTls,
        Ok(n) => n,
    };
    let in_first = needed.is_some_and(|n| first_frag.len() >= n.min(MAX_HELLO));
    let first_truncated = first_frag.len() < first_len;
    // Common case: the whole ClientHello sits in the first record (or that
    // record is still arriving), so no copy is needed.
    let hs: Cow<'_, [u8]> = if in_first || first_truncated {
        Cow::Borrowed(first_frag)
    } else {
        let target = needed.map_or(MAX_HELLO, |n| n.min(MAX_HELLO));
        match gather_fragments(stream, target) {
            Ok(v) => Cow::Owned(v),
            Err(()) => return TlsSni::NotTls,
        }
    };
    client_hello_handshake_sni(&hs)
}

/// Total length (header included) of the handshake message starting at `hs`,
/// `Ok(None)` when its header is not complete yet, `Err` if it cannot be a
/// ClientHello.
fn hello_total_len(hs: &[u8]) -> Result<Option<usize>, ()> {
    if let Some(&t) = hs.first() {
        if t != HANDSHAKE_CLIENT_HELLO {
            return Err(());
        }
    }
    match hs.get(1..HANDSHAKE_HEADER) {
        Some(&[a, b, c]) => {
            let body = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            if body < MIN_HELLO_BODY {
                return Err(());
            }
            Ok(Some(HANDSHAKE_HEADER + body))
        }
        _ => Ok(None),
    }
}

/// Concatenates handshake record fragments until the ClientHello is complete,
/// the stream ends, or `target` (at most [`MAX_HELLO`]) bytes are buffered.
fn gather_fragments(stream: &[u8], target: usize) -> Result<Vec<u8>, ()> {
    // Sized once and never filled past `target`, so it never reallocates.
    let mut hs: Vec<u8> = Vec::with_capacity(target);
    let mut pos = 0usize;
    while let Some(rest) = stream.get(pos..) {
        if rest.is_empty() {
            break;
        }
        let len = match record_header_ok(rest).ok_or(())? {
            Some(len) => len,
            // Partial header of the next record: the hello is still incomplete.
            None => break,
        };
        let frag = rest
            .get(RECORD_HEADER..)
            .map(|f| &f[..f.len().min(len)])
            .unwrap_or(&[]);
        let room = target.saturating_sub(hs.len());
        hs.extend_from_slice(&frag[..frag.len().min(room)]);
        if frag.len() < len || hs.len() >= target {
            break;
        }
        if let Some(total) = hello_total_len(&hs)? {
            if hs.len() >= total {
                break;
            }
        }
        pos = pos.saturating_add(RECORD_HEADER + len);
    }
    Ok(hs)
}

/// SNI of a ClientHello handshake message (starting at its msg_type byte, no
/// record layer), as carried in QUIC CRYPTO frames or reassembled TLS records.
///
/// A prefix of a valid ClientHello gives `Incomplete`. Once `handshake` has
/// reached [`MAX_HELLO`] bytes of an even larger hello, no more data can help,
/// so the answer is based on the extensions seen so far.
pub(crate) fn client_hello_handshake_sni(handshake: &[u8]) -> TlsSni {
    let total = match hello_total_len(handshake) {
        Err(()) => return TlsSni::NotTls,
        Ok(None) => return TlsSni::Incomplete,
        Ok(Some(n)) => n,
    };
    let complete = handshake.len() >= total;
    let body = &handshake[..handshake.len().min(total)];
    let body = body.get(HANDSHAKE_HEADER..).unwrap_or(&[]);
    let gave_up = !complete && handshake.len() >= MAX_HELLO;
    match parse_hello_body(body) {
        Parsed::Bad => TlsSni::NotTls,
        Parsed::Short(_) if complete => TlsSni::NotTls,
        Parsed::Short(name) if gave_up => sni_result(name),
        Parsed::Short(_) => TlsSni::Incomplete,
        Parsed::Done(name) if complete => sni_result(name),
        // The body parsed but ended early only because we truncated it.
        Parsed::Done(_) => TlsSni::Incomplete,
    }
}

fn sni_result(name: Option<&[u8]>) -> TlsSni {
    match name.and_then(plausible_dns_name) {
        Some(n) => TlsSni::Found(n),
        None => TlsSni::Absent,
    }
}

/// Lowercased host name if it is printable ASCII of DNS length. Anything else
/// (UTF-8, control bytes, empty) is not something we can attribute a site to.
fn plausible_dns_name(raw: &[u8]) -> Option<String> {
    // RFC 6066 forbids the trailing dot, but some clients send it; normalise
    // so "a.b." and "a.b" are the same site.
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    if raw.is_empty() || raw.len() > MAX_DNS_NAME {
        return None;
    }
    if !raw.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return None;
    }
    let s: String = raw
        .iter()
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect();
    Some(s)
}

enum Parsed<'a> {
    /// Body well-formed to its end; the first host_name if any.
    Done(Option<&'a [u8]>),
    /// Ran out of bytes before the structure ended; host_name seen so far.
    Short(Option<&'a [u8]>),
    /// Structurally impossible for a ClientHello.
    Bad,
}

/// Bounds-checked big-endian reader. `None` means "ran out of bytes".
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }
    fn u16(&mut self) -> Option<u16> {
        match self.take(2)? {
            &[a, b] => Some(u16::from_be_bytes([a, b])),
            _ => None,
        }
    }
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Walks a (possibly truncated) ClientHello body. Length fields that overrun
/// the available bytes are `Short`, fields that are impossible whatever
/// follows are `Bad`.
fn parse_hello_body(body: &[u8]) -> Parsed<'_> {
    let mut r = Reader { buf: body };
    macro_rules! need {
        ($e:expr) => {
            match $e {
                Some(v) => v,
                None => return Parsed::Short(None),
            }
        };
    }
    let version = need!(r.u16());
    if !(0x0301..=0x0304).contains(&version) {
        return Parsed::Bad;
    }
    need!(r.take(32));
    let sid_len = need!(r.u8());
    if sid_len > 32 {
        return Parsed::Bad;
    }
    need!(r.take(usize::from(sid_len)));
    let suites_len = need!(r.u16());
    if suites_len < 2 || suites_len % 2 != 0 {
        return Parsed::Bad;
    }
    need!(r.take(usize::from(suites_len)));
    let comp_len = need!(r.u8());
    if comp_len == 0 {
        return Parsed::Bad;
    }
    need!(r.take(usize::from(comp_len)));
    if r.is_empty() {
        // Pre-TLS-1.2 clients may omit the extensions block entirely.
        return Parsed::Done(None);
    }
    let ext_len = usize::from(need!(r.u16()));
    let avail = r.buf.len();
    if ext_len < avail {
        // Bytes after the extensions block: not a ClientHello we understand.
        return Parsed::Bad;
    }
    let mut ext = Reader {
        buf: r.buf.get(..ext_len.min(avail)).unwrap_or(&[]),
    };
    let block_complete = ext_len == avail;
    let mut host: Option<&[u8]> = None;
    while !ext.is_empty() {
        let (Some(ty), Some(len)) = (ext.u16(), ext.u16()) else {
            return Parsed::Short(host);
        };
        let Some(data) = ext.take(usize::from(len)) else {
            return Parsed::Short(host);
        };
        if ty == EXT_SERVER_NAME && host.is_none() {
            // A mangled server_name still leaves a TLS hello, just without
            // a usable name.
            host = server_name_host(data);
        }
    }
    if block_complete {
        Parsed::Done(host)
    } else {
        Parsed::Short(host)
    }
}

/// First host_name in a server_name extension body (RFC 6066 §3).
fn server_name_host(data: &[u8]) -> Option<&[u8]> {
    let mut r = Reader { buf: data };
    let list_len = usize::from(r.u16()?);
    if list_len != r.buf.len() {
        return None;
    }
    while !r.is_empty() {
        let ty = r.u8()?;
        let len = r.u16()?;
        let name = r.take(usize::from(len))?;
        if ty == NAME_TYPE_HOST {
            return Some(name);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from CPython's ssl module (OpenSSL 3.0) via a MemoryBIO with
    /// `server_hostname="portal.example.go.id"`.
    const HELLO_PORTAL: &[u8] = include_bytes!("testdata/client_hello_portal.bin");
    /// Same client, `server_hostname=None`.
    const HELLO_NOSNI: &[u8] = include_bytes!("testdata/client_hello_nosni.bin");

    fn found(s: &str) -> TlsSni {
        TlsSni::Found(s.to_string())
    }

    /// Re-frames the handshake bytes of a single-record hello into records
    /// of at most `chunk` bytes.
    fn split_records(hello: &[u8], chunk: usize) -> Vec<u8> {
        let hs = &hello[RECORD_HEADER..];
        let mut out = Vec::new();
        for frag in hs.chunks(chunk) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&(frag.len() as u16).to_be_bytes());
            out.extend_from_slice(frag);
        }
        out
    }

    pub(crate) struct XorShift(pub u64);
    impl XorShift {
        pub fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        pub fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn real_hello_found() {
        assert_eq!(
            client_hello_sni(HELLO_PORTAL),
            found("portal.example.go.id")
        );
        assert!(looks_like_tls(HELLO_PORTAL));
    }

    #[test]
    fn real_hello_without_sni_is_absent() {
        assert_eq!(client_hello_sni(HELLO_NOSNI), TlsSni::Absent);
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for n in 0..HELLO_PORTAL.len() {
            assert_eq!(
                client_hello_sni(&HELLO_PORTAL[..n]),
                TlsSni::Incomplete,
                "prefix {n}"
            );
        }
        for n in 1..HELLO_PORTAL.len() {
            assert!(looks_like_tls(&HELLO_PORTAL[..n]));
        }
        assert!(!looks_like_tls(&[]));
    }

    #[test]
    fn trailing_bytes_after_hello_are_ignored() {
        let mut s = HELLO_PORTAL.to_vec();
        // A ChangeCipherSpec record as sent in TLS 1.3 middlebox-compat mode.
        s.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
        assert_eq!(client_hello_sni(&s), found("portal.example.go.id"));
    }

    #[test]
    fn hello_split_over_records() {
        for chunk in [1usize, 2, 3, 7, 40, 100, 300, 511] {
            let s = split_records(HELLO_PORTAL, chunk);
            assert_eq!(
                client_hello_sni(&s),
                found("portal.example.go.id"),
                "chunk {chunk}"
            );
            for n in 0..s.len() {
                assert_eq!(
                    client_hello_sni(&s[..n]),
                    TlsSni::Incomplete,
                    "chunk {chunk} prefix {n}"
                );
            }
            assert_eq!(
                client_hello_sni(&split_records(HELLO_NOSNI, chunk)),
                TlsSni::Absent
            );
        }
    }

    #[test]
    fn not_tls() {
        assert_eq!(
            client_hello_sni(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            TlsSni::NotTls
        );
        assert_eq!(client_hello_sni(b"SSH-2.0-OpenSSH_9.6\r\n"), TlsSni::NotTls);
        assert!(!looks_like_tls(b"GET /"));
        // Server's ServerHello (handshake type 2) is not a ClientHello.
        let mut sh = HELLO_PORTAL.to_vec();
        sh[5] = 2;
        assert_eq!(client_hello_sni(&sh), TlsSni::NotTls);
        // Application data record.
        let mut ad = HELLO_PORTAL.to_vec();
        ad[0] = 23;
        assert_eq!(client_hello_sni(&ad), TlsSni::NotTls);
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut not_tls = 0;
        for _ in 0..2000 {
            let len = 1 + rng.below(600);
            let buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if client_hello_sni(&buf) == TlsSni::NotTls {
                not_tls += 1;
            }
        }
        // Only buffers that start with 0x16 0x03 can be anything else.
        assert!(not_tls > 1990, "{not_tls}");
    }

    #[test]
    fn hello_with_trailing_junk_inside_handshake_is_not_tls() {
        // Grow the handshake and record lengths by one byte of junk after the
        // extensions block.
        let mut s = HELLO_PORTAL.to_vec();
        s.push(0);
        let rec = u16::from_be_bytes([s[3], s[4]]) + 1;
        s[3..5].copy_from_slice(&rec.to_be_bytes());
        let hs = u32::from_be_bytes([0, s[6], s[7], s[8]]) + 1;
        s[6..9].copy_from_slice(&hs.to_be_bytes()[1..]);
        assert_eq!(client_hello_sni(&s), TlsSni::NotTls);
    }

    /// Builds a minimal ClientHello with the given extensions, one record.
    fn synth_hello(exts: &[u8]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0xab; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(exts);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    fn sni_ext(name: &[u8]) -> Vec<u8> {
        let mut e = vec![0, 0];
        e.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
        e.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        e.push(0);
        e.extend_from_slice(&(name.len() as u16).to_be_bytes());
        e.extend_from_slice(name);
        e
    }

    #[test]
    fn name_validation() {
        let h = |n: &[u8]| client_hello_sni(&synth_hello(&sni_ext(n)));
        assert_eq!(h(b"WWW.Example.COM"), found("www.example.com"));
        assert_eq!(h(b"example.com."), found("example.com"));
        assert_eq!(h(b""), TlsSni::Absent);
        assert_eq!(h(b"bad name"), TlsSni::Absent);
        assert_eq!(h(b"caf\xc3\xa9.fr"), TlsSni::Absent);
        assert_eq!(h(&[b'a'; 254]), TlsSni::Absent);
        assert_eq!(h(&[b'a'; 253]), found(&"a".repeat(253)));
    }

    #[test]
    fn sni_after_other_extensions_and_no_extensions() {
        let mut exts = vec![0xff, 0x01, 0, 1, 0]; // renegotiation_info
        exts.extend_from_slice(&sni_ext(b"a.go.id"));
        exts.extend_from_slice(&[0, 0x2b, 0, 3, 2, 3, 4]); // supported_versions
        assert_eq!(client_hello_sni(&synth_hello(&exts)), found("a.go.id"));
        assert_eq!(client_hello_sni(&synth_hello(&[])), TlsSni::Absent);
    }

    #[test]
    fn oversized_hello_uses_what_fits() {
        // SNI first, then a padding extension pushing the hello past MAX_HELLO.
        let mut exts = sni_ext(b"big.example");
        for _ in 0..2 {
            exts.extend_from_slice(&[0, 21, 0x27, 0x10]);
            exts.extend_from_slice(&[0; 10000]);
        }
        let hs = &synth_hello(&exts)[RECORD_HEADER..];
        assert_eq!(client_hello_handshake_sni(&hs[..5000]), TlsSni::Incomplete);
        assert_eq!(client_hello_handshake_sni(hs), found("big.example"));
        assert_eq!(
            client_hello_handshake_sni(&hs[..MAX_HELLO]),
            found("big.example")
        );
        let s = split_records(&synth_hello(&exts), 16000);
        assert_eq!(client_hello_sni(&s), found("big.example"));
    }

    #[test]
    fn mutations_never_panic() {
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        let bases = [
            HELLO_PORTAL.to_vec(),
            HELLO_NOSNI.to_vec(),
            split_records(HELLO_PORTAL, 100),
        ];
        for i in 0..6000 {
            let mut m = bases[i % bases.len()].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(m.len());
                match rng.below(4) {
                    0 => m[at] = rng.next() as u8,
                    1 => m[at] ^= 1 << rng.below(8),
                    2 => m.truncate(at),
                    _ => m.insert(at, rng.next() as u8),
                }
                if m.is_empty() {
                    break;
                }
            }
            let _ = client_hello_sni(&m);
            let _ = looks_like_tls(&m);
            if m.len() > RECORD_HEADER {
                let _ = client_hello_handshake_sni(&m[RECORD_HEADER..]);
            }
        }
    }
}
