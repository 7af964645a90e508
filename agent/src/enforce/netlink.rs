//! Adding and removing set elements in nftables straight through netlink:
//! one NETLINK_NETFILTER batch (BATCH_BEGIN, NFT_MSG_NEWSETELEM or
//! NFT_MSG_DELSETELEM…, BATCH_END) per call, one kernel transaction,
//! acknowledged before the call returns, so the change is in force when it
//! does. An `nft` process per
//! entry costs a fork, an exec and a ruleset parse (tens of milliseconds
//! here); this costs one `sendmsg` and one `recv`.
//!
//! Only what the name blocks and the DNS redirect's live mark need is
//! encoded: elements with a key and a timeout, in a set of an `inet` table. Layouts are the kernel's uapi
//! (`linux/netlink.h`, `linux/netfilter/nfnetlink.h`,
//! `linux/netfilter/nf_tables.h`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_DATA_VALUE: u16 = 1;

/// How long to wait for the kernel's answer; it answers from within the
/// `sendmsg`, so this only bounds a kernel that does not.
const ACK_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a netfilter netlink socket: {0}")]
    Open(io::Error),
    #[error("cannot send to nftables over netlink: {0}")]
    Send(io::Error),
    #[error("no answer from nftables over netlink: {0}")]
    Receive(io::Error),
    #[error("nftables refused the elements for inet {table} {set}: {cause}")]
    Refused {
        table: String,
        set: String,
        cause: io::Error,
    },
    #[error("unreadable netlink answer ({0} bytes)")]
    Garbled(usize),
}

/// One element: its key (the set's concatenated fields, each padded to 4
/// bytes, see [`key`]) and how long it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub key: Vec<u8>,
    pub timeout: Duration,
}

/// Builds a concatenated set key: every field in network byte order,
/// padded to a 32-bit register as the kernel lays out concatenations.
#[derive(Debug, Default)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn field(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }

    pub fn build(self) -> Vec<u8> {
        self.0
    }
}

/// The key of an interface name in a set of `type ifname`: the name
/// zero-padded to IFNAMSIZ (16) bytes. None for a name the kernel could not
/// hold (empty, 16 bytes or more, or with a NUL).
pub fn ifname_key(name: &str) -> Option<Vec<u8>> {
    const IFNAMSIZ: usize = 16;
    if name.is_empty() || name.len() >= IFNAMSIZ || name.as_bytes().contains(&0) {
        return None;
    }
    let mut k = name.as_bytes().to_vec();
    k.resize(IFNAMSIZ, 0);
    Some(k)
}

pub struct NftSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl NftSocket {
    pub fn open() -> Result<NftSocket, NetlinkError> {
        // SAFETY: plain socket(2); the fd is owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(NetlinkError::Open(io::Error::last_os_error()));
        }
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let tv = libc::timeval {
            tv_sec: ACK_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: tv outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(NetlinkError::Open(io::Error::last_os_error()));
        }
        // SAFETY: an all-zero sockaddr_nl is valid (pid 0: the kernel picks).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: addr is a valid sockaddr_nl for the duration of the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(NetlinkError::Open(io::Error::last_os_error()));
        }
        Ok(NftSocket {
            fd,
            seq: 1,
            buf: vec![0; 8192],
        })
    }

    /// Add `elements` to `set` of table `inet table` in one kernel
    /// transaction; an element already there keeps its expiry.
    pub fn add_elements(
        &mut self,
        table: &str,
        set: &str,
        elements: &[Element],
    ) -> Result<(), NetlinkError> {
        if elements.is_empty() {
            return Ok(());
        }
        self.transact(table, set, &[(Op::Add, elements)])
    }

    /// Give `element` a fresh full timeout: add, delete, add in one
    /// transaction (an `add` of an element that is there keeps its old
    /// expiry; the set never lacks it in between).
    pub fn renew_element(
        &mut self,
        table: &str,
        set: &str,
        element: &Element,
    ) -> Result<(), NetlinkError> {
        let one = std::slice::from_ref(element);
        self.transact(
            table,
            set,
            &[(Op::Add, one), (Op::Delete, one), (Op::Add, one)],
        )
    }

    /// Remove `element` now: add (so the delete cannot fail on one that
    /// expired), delete, in one transaction.
    pub fn remove_element(
        &mut self,
        table: &str,
        set: &str,
        element: &Element,
    ) -> Result<(), NetlinkError> {
        let one = std::slice::from_ref(element);
        self.transact(table, set, &[(Op::Add, one), (Op::Delete, one)])
    }

    /// Send `ops` as one batch and wait for the kernel's answer to each.
    fn transact(
        &mut self,
        table: &str,
        set: &str,
        ops: &[(Op, &[Element])],
    ) -> Result<(), NetlinkError> {
        let seq = self.seq;
        let count = ops.len() as u32;
        self.seq = self.seq.wrapping_add(count + 2);
        let msg = setelem_batch(seq, table, set, ops);
        // SAFETY: msg is a valid buffer of msg.len() bytes.
        let sent = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if sent < 0 {
            return Err(NetlinkError::Send(io::Error::last_os_error()));
        }
        self.wait_ack(seq.wrapping_add(count), table, set)
    }

    /// Read answers until the one for `seq` (the batch's last message):
    /// success, or the first errno the kernel gives for any message of the
    /// batch (it answers every one, in order).
    fn wait_ack(&mut self, seq: u32, table: &str, set: &str) -> Result<(), NetlinkError> {
        loop {
            // SAFETY: buf is valid for buf.len() bytes.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NetlinkError::Receive(e));
            }
            let data = &self.buf[..n as usize];
            for a in messages(data)? {
                if a.ty != NLMSG_ERROR || a.seq < seq.saturating_sub(1) {
                    continue;
                }
                let errno = a
                    .payload
                    .get(..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or(NetlinkError::Garbled(data.len()))?;
                if errno != 0 {
                    return Err(NetlinkError::Refused {
                        table: table.to_string(),
                        set: set.to_string(),
                        cause: io::Error::from_raw_os_error(-errno),
                    });
                }
                if a.seq == seq {
                    return Ok(());
                }
            }
        }
    }
}

