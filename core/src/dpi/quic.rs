//! QUIC Initial → SNI: removes Initial packet protection (RFC 9001 §5,
//! RFC 9369 for v2), reassembles the client's CRYPTO stream and reads the
//! server_name of the ClientHello it carries.
//!
//! Initial keys are derived from public values only (version salt and the
//! client's Destination Connection ID), which is what makes this possible
//! for an on-path observer. No I/O, no panics, buffers capped at 16 KiB.

use std::fmt;

use ring::aead::quic::{HeaderProtectionKey, AES_128};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ring::hkdf;

use crate::dpi::tls::{self, TlsSni, MAX_HELLO};

/// Outcome of feeding one client datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuicSni {
    /// The reassembled ClientHello carries this server_name (lowercased).
    Found(String),
    /// The ClientHello is complete and has no usable server_name.
    Absent,
    /// Valid Initial packets seen, but the ClientHello is not complete yet.
    Incomplete,
    /// No decryptable client Initial seen, or its CRYPTO data is not a
    /// ClientHello.
    NotQuic,
}

/// Per-flow state: CRYPTO frames of a ClientHello may span several Initials.
#[derive(Default)]
pub struct QuicInitialState {
    conn: Option<Box<Conn>>,
    /// Final answer; once set, further datagrams are not looked at.
    done: Option<QuicSni>,
}

impl fmt::Debug for QuicInitialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("QuicInitialState");
        if let Some(c) = &self.conn {
            d.field("version", &format_args!("{:#010x}", c.version.number))
                .field("largest_pn", &c.largest_pn)
                .field("crypto_contiguous", &c.crypto.contiguous);
        }
        d.field("done", &self.done).finish()
    }
}

impl QuicInitialState {
    /// Feed one UDP payload sent by the client.
    pub fn feed(&mut self, datagram: &[u8]) -> QuicSni {
        if let Some(done) = &self.done {
            return done.clone();
        }
        let mut progressed = false;
        let mut rest = datagram;
        // Coalesced packets (RFC 9000 §12.2): Initial, then possibly 0-RTT or
        // Handshake packets, each with its own Length.
        while let Some(hdr) = LongHeader::parse(rest) {
            let Some(pkt) = rest.get(..hdr.packet_len) else {
                break;
            };
            if hdr.is_initial {
                progressed |= self.open_initial(pkt, &hdr);
            }
            rest = rest.get(hdr.packet_len..).unwrap_or(&[]);
        }
        let Some(conn) = &self.conn else {
            return QuicSni::NotQuic;
        };
        if !progressed {
            return QuicSni::Incomplete;
        }
        let result = match tls::client_hello_handshake_sni(conn.crypto.prefix()) {
            TlsSni::Incomplete => return QuicSni::Incomplete,
            TlsSni::Found(name) => QuicSni::Found(name),
            TlsSni::Absent => QuicSni::Absent,
            TlsSni::NotTls => QuicSni::NotQuic,
        };
        // Free keys and reassembly buffers: the flow table may hold many of us.
        self.conn = None;
        self.done = Some(result.clone());
        result
    }

    /// Decrypts one client Initial and stores its CRYPTO data. Returns whether
    /// the packet authenticated.
    fn open_initial(&mut self, pkt: &[u8], hdr: &LongHeader<'_>) -> bool {
        if let Some(conn) = self.conn.as_deref_mut() {
            if conn.version.number == hdr.version.number && conn.open_and_absorb(pkt, hdr) {
                return true;
            }
            // Keys stay tied to the first DCID even after the server picks a
            // new one, so only a DCID or version change (Retry, version
            // negotiation) can legitimately need new keys; the client then
            // resends its whole ClientHello.
            if conn.dcid == hdr.dcid && conn.version.number == hdr.version.number {
                return false;
            }
        }
        let Some(mut fresh) = Conn::new(hdr.version, hdr.dcid) else {
            return false;
        };
        if !fresh.open_and_absorb(pkt, hdr) {
            return false;
        }
        self.conn = Some(Box::new(fresh));
        true
    }
}

/// Per-version constants (RFC 9001 §5.2, RFC 9369 §3).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Version {
    number: u32,
    salt: &'static [u8; 20],
    key_label: &'static [u8],
    iv_label: &'static [u8],
    hp_label: &'static [u8],
    /// Long-header packet type value meaning Initial.
    initial_type: u8,
    /// Long-header packet type value meaning Retry (no Length field).
    retry_type: u8,
}

