//! Sending the resets of a connection refused by name (built in core,
//! [`simpul_core::enforce::reset`]): the client gets one as if from the
//! server, the server one as if from the client, the moment the refusal is
//! asked for — one `sendto` each, no process.
//!
//! Raw IP sockets (IPPROTO_RAW: the header is ours, `IP_HDRINCL` implied),
//! not AF_PACKET: the agent forwards between interfaces as a router, and a
//! raw IP packet is routed like any the router sends, out of whichever
//! interface leads to its destination, with the kernel resolving the next
//! hop's MAC. The capture sees the naming frame on one interface only (the
//! LAN side, where the client's MAC is), so an AF_PACKET send to the
//! server would need the WAN next hop's MAC, which nothing here knows. The
//! packets are the router's own (output path), so the refusal's forward
//! chain does not drop them.

use std::io;
use std::net::{IpAddr, SocketAddr};

use simpul_core::enforce::reset::{build, Towards, MAX_LEN};
use simpul_core::guard::{NameBlock, TcpPosition};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// What one [`Resetter::reset`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub sent: u64,
    pub failed: u64,
}

/// The two raw sockets; either may be missing (no IPv6 on the router, no
/// CAP_NET_RAW), and then that family's resets count as failed.
pub struct Resetter {
    v4: Option<Socket>,
    v6: Option<Socket>,
}

impl Resetter {
    /// Open both families' sockets; a family that cannot be opened is
    /// logged once and left out.
    pub fn open() -> Resetter {
        let open = |domain: Domain, family: &str| {
            raw_socket(domain)
                .inspect_err(|e| {
                    tracing::warn!(family, error = %e, "cannot open a raw socket: connections refused by name over this family are not reset at both ends (the kernel still resets the end that sends next)");
                })
                .ok()
        };
        Resetter {
            v4: open(Domain::IPV4, "IPv4"),
            v6: open(Domain::IPV6, "IPv6"),
        }
    }

    /// Reset both ends of `conn`, whose naming segment stood at `at`:
    /// the client first (the end that would otherwise wait).
    pub fn reset(&self, conn: &NameBlock, at: TcpPosition) -> Outcome {
        let mut out = Outcome::default();
        for to in [Towards::Client, Towards::Server] {
            match self.send(conn, at, to) {
                Ok(()) => out.sent += 1,
                Err(e) => {
                    out.failed += 1;
                    tracing::warn!(
                        client = %conn.client,
                        client_port = conn.client_port,
                        server = %conn.server,
                        port = conn.port,
                        towards = ?to,
                        error = %e,
                        "cannot send the reset of a connection refused by name"
                    );
                }
            }
        }
        out
    }

    fn send(&self, conn: &NameBlock, at: TcpPosition, to: Towards) -> io::Result<()> {
        let mut buf = [0u8; MAX_LEN];
        let n = build(conn, at, to, &mut buf).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a TCP connection of one address family",
            )
        })?;
        let dst = match to {
            Towards::Client => conn.client,
            Towards::Server => conn.server,
        };
        let sock = match dst {
            IpAddr::V4(_) => self.v4.as_ref(),
            IpAddr::V6(_) => self.v6.as_ref(),
        }
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::Unsupported, "no raw socket for the family")
        })?;
        // Port 0: a raw IPv6 socket takes the port as the protocol, and 0
        // means its own.
        let addr = SockAddr::from(SocketAddr::new(dst, 0));
        // Never wait on a full socket buffer: this thread also adds the
        // kernel entries.
        let sent = sock.send_to_with_flags(&buf[..n], &addr, libc::MSG_DONTWAIT)?;
        if sent != n {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {n} bytes"),
            ));
        }
        Ok(())
    }
}