/// One message of a datagram from the kernel.
struct Answer<'a> {
    ty: u16,
    seq: u32,
    payload: &'a [u8],
}

/// The messages in a datagram.
fn messages(mut data: &[u8]) -> Result<Vec<Answer<'_>>, NetlinkError> {
    let total = data.len();
    let mut out = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if len < 16 || len > data.len() {
            return Err(NetlinkError::Garbled(total));
        }
        out.push(Answer {
            ty: u16::from_ne_bytes([data[4], data[5]]),
            seq: u32::from_ne_bytes([data[8], data[9], data[10], data[11]]),
            payload: &data[16..len],
        });
        data = &data[len.next_multiple_of(4).min(data.len())..];
    }
    Ok(out)
}

/// What one message of a batch does with its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Delete,
}

/// The three messages: BATCH_BEGIN (`seq`), NEWSETELEM (`seq + 1`, the
/// only one acknowledged), BATCH_END (`seq + 2`).
pub fn new_setelem_batch(seq: u32, table: &str, set: &str, elements: &[Element]) -> Vec<u8> {
    setelem_batch(seq, table, set, &[(Op::Add, elements)])
}

/// BATCH_BEGIN (`seq`), one acknowledged NEWSETELEM or DELSETELEM per op
/// (`seq + 1`…), BATCH_END: one transaction.
pub fn setelem_batch(seq: u32, table: &str, set: &str, ops: &[(Op, &[Element])]) -> Vec<u8> {
    let n: usize = ops.iter().map(|(_, e)| e.len()).sum();
    let mut b = Vec::with_capacity(128 + ops.len() * 64 + n * 80);
    let begin = start_msg(&mut b, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq);
    nfgen(&mut b, 0, NFNL_SUBSYS_NFTABLES);
    end_msg(&mut b, begin);

    let mut next = seq;
    for (op, elements) in ops {
        next = next.wrapping_add(1);
        setelem_msg(&mut b, next, *op, table, set, elements);
    }

    let fin = start_msg(
        &mut b,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        next.wrapping_add(1),
    );
    nfgen(&mut b, 0, NFNL_SUBSYS_NFTABLES);
    end_msg(&mut b, fin);
    b
}

/// One NEWSETELEM (with each element's timeout) or DELSETELEM (keys only).
fn setelem_msg(b: &mut Vec<u8>, seq: u32, op: Op, table: &str, set: &str, elements: &[Element]) {
    let (ty, flags) = match op {
        Op::Add => (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK),
        Op::Delete => (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK),
    };
    let msg = start_msg(b, (NFNL_SUBSYS_NFTABLES << 8) | ty, flags, seq);
    nfgen(b, NFPROTO_INET, 0);
    attr_str(b, NFTA_SET_ELEM_LIST_TABLE, table);
    attr_str(b, NFTA_SET_ELEM_LIST_SET, set);
    let list = start_nest(b, NFTA_SET_ELEM_LIST_ELEMENTS);
    for e in elements {
        let el = start_nest(b, NFTA_LIST_ELEM);
        let key = start_nest(b, NFTA_SET_ELEM_KEY);
        attr(b, NFTA_DATA_VALUE, &e.key);
        end_nest(b, key);
        if op == Op::Add {
            let ms = u64::try_from(e.timeout.as_millis()).unwrap_or(u64::MAX);
            attr(b, NFTA_SET_ELEM_TIMEOUT, &ms.to_be_bytes());
        }
        end_nest(b, el);
    }
    end_nest(b, list);
    end_msg(b, msg);
}

/// Writes an nlmsghdr with a length to patch; returns where it starts.
fn start_msg(b: &mut Vec<u8>, ty: u16, flags: u16, seq: u32) -> usize {
    let at = b.len();
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    at
}

/// struct nfgenmsg: family, version 0, resource id (big endian).
fn nfgen(b: &mut Vec<u8>, family: u8, res_id: u16) {
    b.push(family);
    b.push(0);
    b.extend_from_slice(&res_id.to_be_bytes());
}