const V1: Version = Version {
    number: 0x0000_0001,
    salt: &[
        0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c,
        0xad, 0xcc, 0xbb, 0x7f, 0x0a,
    ],
    key_label: b"quic key",
    iv_label: b"quic iv",
    hp_label: b"quic hp",
    initial_type: 0b00,
    retry_type: 0b11,
};

const V2: Version = Version {
    number: 0x6b33_43cf,
    salt: &[
        0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d,
        0xcb, 0xf9, 0xbd, 0x2e, 0xd9,
    ],
    key_label: b"quicv2 key",
    iv_label: b"quicv2 iv",
    hp_label: b"quicv2 hp",
    initial_type: 0b01,
    retry_type: 0b00,
};

fn version(number: u32) -> Option<Version> {
    match number {
        0x0000_0001 => Some(V1),
        0x6b33_43cf => Some(V2),
        _ => None,
    }
}

/// RFC 9000 §17.2: connection IDs are at most 20 bytes in v1 and v2.
const MAX_CID: usize = 20;
/// RFC 9001 §5.4.2: the header-protection sample is 16 bytes taken 4 bytes
/// after the start of the packet number.
const SAMPLE_LEN: usize = 16;
const TAG_LEN: usize = 16;
/// A client Initial larger than this cannot fit any real path MTU.
const MAX_PACKET: usize = 16 * 1024;

/// The parts of a long-header packet we need, with offsets into the packet.
struct LongHeader<'a> {
    version: Version,
    is_initial: bool,
    dcid: &'a [u8],
    /// Offset of the (protected) packet number.
    pn_offset: usize,
    /// Header plus Length-field payload: where the next coalesced packet starts.
    packet_len: usize,
}

impl<'a> LongHeader<'a> {
    /// `None` for short headers, unknown versions, Retry, Version Negotiation
    /// and anything truncated: in all those cases the rest of the datagram
    /// cannot be walked.
    fn parse(b: &'a [u8]) -> Option<Self> {
        let mut r = Cursor { buf: b, pos: 0 };
        let first = r.u8()?;
        if first & 0x80 == 0 {
            return None;
        }
        // Fixed bit (0x40) deliberately not checked: RFC 9287 lets clients
        // clear it even in Initials; the AEAD tag is the real check.
        let version = version(u32::from_be_bytes(r.array()?))?;
        let dcid_len = usize::from(r.u8()?);
        if dcid_len > MAX_CID {
            return None;
        }
        let dcid = r.take(dcid_len)?;
        let scid_len = usize::from(r.u8()?);
        if scid_len > MAX_CID {
            return None;
        }
        r.take(scid_len)?;
        let ty = (first >> 4) & 0b11;
        if ty == version.retry_type {
            return None;
        }
        let is_initial = ty == version.initial_type;
        if is_initial {
            let token_len = usize::try_from(r.varint()?).ok()?;
            r.take(token_len)?;
        }
        let length = usize::try_from(r.varint()?).ok()?;
        let pn_offset = r.pos;
        let packet_len = pn_offset.checked_add(length)?;
        if packet_len > b.len() {
            return None;
        }
        Some(LongHeader {
            version,
            is_initial,
            dcid,
            pn_offset,
            packet_len,
        })
    }
}

struct Keys {
    aead: LessSafeKey,
    iv: [u8; 12],
    hp: HeaderProtectionKey,
}

/// State for one client Initial key set (one DCID, one version).
struct Conn {
    version: Version,
    dcid: CidBuf,
    keys: Keys,
    largest_pn: Option<u64>,
    crypto: CryptoStream,
    /// Reused across packets: header protection and AEAD work in place.
    scratch: Vec<u8>,
}

/// Fixed-size copy of a connection ID, so the state owns no per-CID heap.
#[derive(Clone, Copy)]
struct CidBuf {
    len: u8,
    bytes: [u8; MAX_CID],
}

impl PartialEq<&[u8]> for CidBuf {
    fn eq(&self, other: &&[u8]) -> bool {
        self.bytes.get(..usize::from(self.len)) == Some(*other)
    }
}

