//! DEMO BEHAVIOUR: a MikroTik router of Diskominfo that cannot run the
//! agent exports NetFlow v9, sampled 1 in 100, to the collector's NetFlow
//! listener over loopback; so the demo shows an exporter node (up while it
//! exports), flows marked with their protocol and sampling rate, and the
//! sequence gaps UDP loss leaves (one datagram in 60 is "lost": skipped).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use simpul_core::netflow::synth::{SynthFlow, V9Exporter};

/// The exporter's node id, agency and the sampling it announces.
pub const NODE: &str = "diskominfo-mt-01";
pub const AGENCY: &str = "diskominfo";
pub const SAMPLING: u32 = 100;
/// The agency's index in the demo's list (its subnets: `rewrite::subnets`).
/// Not dinkes: the policy and list tests wait for every dinkes node to
/// apply a policy, which an exporter never does.
pub const AGENCY_INDEX: u8 = 0;

/// Templates and options are repeated every this many datagrams.
const TEMPLATES_EVERY: u32 = 10;
/// One datagram in this many is skipped (a gap the collector counts).
const LOSE_EVERY: u32 = 60;
/// Which datagram of each `LOSE_EVERY` is skipped.
const FIRST_LOSS: u32 = 5;

/// Send a datagram of a few sampled flows every second to `to`.
pub async fn run(to: SocketAddr) {
    let sock = match tokio::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "demo exporter: cannot open its socket");
            return;
        }
    };
    let (sek, it) = crate::rewrite::subnets(AGENCY_INDEX);
    let base = |cidr: &str| {
        cidr.split('/')
            .next()
            .and_then(|a| a.parse::<Ipv4Addr>().ok())
            .map(|a| a.octets())
    };
    let Some(lans) = [sek.first(), it.first()]
        .into_iter()
        .map(|c| c.and_then(|c| base(c)))
        .collect::<Option<Vec<[u8; 4]>>>()
    else {
        tracing::warn!("demo exporter: the agency has no IPv4 subnets");
        return;
    };
    let boot = simpul_collector::state::now_ms().saturating_sub(86_400_000);
    let mut x = V9Exporter::new(1, SAMPLING, boot);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for n in 0u32.. {
        tick.tick().await;
        let now = simpul_collector::state::now_ms();
        let flows: Vec<SynthFlow> = (0..4u32)
            .map(|k| {
                let lan = lans[(k % 2) as usize];
                let host = Ipv4Addr::new(lan[0], lan[1], lan[2], 10 + ((n + k) % 40) as u8);
                let port = 40_000 + ((n * 4 + k) % 20_000) as u16;
                // Three downloads from the internet, one upload to the
                // intranet; about 0.4 Mbit/s once scaled, well inside the
                // agency's allocation.
                let (src, dst, src_port, dst_port) = if k == 3 {
                    (host, Ipv4Addr::new(10, 99, 0, 20), port, 8443)
                } else {
                    (
                        Ipv4Addr::new(203, 0, 113, 10 + (k as u8) * 7),
                        host,
                        443,
                        port,
                    )
                };
                SynthFlow {
                    src,
                    dst,
                    src_port,
                    dst_port,
                    proto: 6,
                    // Sampled counts: the collector multiplies them by 100.
                    bytes: 64 + u64::from((n * 37 + k * 11) % 128),
                    packets: 1,
                    start_ms: now.saturating_sub(8_000),
                    end_ms: now.saturating_sub(500),
                }
            })
            .collect();
        // The first loss comes a few seconds in, so a fresh demo shows a gap
        // at once rather than after a minute.
        if n % LOSE_EVERY == FIRST_LOSS {
            x.skip(1);
        }
        let d = x.datagram(now, &flows, n % TEMPLATES_EVERY == 0);
        if let Err(e) = sock.send_to(&d, to).await {
            tracing::debug!(error = %e, "demo exporter: datagram not sent");
        }
    }
}
