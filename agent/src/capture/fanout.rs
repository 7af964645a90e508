//! How a PACKET_FANOUT group deals frames to its rings: a classic BPF
//! program that sums the two IP addresses (so either direction gives the
//! same number) and mixes the sum; the kernel takes it modulo the rings.
//!
//! Why not PACKET_FANOUT_HASH: its symmetric hash covers the ports, which
//! IP fragments do not carry (even the first is hashed on addresses only),
//! so the fragments of a datagram and the rest of its flow may land on
//! different rings, and then in two flow tables. PACKET_FANOUT_FLAG_DEFRAG
//! would mend that by handing over the datagram reassembled — one packet
//! where the wire carried several, so packets and bytes would no longer be
//! the wire's. By address pair, every fragment, both directions and the
//! port-less orphan flow of a pair meet in one table, as in the sharded
//! replay (`simpul_core::shard`).
//!
//! The program runs where the kernel demultiplexes, on the frame as it is
//! there: a received frame's data starts at its network header, a sent
//! one's at its link header. So addresses are loaded relative to the
//! network header the kernel has set (SKF_NET_OFF), which is right either
//! way and after a VLAN tag. Anything but IPv4/IPv6 goes to ring 0.

// Classic BPF opcodes (linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const ALU_ADD_X: u16 = 0x0c;
const ALU_MUL_K: u16 = 0x24;
const ALU_RSH_K: u16 = 0x74;
const TAX: u16 = 0x07;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
const RET_A: u16 = 0x16;

/// Multiplier of the mix (2^32 / golden ratio): spreads sums that differ
/// in a few low bits (neighbouring hosts) over the high bits kept.
const MIX: u32 = 0x9e37_79b1;

fn ins(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// Where a load at `at` bytes into the network header points.
fn net(at: u32) -> u32 {
    (libc::SKF_NET_OFF as u32).wrapping_add(at)
}

/// Sum of the 32-bit words at `from..to` (step 4) of the network header into A.
fn sum_words(out: &mut Vec<libc::sock_filter>, from: u32, to: u32) {
    out.push(ins(LD_W_ABS, net(from)));
    for at in (from + 4..to).step_by(4) {
        out.push(ins(TAX, 0));
        out.push(ins(LD_W_ABS, net(at)));
        out.push(ins(ALU_ADD_X, 0));
    }
}

/// The fanout program: which ring (before the kernel's modulo) gets a frame.
pub fn address_pair_program() -> Vec<libc::sock_filter> {
    let mut v4 = Vec::new();
    // IPv4: source at 12, destination at 16.
    sum_words(&mut v4, 12, 20);
    let mut v6 = Vec::new();
    // IPv6: source at 8..24, destination at 24..40.
    sum_words(&mut v6, 8, 40);
    let mix = [ins(ALU_MUL_K, MIX), ins(ALU_RSH_K, 16), ins(RET_A, 0)];
    let protocol = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
    let mut p = vec![ins(LD_H_ABS, protocol)];
    // Jumps count instructions skipped; every one here is short.
    let v4_len = v4.len() + 1; // and its jump over the IPv6 part
    let jeq = |k: u32, jt: usize, jf: usize| libc::sock_filter {
        code: JEQ_K,
        jt: jt as u8,
        jf: jf as u8,
        k,
    };
    p.push(jeq(0x0800, 1, 0));
    p.push(jeq(0x86dd, v4_len, v4_len + v6.len() + mix.len()));
    p.extend(v4);
    p.push(ins(JA, v6.len() as u32));
    p.extend(v6);
    p.extend(mix);
    p.push(ins(RET_K, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program as the kernel does on a packet whose network
    /// header is `l3`, with `protocol` as skb->protocol; a load past the
    /// end returns 0, and only network-relative loads are allowed (the
    /// data may start at either header).
    fn run(prog: &[libc::sock_filter], protocol: u16, l3: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let ad = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_H_ABS if i.k == ad => a = u32::from(protocol),
                LD_W_ABS => {
                    let at = i.k.wrapping_sub(libc::SKF_NET_OFF as u32) as usize;
                    assert!(at < 0x1000, "a load not relative to the network header");
                    match l3.get(at..at + 4) {
                        Some(b) => a = u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                        None => return 0,
                    }
                }
                ALU_ADD_X => a = a.wrapping_add(x),
                ALU_MUL_K => a = a.wrapping_mul(i.k),
                ALU_RSH_K => a >>= i.k,
                TAX => x = a,
                JA => pc += i.k as usize,
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                RET_K => return i.k,
                RET_A => return a,
                other => panic!("opcode {other:#x} not in the interpreter"),
            }
        }
    }

    fn v4(src: [u8; 4], dst: [u8; 4], frag: u16, l4: &[u8]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 1];
        h.extend_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&[64, 17, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h.extend_from_slice(l4);
        h
    }

    fn v6(src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb, 0, 8, 0, 0]);
        h
    }

    #[test]
    fn both_directions_and_every_fragment_meet_on_one_ring() {
        let prog = address_pair_program();
        assert!(prog.len() < 64);
        let mut rings = [[0usize; 2]; 2];
        for i in 0..=255u8 {
            let (a, b) = ([10, 10, 1, i], [203, 0, 113, i.wrapping_mul(37)]);
            let ports = [0x9c, 0x40, 0x01, 0xbb];
            let there = run(&prog, 0x0800, &v4(a, b, 0, &ports));
            let back = run(&prog, 0x0800, &v4(b, a, 0, &[0x01, 0xbb, 0x9c, 0x40]));
            let first = run(&prog, 0x0800, &v4(a, b, 0x2000, &ports));
            let later = run(&prog, 0x0800, &v4(a, b, 0x00b9, &[1, 2, 3, 4]));
            assert_eq!([back, first, later], [there; 3], "pair {i}");
            let mut x = [0xfdu8; 16];
            x[15] = i;
            let y = [0x20u8; 16];
            let six = run(&prog, 0x86dd, &v6(x, y));
            assert_eq!(six, run(&prog, 0x86dd, &v6(y, x)));
            rings[0][there as usize % 2] += 1;
            rings[1][six as usize % 2] += 1;
        }
        // Neighbouring hosts spread over both rings.
        for r in rings {
            assert!(r.iter().all(|&n| n > 80), "spread: {r:?}");
        }
    }

    #[test]
    fn other_frames_and_short_ones_go_to_ring_0() {
        let prog = address_pair_program();
        assert_eq!(run(&prog, 0x0806, &[0u8; 28]), 0, "ARP");
        assert_eq!(run(&prog, 0x0800, &[0x45, 0, 0, 20]), 0, "cut short");
        assert_eq!(run(&prog, 0x86dd, &[0x60; 30]), 0, "cut short");
    }
}