impl Conn {
    fn new(version: Version, dcid: &[u8]) -> Option<Self> {
        let mut bytes = [0u8; MAX_CID];
        bytes.get_mut(..dcid.len())?.copy_from_slice(dcid);
        Some(Conn {
            version,
            dcid: CidBuf {
                len: u8::try_from(dcid.len()).ok()?,
                bytes,
            },
            keys: derive_keys(version, dcid)?,
            largest_pn: None,
            crypto: CryptoStream::default(),
            scratch: Vec::new(),
        })
    }

    fn open_and_absorb(&mut self, pkt: &[u8], hdr: &LongHeader<'_>) -> bool {
        let Some((pn, payload)) = open(
            &self.keys,
            pkt,
            hdr.pn_offset,
            self.largest_pn,
            &mut self.scratch,
        ) else {
            return false;
        };
        self.largest_pn = Some(self.largest_pn.map_or(pn, |l| l.max(pn)));
        absorb_frames(payload, &mut self.crypto);
        true
    }
}

/// Removes header protection and decrypts `pkt` into `scratch`; returns the
/// packet number and the plaintext frames.
fn open<'s>(
    keys: &Keys,
    pkt: &[u8],
    pn_offset: usize,
    largest_pn: Option<u64>,
    scratch: &'s mut Vec<u8>,
) -> Option<(u64, &'s [u8])> {
    if pkt.len() > MAX_PACKET {
        return None;
    }
    let sample_at = pn_offset.checked_add(4)?;
    let sample = pkt.get(sample_at..sample_at.checked_add(SAMPLE_LEN)?)?;
    let mask = keys.hp.new_mask(sample).ok()?;
    scratch.clear();
    scratch.reserve_exact(pkt.len());
    scratch.extend_from_slice(pkt);
    let first = scratch.first_mut()?;
    *first ^= mask[0] & 0x0f;
    let pn_len = usize::from(*first & 0x03) + 1;
    let mut truncated_pn = 0u64;
    for (i, m) in mask.iter().skip(1).take(pn_len).enumerate() {
        let b = scratch.get_mut(pn_offset + i)?;
        *b ^= m;
        truncated_pn = truncated_pn << 8 | u64::from(*b);
    }
    let pn = decode_packet_number(largest_pn, truncated_pn, pn_len);
    let mut nonce = keys.iv;
    for (n, p) in nonce.iter_mut().skip(4).zip(pn.to_be_bytes()) {
        *n ^= p;
    }
    let (header, payload) = scratch.split_at_mut(pn_offset.checked_add(pn_len)?.min(pkt.len()));
    if payload.len() < TAG_LEN {
        return None;
    }
    let plain = keys
        .aead
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&*header),
            payload,
        )
        .ok()?;
    Some((pn, plain))
}

/// RFC 9000 Appendix A.3.
fn decode_packet_number(largest: Option<u64>, truncated: u64, pn_len: usize) -> u64 {
    let bits = 8 * pn_len.clamp(1, 4) as u32;
    let expected = largest.map_or(0, |l| l.saturating_add(1));
    let win = 1u64 << bits;
    let hwin = win / 2;
    let candidate = (expected & !(win - 1)) | truncated;
    if candidate.saturating_add(hwin) <= expected && candidate < (1u64 << 62) - win {
        candidate + win
    } else if candidate > expected.saturating_add(hwin) && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// TLS 1.3 HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) -> Option<()> {
    let out_len = u16::try_from(out.len()).ok()?.to_be_bytes();
    let label_len = [u8::try_from(b"tls13 ".len() + label.len()).ok()?];
    let info: [&[u8]; 5] = [&out_len, &label_len, b"tls13 ", label, &[0]];
    prk.expand(&info, Len(out.len())).ok()?.fill(out).ok()
}

type RawKeys = ([u8; 16], [u8; 12], [u8; 16]);

/// Client Initial key, IV and header-protection key for `dcid`.
fn derive_raw(version: Version, dcid: &[u8]) -> Option<RawKeys> {
    let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, version.salt).extract(dcid);
    let mut secret = [0u8; 32];
    expand_label(&initial, b"client in", &mut secret)?;
    let client = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &secret);
    let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
    expand_label(&client, version.key_label, &mut key)?;
    expand_label(&client, version.iv_label, &mut iv)?;
    expand_label(&client, version.hp_label, &mut hp)?;
    Some((key, iv, hp))
}

fn derive_keys(version: Version, dcid: &[u8]) -> Option<Keys> {
    let (key, iv, hp) = derive_raw(version, dcid)?;
    Some(Keys {
        aead: LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).ok()?),
        iv,
        hp: HeaderProtectionKey::new(&AES_128, &hp).ok()?,
    })
}