fn raw_socket(domain: Domain) -> io::Result<Socket> {
    // IPPROTO_RAW implies a header of our own on both families (IP_HDRINCL,
    // and the same for IPv6 since Linux 4.5), and such a socket receives
    // nothing.
    let s = Socket::new(
        domain,
        Type::from(libc::SOCK_RAW),
        Some(Protocol::from(libc::IPPROTO_RAW)),
    )?;
    s.set_nonblocking(true)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A raw TCP socket sees every TCP packet the namespace receives; the
    /// first RST between these ports, as (source, destination, seq, ack).
    fn wait_for_rst(rx: &Socket, sport: u16, dport: u16, v6: bool) -> (IpAddr, IpAddr, u32, u32) {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
        loop {
            let (n, from) = rx.recv_from(&mut buf).expect("a reset arrives");
            // SAFETY: recv_from initialised the first n bytes.
            let b: Vec<u8> = buf[..n]
                .iter()
                .map(|x| unsafe { x.assume_init() })
                .collect();
            // A raw IPv4 socket gets the IP header, a raw IPv6 socket only
            // the TCP header (the source comes with recvfrom).
            let (src, dst, tcp) = if v6 {
                let src = from.as_socket().expect("inet").ip();
                (src, "::1".parse().expect("ip"), &b[..])
            } else {
                let h = etherparse::Ipv4Header::from_slice(&b).expect("IPv4").0;
                (
                    IpAddr::from(h.source),
                    IpAddr::from(h.destination),
                    &b[usize::from(h.ihl()) * 4..],
                )
            };
            let t = etherparse::TcpHeader::from_slice(tcp).expect("TCP").0;
            if t.rst && t.source_port == sport && t.destination_port == dport {
                return (src, dst, t.sequence_number, t.acknowledgment_number);
            }
        }
    }

    /// In a network namespace of this thread's own, both families' resets
    /// leave through the raw sockets and arrive as TCP from the spoofed
    /// end with the numbers the naming segment gives. (A raw socket sees a
    /// packet before TCP checks its checksum: core's tests check that.)
    #[test]
    fn resets_leave_through_the_raw_sockets_for_both_families() {
        let t = std::thread::spawn(|| {
            // SAFETY: moves only this thread into a fresh network namespace.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            if rc != 0 {
                eprintln!("skipped: no CAP_SYS_ADMIN for a network namespace");
                return;
            }
            let up = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .expect("ip runs");
            assert!(up.success());
            let r = Resetter::open();
            let at = TcpPosition {
                seq: 5000,
                ack: 9000,
                len: 517,
            };
            for (family, client, server) in [
                (Domain::IPV4, "127.0.0.2", "127.0.0.3"),
                (Domain::IPV6, "::1", "::1"),
            ] {
                let rx = Socket::new(
                    family,
                    Type::from(libc::SOCK_RAW),
                    Some(Protocol::from(libc::IPPROTO_TCP)),
                )
                .expect("raw TCP receive socket");
                rx.set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("timeout");
                let conn = NameBlock {
                    client: client.parse().expect("ip"),
                    client_port: 40001,
                    server: server.parse().expect("ip"),
                    proto: 6,
                    port: 443,
                };
                assert_eq!(r.reset(&conn, at), Outcome { sent: 2, failed: 0 });
                let v6 = family == Domain::IPV6;
                let (src, dst, seq, ack) = wait_for_rst(&rx, 443, 40001, v6);
                assert_eq!((src, seq, ack), (conn.server, 9000, 5517), "to the client");
                if !v6 {
                    assert_eq!(dst, conn.client);
                }
                let (src, _, seq, ack) = wait_for_rst(&rx, 40001, 443, v6);
                assert_eq!((src, seq, ack), (conn.client, 5517, 9000), "to the server");
            }
            let mut quic = NameBlock {
                client: "127.0.0.2".parse().expect("ip"),
                client_port: 1,
                server: "127.0.0.3".parse().expect("ip"),
                proto: 17,
                port: 443,
            };
            assert_eq!(r.reset(&quic, at).failed, 2, "UDP gets no reset");
            quic.proto = 6;
            assert_eq!(r.reset(&quic, at).sent, 2);
        });
        t.join().expect("namespace thread");
    }
}