fn start_nest(b: &mut Vec<u8>, ty: u16) -> usize {
    let at = b.len();
    b.extend_from_slice(&0u16.to_ne_bytes());
    b.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    at
}

/// Patch the length of the message that starts at `at`.
fn end_msg(b: &mut [u8], at: usize) {
    let len = (b.len() - at) as u32;
    b[at..at + 4].copy_from_slice(&len.to_ne_bytes());
}

/// Patch the length of the nested attribute that starts at `at`.
fn end_nest(b: &mut [u8], at: usize) {
    let len = (b.len() - at) as u16;
    b[at..at + 2].copy_from_slice(&len.to_ne_bytes());
}

fn attr(b: &mut Vec<u8>, ty: u16, value: &[u8]) {
    b.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(value);
    pad(b);
}

fn attr_str(b: &mut Vec<u8>, ty: u16, s: &str) {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    attr(b, ty, &v);
}

fn pad(b: &mut Vec<u8>) {
    b.resize(b.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_begin_newsetelem_end_with_the_element_nested() {
        let key = Key::default()
            .field(&[10, 0, 0, 1])
            .field(&[0x01, 0xbb])
            .build();
        assert_eq!(key, [10, 0, 0, 1, 0x01, 0xbb, 0, 0]);
        let b = new_setelem_batch(
            7,
            "simpul_names",
            "names4",
            &[Element {
                key: key.clone(),
                timeout: Duration::from_secs(120),
            }],
        );
        let msgs = messages(&b).expect("well formed");
        let kinds: Vec<(u16, u32)> = msgs.iter().map(|m| (m.ty, m.seq)).collect();
        assert_eq!(kinds, [(0x10, 7), ((10 << 8) | 12, 8), (0x11, 9)]);
        // nfgenmsg: the batch names the nftables subsystem, the message the
        // inet family.
        assert_eq!(msgs[0].payload, [0, 0, 0, 10]);
        let p = msgs[1].payload;
        assert_eq!(&p[..4], [1, 0, 0, 0]);
        // table attribute: length 4 + "simpul_names\0" (13), padded to 20.
        assert_eq!(&p[4..8], [17, 0, 1, 0]);
        assert_eq!(&p[8..21], b"simpul_names\0");
        assert_eq!(&p[24..28], [11, 0, 2, 0]);
        assert_eq!(&p[28..35], b"names4\0");
        // elements list > element > key > value, then the timeout.
        let list = &p[36..];
        assert_eq!(u16::from_ne_bytes([list[2], list[3]]), 3 | NLA_F_NESTED);
        assert_eq!(
            usize::from(u16::from_ne_bytes([list[0], list[1]])),
            list.len()
        );
        let value = &list[12..];
        assert_eq!(&value[..4], [12, 0, 1, 0]);
        assert_eq!(&value[4..12], key.as_slice());
        assert_eq!(&value[12..16], [12, 0, 4, 0]);
        assert_eq!(&value[16..24], 120_000u64.to_be_bytes());
        assert_eq!(value.len(), 24);
    }

    #[test]
    fn a_renewal_is_add_delete_add_in_one_batch_and_a_delete_carries_no_timeout() {
        let key = ifname_key("lan0").expect("fits");
        assert_eq!(key.len(), 16);
        assert_eq!(&key[..5], b"lan0\0");
        assert_eq!(ifname_key(""), None);
        assert_eq!(ifname_key("sixteen-chars-xx"), None);
        assert!(ifname_key("fifteen-chars-x").is_some());
        let e = Element {
            key: key.clone(),
            timeout: Duration::from_secs(3),
        };
        let one = std::slice::from_ref(&e);
        let b = setelem_batch(
            40,
            "simpul_dns",
            "live",
            &[(Op::Add, one), (Op::Delete, one), (Op::Add, one)],
        );
        let msgs = messages(&b).expect("well formed");
        let kinds: Vec<(u16, u32)> = msgs.iter().map(|m| (m.ty, m.seq)).collect();
        let (new, del) = ((10 << 8) | 12, (10 << 8) | 14);
        assert_eq!(
            kinds,
            [(0x10, 40), (new, 41), (del, 42), (new, 43), (0x11, 44)]
        );
        let timeout = 3_000u64.to_be_bytes();
        let has_timeout = |p: &[u8]| p.windows(8).any(|w| w == timeout);
        assert!(has_timeout(msgs[1].payload) && has_timeout(msgs[3].payload));
        assert!(!has_timeout(msgs[2].payload));
        // The delete names the same key; it and the adds are acknowledged.
        assert!(msgs[2].payload.windows(16).any(|w| w == key.as_slice()));
        let flags = |i: usize| u16::from_ne_bytes([b[i + 6], b[i + 7]]);
        let mut at = 0;
        let mut acked = Vec::new();
        while at < b.len() {
            acked.push(flags(at) & NLM_F_ACK != 0);
            at += u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        }
        assert_eq!(acked, [false, true, true, true, false]);
    }

    #[test]
    fn garbled_answers_are_errors() {
        assert!(matches!(
            messages(&[40, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
            Err(NetlinkError::Garbled(16))
        ));
        assert!(messages(&[]).expect("empty").is_empty());
    }
}