const FRAME_PADDING: u64 = 0x00;
const FRAME_PING: u64 = 0x01;
const FRAME_ACK: u64 = 0x02;
const FRAME_ACK_ECN: u64 = 0x03;
const FRAME_CRYPTO: u64 = 0x06;

/// Collects CRYPTO frames. Other frame types allowed in a client Initial
/// (CONNECTION_CLOSE) or not allowed at all end the walk: whatever CRYPTO data
/// came before them is still kept.
fn absorb_frames(payload: &[u8], crypto: &mut CryptoStream) {
    let mut r = Cursor {
        buf: payload,
        pos: 0,
    };
    while let Some(ty) = r.varint() {
        match ty {
            FRAME_PADDING => {
                // Padding is usually most of the packet; skip it in one step.
                let run = r.rest().iter().take_while(|&&b| b == 0).count();
                r.pos += run;
            }
            FRAME_PING => {}
            FRAME_ACK | FRAME_ACK_ECN => {
                if skip_ack(&mut r, ty == FRAME_ACK_ECN).is_none() {
                    return;
                }
            }
            FRAME_CRYPTO => {
                let (Some(offset), Some(len)) = (r.varint(), r.varint()) else {
                    return;
                };
                let Some(data) = usize::try_from(len).ok().and_then(|l| r.take(l)) else {
                    return;
                };
                crypto.insert(offset, data);
            }
            _ => return,
        }
    }
}

fn skip_ack(r: &mut Cursor<'_>, ecn: bool) -> Option<()> {
    r.varint()?; // largest acknowledged
    r.varint()?; // ack delay
    let ranges = r.varint()?;
    r.varint()?; // first range
                 // Each range costs at least two bytes, so a huge count just runs out of
                 // input rather than looping long.
    for _ in 0..ranges {
        r.varint()?;
        r.varint()?;
    }
    if ecn {
        r.varint()?;
        r.varint()?;
        r.varint()?;
    }
    Some(())
}

/// CRYPTO stream bytes by offset, capped at [`MAX_HELLO`]; frames may arrive
/// in any order and overlap.
#[derive(Default)]
struct CryptoStream {
    data: Vec<u8>,
    /// One bit per byte of `data`: received or not.
    have: Vec<u64>,
    /// Length of the gap-free prefix starting at offset 0.
    contiguous: usize,
}

impl CryptoStream {
    fn insert(&mut self, offset: u64, bytes: &[u8]) {
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        if start >= MAX_HELLO {
            return;
        }
        let end = start.saturating_add(bytes.len()).min(MAX_HELLO);
        let Some(src) = bytes.get(..end - start) else {
            return;
        };
        // Exact reservations keep capacity within the cap (resize alone may
        // double it).
        if let Some(more) = end.checked_sub(self.data.len()) {
            self.data.reserve_exact(more);
            self.data.resize(end, 0);
        }
        let words = end.div_ceil(64);
        if let Some(more) = words.checked_sub(self.have.len()) {
            self.have.reserve_exact(more);
            self.have.resize(words, 0);
        }
        if let Some(dst) = self.data.get_mut(start..end) {
            dst.copy_from_slice(src);
        }
        for i in start..end {
            if let Some(w) = self.have.get_mut(i / 64) {
                *w |= 1 << (i % 64);
            }
        }
        while self.contiguous < self.data.len()
            && self
                .have
                .get(self.contiguous / 64)
                .is_some_and(|w| w & (1 << (self.contiguous % 64)) != 0)
        {
            self.contiguous += 1;
        }
    }

    fn prefix(&self) -> &[u8] {
        self.data.get(..self.contiguous).unwrap_or(&[])
    }
}

/// Bounds-checked reader; `None` means the input ended.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    /// RFC 9000 §16 variable-length integer.
    fn varint(&mut self) -> Option<u64> {
        let first = self.u8()?;
        let extra = (1usize << (first >> 6)) - 1;
        let mut v = u64::from(first & 0x3f);
        for &b in self.take(extra)? {
            v = v << 8 | u64::from(b);
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::aead::Tag;

    fn unhex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s
            .bytes()
            .filter(u8::is_ascii_hexdigit)
            .map(|c| (c as char).to_digit(16).unwrap() as u8)
            .collect();
        digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
    }

    /// RFC 9001 Appendix A.2: client Initial carrying a ClientHello for
    /// example.com, DCID 8394c8f03e515708, packet number 2.
    fn rfc9001_a2() -> Vec<u8> {
        unhex(include_str!("testdata/rfc9001_a2_client_initial.hex"))
    }
    /// RFC 9369 Appendix A.2: the same ClientHello protected with QUIC v2.
    fn rfc9369_a2() -> Vec<u8> {
        unhex(include_str!("testdata/rfc9369_a2_client_initial.hex"))
    }
    /// RFC 9001 A.2 unprotected payload prefix: one CRYPTO frame (then 917
    /// bytes of PADDING).
    const A2_CRYPTO_FRAME: &str =
        "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868\
        04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578\
        616d706c652e636f6dff01000100000a00080006001d00170018001000070005\
        04616c706e000500050100000000003300260024001d00209370b2c9caa47fba\
        baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400\
        0d0010000e0403050306030203080408050806002d00020101001c0002400100\
        3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000\
        75300901100f088394c8f03e51570806048000ffff";
    /// RFC 9001 A.3 server Initial: must never be taken for a client's.
    const A3_SERVER_INITIAL: &str =
        "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a\
        5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3\
        dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84\
        022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4\
        2158407dd074ee";

    /// Datagrams sent by an aioquic 1.7.2 client (`connect()`, first flight),
    /// each prefixed by a 2-byte big-endian length.
    fn datagrams(file: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = file;
        while rest.len() >= 2 {
            let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            out.push(rest[2..2 + n].to_vec());
            rest = &rest[2 + n..];
        }
        out
    }
    /// server_name "video.example.go.id", one 1200-byte datagram, v1.
    const AIOQUIC_V1: &[u8] = include_bytes!("testdata/aioquic_v1.bin");
    /// Same with QUIC v2.
    const AIOQUIC_V2: &[u8] = include_bytes!("testdata/aioquic_v2.bin");
    /// server_name "big.example.go.id" with 150 ALPN values: the ClientHello
    /// needs two Initial packets in two datagrams, like Chrome's
    /// post-quantum hello.
    const AIOQUIC_V1_BIG: &[u8] = include_bytes!("testdata/aioquic_v1_big.bin");
    /// Reused from the TLS tests: a real ClientHello handshake message once
    /// the 5-byte record header is stripped.
    const HELLO_PORTAL: &[u8] = include_bytes!("testdata/client_hello_portal.bin");
    const HELLO_NOSNI: &[u8] = include_bytes!("testdata/client_hello_nosni.bin");

    const DCID: &[u8] = &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

    fn found(s: &str) -> QuicSni {
        QuicSni::Found(s.to_string())
    }

    fn feed_all(dgrams: &[&[u8]]) -> Vec<QuicSni> {
        let mut st = QuicInitialState::default();
        dgrams.iter().map(|d| st.feed(d)).collect()
    }

    fn push_varint(out: &mut Vec<u8>, v: u64) {
        match v {
            0..=0x3f => out.push(v as u8),
            0x40..=0x3fff => out.extend_from_slice(&(v as u16 | 0x4000).to_be_bytes()),
            0x4000..=0x3fff_ffff => out.extend_from_slice(&(v as u32 | 0x8000_0000).to_be_bytes()),
            _ => out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes()),
        }
    }

    fn crypto_frame(offset: u64, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0x06];
        push_varint(&mut f, offset);
        push_varint(&mut f, data.len() as u64);
        f.extend_from_slice(data);
        f
    }

    /// Protects `frames` as a client Initial the way a sender would (RFC 9001
    /// §5.3-5.4), padding the plaintext to `pad_to` bytes.
    fn seal_initial(
        v: Version,
        dcid: &[u8],
        pn: u64,
        pn_len: usize,
        frames: &[u8],
        pad_to: usize,
    ) -> Vec<u8> {
        seal_initial_keyed(v, dcid, dcid, pn, pn_len, frames, pad_to)
    }

    /// Like [`seal_initial`] with keys from `key_dcid` but `dcid` in the header.
    fn seal_initial_keyed(
        v: Version,
        key_dcid: &[u8],
        dcid: &[u8],
        pn: u64,
        pn_len: usize,
        frames: &[u8],
        pad_to: usize,
    ) -> Vec<u8> {
        let (key, iv, hp) = derive_raw(v, key_dcid).unwrap();
        let mut payload = frames.to_vec();
        payload.resize(payload.len().max(pad_to).max(4), 0);
        let mut h = vec![0x80 | 0x40 | v.initial_type << 4 | (pn_len as u8 - 1)];
        h.extend_from_slice(&v.number.to_be_bytes());
        h.push(dcid.len() as u8);
        h.extend_from_slice(dcid);
        h.push(0); // SCID length
        h.push(0); // token length
        let length = (pn_len + payload.len() + TAG_LEN) as u64;
        h.extend_from_slice(&(length as u16 | 0x4000).to_be_bytes());
        let pn_offset = h.len();
        h.extend_from_slice(&pn.to_be_bytes()[8 - pn_len..]);
        let mut nonce = iv;
        for (n, p) in nonce.iter_mut().skip(4).zip(pn.to_be_bytes()) {
            *n ^= p;
        }
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).unwrap());
        let tag: Tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&h[..]),
                &mut payload,
            )
            .unwrap();
        let mut pkt = h;
        pkt.extend_from_slice(&payload);
        pkt.extend_from_slice(tag.as_ref());
        let hp = HeaderProtectionKey::new(&AES_128, &hp).unwrap();
        let mask = hp
            .new_mask(&pkt[pn_offset + 4..pn_offset + 4 + SAMPLE_LEN])
            .unwrap();
        pkt[0] ^= mask[0] & 0x0f;
        for i in 0..pn_len {
            pkt[pn_offset + i] ^= mask[1 + i];
        }
        pkt
    }

    #[test]
    fn initial_key_derivation_matches_rfcs() {
        // RFC 9001 A.1 and RFC 9369 A.1 client keys.
        let (k, iv, hp) = derive_raw(V1, DCID).unwrap();
        assert_eq!(k.to_vec(), unhex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(iv.to_vec(), unhex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(hp.to_vec(), unhex("9f50449e04a0e810283a1e9933adedd2"));
        let (k, iv, hp) = derive_raw(V2, DCID).unwrap();
        assert_eq!(k.to_vec(), unhex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(iv.to_vec(), unhex("91f73e2351d8fa91660e909f"));
        assert_eq!(hp.to_vec(), unhex("45b95e15235d6f45a6b19cbcb0294ba9"));
    }

    #[test]
    fn rfc9001_client_initial() {
        let mut st = QuicInitialState::default();
        assert_eq!(st.feed(&rfc9001_a2()), found("example.com"));
        // The answer sticks; later datagrams are not parsed.
        assert_eq!(st.feed(b"garbage"), found("example.com"));
    }

    #[test]
    fn rfc9369_v2_client_initial() {
        assert_eq!(feed_all(&[&rfc9369_a2()]), [found("example.com")]);
    }

    #[test]
    fn test_sealer_reproduces_rfc_packets() {
        let frames = unhex(A2_CRYPTO_FRAME);
        assert_eq!(seal_initial(V1, DCID, 2, 4, &frames, 1162), rfc9001_a2());
        // RFC 9369 uses the same plaintext; only the version changes.
        assert_eq!(seal_initial(V2, DCID, 2, 4, &frames, 1162), rfc9369_a2());
    }

    #[test]
    fn aioquic_real_initials() {
        let v1 = datagrams(AIOQUIC_V1);
        assert_eq!(feed_all(&[&v1[0]]), [found("video.example.go.id")]);
        let v2 = datagrams(AIOQUIC_V2);
        assert_eq!(feed_all(&[&v2[0]]), [found("video.example.go.id")]);
    }

    #[test]
    fn aioquic_hello_over_two_datagrams_any_order() {
        let d = datagrams(AIOQUIC_V1_BIG);
        assert_eq!(d.len(), 2);
        assert_eq!(
            feed_all(&[&d[0], &d[1]]),
            [QuicSni::Incomplete, found("big.example.go.id")]
        );
        assert_eq!(
            feed_all(&[&d[1], &d[0]]),
            [QuicSni::Incomplete, found("big.example.go.id")]
        );
        // A duplicate of the first datagram changes nothing.
        assert_eq!(
            feed_all(&[&d[0], &d[0], &d[1]]),
            [
                QuicSni::Incomplete,
                QuicSni::Incomplete,
                found("big.example.go.id")
            ]
        );
        // Coalescing both packets into one datagram. aioquic pads the short
        // second Initial with zero bytes after the packet, which must go.
        let second_len = LongHeader::parse(&d[1]).unwrap().packet_len;
        assert!(second_len < d[1].len());
        let both: Vec<u8> = [&d[1][..second_len], &d[0][..]].concat();
        assert_eq!(feed_all(&[&both]), [found("big.example.go.id")]);
    }

    #[test]
    fn crypto_split_over_two_own_initials_out_of_order() {
        let hs = &HELLO_PORTAL[5..];
        let mid = 200;
        let dcid = [7u8; 12];
        let p0 = seal_initial(V1, &dcid, 0, 1, &crypto_frame(0, &hs[..mid]), 1162);
        // Second packet mixes in the other frames a client Initial may carry.
        let mut f1 = vec![0x01, 0x02, 0x00, 0x00, 0x00, 0x00];
        f1.extend_from_slice(&crypto_frame(mid as u64, &hs[mid..]));
        let p1 = seal_initial(V1, &dcid, 1, 2, &f1, 1162);
        assert_eq!(
            feed_all(&[&p1, &p0]),
            [QuicSni::Incomplete, found("portal.example.go.id")]
        );
        assert_eq!(
            feed_all(&[&p0, &p1]),
            [QuicSni::Incomplete, found("portal.example.go.id")]
        );
        let mut coalesced = p1.clone();
        coalesced.extend_from_slice(&p0);
        assert_eq!(feed_all(&[&coalesced]), [found("portal.example.go.id")]);
    }

    #[test]
    fn crypto_frames_shuffled_and_overlapping_within_one_packet() {
        let hs = &HELLO_PORTAL[5..];
        let mut frames = Vec::new();
        frames.extend_from_slice(&crypto_frame(300, &hs[300..]));
        frames.extend_from_slice(&crypto_frame(100, &hs[100..320]));
        frames.extend_from_slice(&[0x00; 7]);
        frames.extend_from_slice(&crypto_frame(0, &hs[..150]));
        let p = seal_initial(V2, &[1, 2, 3, 4], 0, 4, &frames, 1162);
        assert_eq!(feed_all(&[&p]), [found("portal.example.go.id")]);
    }

    #[test]
    fn hello_without_sni_is_absent() {
        let p = seal_initial(V1, DCID, 0, 1, &crypto_frame(0, &HELLO_NOSNI[5..]), 1162);
        assert_eq!(feed_all(&[&p]), [QuicSni::Absent]);
    }

    #[test]
    fn crypto_data_that_is_not_a_client_hello() {
        let p = seal_initial(V1, DCID, 0, 1, &crypto_frame(0, &[2; 64]), 1162);
        assert_eq!(feed_all(&[&p]), [QuicSni::NotQuic]);
    }

    #[test]
    fn stops_at_unknown_frame_but_keeps_earlier_crypto() {
        let hs = &HELLO_PORTAL[5..];
        let mut frames = crypto_frame(0, hs);
        frames.extend_from_slice(&[0x1c, 0x00, 0x00, 0x00]); // CONNECTION_CLOSE
        let p = seal_initial(V1, DCID, 0, 1, &frames, 1162);
        assert_eq!(feed_all(&[&p]), [found("portal.example.go.id")]);
        // An unknown frame before the CRYPTO frame hides it.
        let mut frames = vec![0x1e]; // HANDSHAKE_DONE: never legal from a client
        frames.extend_from_slice(&crypto_frame(0, hs));
        let p = seal_initial(V1, DCID, 0, 1, &frames, 1162);
        assert_eq!(feed_all(&[&p]), [QuicSni::Incomplete]);
    }

    #[test]
    fn new_dcid_after_retry_rekeys() {
        let hs = &HELLO_PORTAL[5..];
        let before = seal_initial(V1, DCID, 0, 1, &crypto_frame(0, &hs[..100]), 1162);
        let after = seal_initial(V1, &[9; 16], 0, 1, &crypto_frame(0, hs), 1162);
        assert_eq!(
            feed_all(&[&before, &after]),
            [QuicSni::Incomplete, found("portal.example.go.id")]
        );
    }

    #[test]
    fn later_initials_with_server_chosen_dcid_keep_original_keys() {
        let hs = &HELLO_PORTAL[5..];
        let p0 = seal_initial(V1, DCID, 0, 1, &crypto_frame(0, &hs[..100]), 1162);
        // After the server's Initial the client addresses the server's CID
        // but keeps the keys of its first DCID (RFC 9001 §5.2).
        let f1 = crypto_frame(100, &hs[100..]);
        let p1 = seal_initial_keyed(V1, DCID, &[0xee; 5], 1, 1, &f1, 1162);
        assert_eq!(
            feed_all(&[&p0, &p1]),
            [QuicSni::Incomplete, found("portal.example.go.id")]
        );
    }

    #[test]
    fn server_initial_and_garbage_are_not_quic() {
        assert_eq!(feed_all(&[&unhex(A3_SERVER_INITIAL)]), [QuicSni::NotQuic]);
        assert_eq!(feed_all(&[b""]), [QuicSni::NotQuic]);
        assert_eq!(feed_all(&[&[0u8; 1200]]), [QuicSni::NotQuic]);
        // Short header (1-RTT) packet.
        assert_eq!(feed_all(&[&[0x40u8; 100]]), [QuicSni::NotQuic]);
        // Unknown version (draft-29).
        let mut d29 = rfc9001_a2();
        d29[1..5].copy_from_slice(&0xff00_001du32.to_be_bytes());
        assert_eq!(feed_all(&[&d29]), [QuicSni::NotQuic]);
        // A payload bit flip fails the AEAD tag.
        let mut flipped = rfc9001_a2();
        flipped[600] ^= 1;
        assert_eq!(feed_all(&[&flipped]), [QuicSni::NotQuic]);
    }

    #[test]
    fn every_truncation_is_not_quic() {
        let p = rfc9001_a2();
        for n in 0..p.len() {
            assert_eq!(feed_all(&[&p[..n]]), [QuicSni::NotQuic], "len {n}");
        }
    }

    #[test]
    fn garbage_after_valid_initial_keeps_incomplete() {
        let d = datagrams(AIOQUIC_V1_BIG);
        let mut st = QuicInitialState::default();
        assert_eq!(st.feed(&d[0]), QuicSni::Incomplete);
        assert_eq!(st.feed(&d[1][..500]), QuicSni::Incomplete);
        assert_eq!(st.feed(&[0xff; 40]), QuicSni::Incomplete);
        assert_eq!(st.feed(&d[1]), found("big.example.go.id"));
    }

    #[test]
    fn crypto_reassembly_is_capped() {
        let mut c = CryptoStream::default();
        c.insert(u64::MAX, b"x");
        c.insert((MAX_HELLO - 1) as u64, &[1; 100]);
        c.insert(0, &[2; 10]);
        assert_eq!(c.data.len(), MAX_HELLO);
        assert_eq!(c.prefix(), &[2; 10]);
    }

    #[test]
    fn packet_number_decoding() {
        // RFC 9000 A.3 example.
        assert_eq!(
            decode_packet_number(Some(0xa82f30ea), 0x9b32, 2),
            0xa82f9b32
        );
        assert_eq!(decode_packet_number(None, 0, 1), 0);
        assert_eq!(decode_packet_number(Some(255), 1, 1), 257);
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn mutations_never_panic() {
        let big = datagrams(AIOQUIC_V1_BIG);
        let bases = [
            rfc9001_a2(),
            rfc9369_a2(),
            datagrams(AIOQUIC_V1)[0].clone(),
            big[1].clone(),
        ];
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        for i in 0..3000 {
            let mut m = bases[i % bases.len()].clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(m.len());
                match rng.below(5) {
                    0 => m[at] = rng.next() as u8,
                    1 => m[at] ^= 1 << rng.below(8),
                    2 => m.truncate(at),
                    // Header bytes matter most: hit them often.
                    3 => {
                        let h = rng.below(m.len().min(30));
                        m[h] = rng.next() as u8;
                    }
                    _ => m.insert(at, rng.next() as u8),
                }
                if m.is_empty() {
                    break;
                }
            }
            let mut st = QuicInitialState::default();
            let _ = st.feed(&m);
            // Also with a flow that already holds half a ClientHello.
            let mut st = QuicInitialState::default();
            assert_eq!(st.feed(&big[0]), QuicSni::Incomplete);
            let _ = st.feed(&m);
        }
        // Plaintext-level fuzzing: frames that authenticate but are nonsense.
        for _ in 0..300 {
            let len = rng.below(300);
            let frames: Vec<u8> = (0..len).map(|_| rng.next() as u8 & 0x07).collect();
            let p = seal_initial(V1, DCID, 0, 1, &frames, 0);
            let _ = feed_all(&[&p]);
        }
    }
}
