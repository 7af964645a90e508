#!/usr/bin/env python3
"""Deterministic synthetic IMIX pcap generator for the Simpul replay benchmark.

Writes a legacy pcap (LINKTYPE_ETHERNET, microsecond timestamps) plus a sidecar
JSON file with the ground truth (packets, IP-layer bytes, flows, ...).

Traffic model (all parameters fixed by --seed):
  * --flows bidirectional flows (default 60,000), every flow has a unique
    5-tuple (ICMP flows additionally a unique client/server host pair, since
    most flow meters ignore the echo id):
      - TCP  ~70 %: SYN, SYN-ACK, ACK, data..., FIN-ACK (c), FIN-ACK (s), ACK
      - UDP  ~25 %: first packet client->server, then both directions
      - ICMP  ~5 %: echo request / echo reply pairs (ICMPv6 128/129 for v6)
  * ~20 % of flows IPv6, ~10 % of flows 802.1Q tagged (every frame of the flow)
  * IP-layer sizes follow Simple IMIX 7:4:1 of 40/576/1500 bytes (a 40-byte IP
    packet is a 64-byte frame on the wire incl. FCS).  IPv6 minimum is 60 bytes
    (header-only TCP), handshake/teardown packets are header-only, and data
    packet sizes are skewed so the overall mix stays ~7:4:1.  Frames shorter than
    60 bytes are zero-padded to the Ethernet minimum, so frame length != 14 + IP
    length for small IPv4 packets (tests that meters use the IP length).
  * clients: IPv4 10.10.0.0/16, IPv6 fd00:10:10::/48 (ULA mirror of 10.10/16)
    servers: 203.0.113.0/24, 198.51.100.0/24, 2001:db8::/32
  * timestamps strictly increasing (microseconds) over ~--duration seconds.
  * IPv4 header, TCP, UDP, ICMP and ICMPv6 checksums are valid; payload is zeros.

Ground truth "total_ip_bytes" = sum of IPv4 total length / IPv6 payload
length + 40 over all packets; "ip_bytes_up" / "ip_bytes_down" split it by
direction (up = client -> server, the client being the flow initiator).
"l2_payload_bytes" = captured frame length minus the Ethernet (+802.1Q) header,
i.e. IP bytes plus Ethernet padding (what softflowd reports as octets).
"directional_flows" = number of (flow, direction) pairs that carry >= 1 packet
(what unidirectional meters such as pmacct/nfdump report as records).

Usage: gen_imix.py --out bench/out/imix.pcap [--seed 1] [--packets 2000000]
                   [--flows 60000] [--duration 60]
The sidecar is written to OUT with the extension replaced by .json (or --meta).
"""

import argparse
import hashlib
import heapq
import json
import os
import random
import struct
import sys
import time

GENERATOR_VERSION = 1
EPOCH = 1_700_000_000  # first packet timestamp (seconds), fixed for determinism

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58

# TCP flags
FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10

GW_MAC = bytes.fromhex("020000000001")

TCP_SERVER_PORTS = [(443, 60), (80, 20), (22, 4), (8080, 4), (25, 2), (993, 3), (5222, 2), (3389, 2), (8443, 3)]
UDP_SERVER_PORTS = [(53, 45), (443, 30), (123, 8), (3478, 7), (5353, 4), (1194, 6)]


def csum_words(b):
    """Sum of big-endian 16-bit words (unfolded)."""
    if len(b) & 1:
        b = b + b"\0"
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def weighted(rng, table):
    total = sum(w for _, w in table)
    r = rng.random() * total
    for v, w in table:
        r -= w
        if r < 0:
            return v
    return table[-1][0]


class Dir:
    """Precomputed header template of one direction of one flow."""
    __slots__ = ("hdr", "l2", "l4", "hlen", "ipbase", "l4base")


def build_dir(v6, vlan, proto, smac, dmac, src, dst, sport, dport, ttl, flowlabel, icmp_type, icmp_id):
    d = Dir()
    l2 = dmac + smac
    if vlan:
        l2 += struct.pack("!HHH", ETH_P_8021Q, vlan, ETH_P_IPV6 if v6 else ETH_P_IP)
    else:
        l2 += struct.pack("!H", ETH_P_IPV6 if v6 else ETH_P_IP)
    d.l2 = len(l2)
    if v6:
        ip = struct.pack("!IHBB", 0x60000000 | flowlabel, 0, proto, ttl) + src + dst
        d.ipbase = 0
        pseudo = csum_words(src + dst) + proto  # + upper-layer length added per packet
    else:
        ip = struct.pack("!BBHHHBBH", 0x45, 0, 0, 0, 0x4000, ttl, proto, 0) + src + dst
        d.ipbase = csum_words(ip)  # total length, id added per packet
        pseudo = csum_words(src + dst) + proto
    if proto == PROTO_TCP:
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 0x50, 0, 65535, 0, 0)
        d.l4base = pseudo + csum_words(l4)  # + tcp length, seq, ack, flags
    elif proto == PROTO_UDP:
        l4 = struct.pack("!HHHH", sport, dport, 0, 0)
        d.l4base = pseudo + csum_words(l4)  # + 2 * udp length
    else:  # ICMP echo / ICMPv6 echo
        l4 = struct.pack("!BBHHH", icmp_type, 0, 0, icmp_id, 0)
        d.l4base = csum_words(l4) + (pseudo if v6 else 0)  # + seq (+ length for v6)
    d.hdr = l2 + ip + l4
    d.l4 = len(l2) + len(ip)
    d.hlen = len(d.hdr)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output pcap path")
    ap.add_argument("--meta", help="sidecar JSON path (default: OUT with .json)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--flows", type=int, default=60_000)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    ap.add_argument("--v6-share", type=float, default=0.20)
    ap.add_argument("--vlan-share", type=float, default=0.10)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()

    t_start = time.time()
    rng = random.Random(a.seed)
    nflows = a.flows
    if a.packets < nflows * 7:
        sys.exit("need at least 7 packets per flow on average")
    dur_us = int(a.duration * 1e6)

    # ------------------------------------------------------------------ flows
    protos = []
    for _ in range(nflows):
        r = rng.random()
        protos.append(PROTO_TCP if r < 0.70 else (PROTO_UDP if r < 0.95 else PROTO_ICMP))
    # packet counts: minimum per protocol + heavy-tailed share of the remainder
    mins = [7 if p == PROTO_TCP else (2 if p == PROTO_ICMP else 1) for p in protos]
    weights = [min(rng.paretovariate(1.3), 400.0) * (0.3 if p == PROTO_ICMP else 1.0) for p in protos]
    rem = a.packets - sum(mins)
    wsum = sum(weights)
    counts = []
    for p, m, w in zip(protos, mins, weights):
        extra = int(rem * w / wsum)
        if p == PROTO_ICMP:
            extra &= ~1
        counts.append(m + extra)
    left = a.packets - sum(counts)
    non_icmp = [i for i, p in enumerate(protos) if p != PROTO_ICMP]
    while left > 0:
        counts[non_icmp[rng.randrange(len(non_icmp))]] += 1
        left -= 1
    assert sum(counts) == a.packets

    # control (header-only) packets vs data packets -> size distribution for data
    n_ctrl = sum(6 for p in protos if p == PROTO_TCP) + sum(c for p, c in zip(protos, counts) if p == PROTO_ICMP)
    n_data = a.packets - n_ctrl
    p_small = max(0.0, (a.packets * 7 / 12 - n_ctrl) / n_data)
    p_med = (1 - p_small) * 0.8
    thr_small, thr_med = p_small, p_small + p_med

    used_tuples = set()
    used_icmp_pairs = set()
    F_v6, F_vlan, F_proto, F_n, F_start, F_span, F_up, F_down = [], [], [], [], [], [], [], []
    F_seq_c, F_seq_s, F_icmp_seq = [], [], []
    flow_v6 = flow_vlan = 0
    for i in range(nflows):
        proto = protos[i]
        n = counts[i]
        v6 = rng.random() < a.v6_share
        vlan = (100 + rng.randrange(8)) if rng.random() < a.vlan_share else 0
        while True:
            chost = rng.randrange(1, 65535)
            if v6:
                caddr = bytes.fromhex("fd000010001000000000000000000000")[:12] + struct.pack("!I", chost)
                block = rng.randrange(4)
                saddr = bytes.fromhex("20010db8") + struct.pack("!HHI", 0x100 * (block + 1), 0, 0) + struct.pack("!I", rng.randrange(1, 255))
            else:
                caddr = bytes((10, 10, chost >> 8, chost & 0xFF))
                net = (203, 0, 113) if rng.random() < 0.6 else (198, 51, 100)
                saddr = bytes(net + (rng.randrange(1, 255),))
            if proto == PROTO_TCP:
                dport = weighted(rng, TCP_SERVER_PORTS)
            elif proto == PROTO_UDP:
                dport = weighted(rng, UDP_SERVER_PORTS)
            else:
                dport = 0
            sport = rng.randrange(32768, 61000) if proto != PROTO_ICMP else 0
            if proto == PROTO_ICMP:
                key = (caddr, saddr)
                if key in used_icmp_pairs:
                    continue
                used_icmp_pairs.add(key)
            else:
                key = (proto, caddr, sport, saddr, dport)
                if key in used_tuples:
                    continue
                used_tuples.add(key)
            break
        cmac = b"\x02\x01" + (caddr[-4:] if not v6 else caddr[-4:])
        icmp_id = rng.randrange(1, 65535)
        flabel_c = rng.randrange(1 << 20) if v6 else 0
        flabel_s = rng.randrange(1 << 20) if v6 else 0
        if v6 and proto == PROTO_ICMP:
            proto_w, t_req, t_rep = PROTO_ICMPV6, 128, 129
        else:
            proto_w, t_req, t_rep = proto, 8, 0
        up = build_dir(v6, vlan, proto_w, cmac, GW_MAC, caddr, saddr, sport, dport, 64, flabel_c, t_req, icmp_id)
        down = build_dir(v6, vlan, proto_w, GW_MAC, cmac, saddr, caddr, dport, sport, 56, flabel_s, t_rep, icmp_id)
        # timing: start uniform, span grows with packet count, capped by the capture end
        start = rng.randrange(0, int(dur_us * 0.92))
        span = int(min(dur_us - start - 1, (n - 1) * rng.expovariate(1 / 8000.0) + rng.randrange(100, 2000)))
        span = max(span, n - 1)
        F_v6.append(v6)
        F_vlan.append(vlan)
        F_proto.append(proto_w)
        F_n.append(n)
        F_start.append(start)
        F_span.append(span)
        F_up.append(up)
        F_down.append(down)
        F_seq_c.append(rng.getrandbits(32))
        F_seq_s.append(rng.getrandbits(32))
        F_icmp_seq.append(0)
        flow_v6 += v6
        flow_vlan += bool(vlan)

    # --------------------------------------------------------------- packets
    out_dir = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = a.out + ".tmp"
    f = open(tmp, "wb", buffering=0)
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    BUFSZ = 32 << 20
    LIMIT = BUFSZ - 2048
    buf = bytearray(BUFSZ)
    zeros = memoryview(bytes(2048))
    pk_rec = struct.Struct("<IIII").pack_into
    pk_v4 = struct.Struct("!HH").pack_into  # total length, id
    pk_h = struct.Struct("!H").pack_into
    pk_seqack = struct.Struct("!II").pack_into
    pk_icmp = struct.Struct("!H").pack_into
    rnd = rng.random

    heap = [(F_start[i], i) for i in range(nflows)]
    heapq.heapify(heap)
    F_k = [0] * nflows
    F_dirs = [0] * nflows  # bit 0: saw client->server, bit 1: saw server->client

    pos = 0
    last_ts = -1
    ipid = rng.randrange(65536)
    tot_pkts = tot_ip = tot_frame = ip_up = ip_down = pk_up = pk_down = 0
    v6_pkts = vlan_pkts = 0
    size_hist = {}
    proto_pkts = {}
    sha = hashlib.sha256()
    hbytes = 0
    while heap:
        t, fi = heap[0]
        k = F_k[fi]
        n = F_n[fi]
        proto = F_proto[fi]
        v6 = F_v6[fi]
        # ---------------------------------------------------- packet decision
        if proto == PROTO_TCP:
            if k == 0:
                is_up, flags, plen = True, SYN, 0
            elif k == 1:
                is_up, flags, plen = False, SYN | ACK, 0
            elif k == 2:
                is_up, flags, plen = True, ACK, 0
            elif k == n - 3:
                is_up, flags, plen = True, FIN | ACK, 0
            elif k == n - 2:
                is_up, flags, plen = False, FIN | ACK, 0
            elif k == n - 1:
                is_up, flags, plen = True, ACK, 0
            else:
                is_up = rnd() < 0.35
                r = rnd()
                ipsz = 40 if r < thr_small else (576 if r < thr_med else 1500)
                plen = ipsz - (60 if v6 else 40)
                if plen < 0:
                    plen = 0
                flags = (PSH | ACK) if plen else ACK
            l4len = 20 + plen
        elif proto == PROTO_UDP:
            is_up = True if k == 0 else rnd() < 0.5
            r = rnd()
            ipsz = 40 if r < thr_small else (576 if r < thr_med else 1500)
            plen = ipsz - (48 if v6 else 28)
            if plen < 12:
                plen = 12
            l4len = 8 + plen
        else:  # ICMP / ICMPv6 echo, 12 bytes payload -> IP 40 (v4) / 60 (v6)
            is_up = not (k & 1)
            plen = 12
            l4len = 20
        d = F_up[fi] if is_up else F_down[fi]
        iplen = l4len + (40 if v6 else 20)
        flen = d.l2 + iplen
        caplen = flen if flen >= 60 else 60
        # ------------------------------------------------------ timestamp
        if t <= last_ts:
            t = last_ts + 1
        last_ts = t
        # ------------------------------------------------------ write frame
        pk_rec(buf, pos, EPOCH + t // 1_000_000, t % 1_000_000, caplen, caplen)
        p = pos + 16
        hl = d.hlen
        buf[p:p + hl] = d.hdr
        if caplen > hl:
            buf[p + hl:p + caplen] = zeros[:caplen - hl]
        l4 = p + d.l4
        if v6:
            pk_h(buf, p + d.l2 + 4, l4len)
        else:
            ipid = (ipid + 1) & 0xFFFF
            pk_v4(buf, p + d.l2 + 2, iplen, ipid)
            pk_h(buf, p + d.l2 + 10, 0xFFFF - fold(d.ipbase + iplen + ipid))
        if proto == PROTO_TCP:
            if is_up:
                seq, ack = F_seq_c[fi], F_seq_s[fi]
            else:
                seq, ack = F_seq_s[fi], F_seq_c[fi]
            if flags == SYN:
                ack = 0
            adv = plen + (1 if flags & (SYN | FIN) else 0)
            if is_up:
                F_seq_c[fi] = (seq + adv) & 0xFFFFFFFF
            else:
                F_seq_s[fi] = (seq + adv) & 0xFFFFFFFF
            pk_seqack(buf, l4 + 4, seq, ack)
            buf[l4 + 13] = flags
            s = d.l4base + l4len + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF) + flags
            pk_h(buf, l4 + 16, 0xFFFF - fold(s))
        elif proto == PROTO_UDP:
            pk_h(buf, l4 + 4, l4len)
            c = 0xFFFF - fold(d.l4base + 2 * l4len)
            pk_h(buf, l4 + 6, c or 0xFFFF)
        else:
            sq = F_icmp_seq[fi]
            if not is_up:
                F_icmp_seq[fi] = sq + 1
            pk_h(buf, l4 + 6, sq)
            s = d.l4base + sq + (l4len if proto == PROTO_ICMPV6 else 0)
            pk_h(buf, l4 + 2, 0xFFFF - fold(s))
        pos = p + caplen
        # ------------------------------------------------------ accounting
        tot_pkts += 1
        tot_ip += iplen
        tot_frame += caplen
        if is_up:
            ip_up += iplen
            pk_up += 1
            F_dirs[fi] |= 1
        else:
            ip_down += iplen
            pk_down += 1
            F_dirs[fi] |= 2
        if v6:
            v6_pkts += 1
        if d.l2 == 18:
            vlan_pkts += 1
        size_hist[iplen] = size_hist.get(iplen, 0) + 1
        proto_pkts[proto] = proto_pkts.get(proto, 0) + 1
        # ------------------------------------------------------ next event
        k += 1
        if k < n:
            F_k[fi] = k
            heapq.heapreplace(heap, (F_start[fi] + (F_span[fi] * k) // (n - 1), fi))
        else:
            heapq.heappop(heap)
        if pos > LIMIT:
            mv = memoryview(buf)[:pos]
            f.write(mv)
            sha.update(mv)
            hbytes += pos
            mv.release()
            pos = 0
    if pos:
        mv = memoryview(buf)[:pos]
        f.write(mv)
        sha.update(mv)
        mv.release()
    f.close()
    os.replace(tmp, a.out)

    names = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMP: "icmp", PROTO_ICMPV6: "icmpv6"}
    flows_by_proto = {}
    for p in F_proto:
        flows_by_proto[names[p]] = flows_by_proto.get(names[p], 0) + 1
    small = sum(c for s, c in size_hist.items() if s <= 60)
    large = size_hist.get(1500, 0)
    med = tot_pkts - small - large
    meta = {
        "generator": "bench/gen_imix.py",
        "generator_version": GENERATOR_VERSION,
        "seed": a.seed,
        "pcap": os.path.basename(a.out),
        "pcap_format": "pcap (legacy, LE, usec), linktype 1 (ethernet), snaplen 65535",
        "total_packets": tot_pkts,
        "total_ip_bytes": tot_ip,
        "flows": nflows,
        "flows_by_proto": flows_by_proto,
        "packets_by_proto": {names[k]: v for k, v in sorted(proto_pkts.items())},
        "packets_up": pk_up,
        "packets_down": pk_down,
        "ip_bytes_up": ip_up,
        "ip_bytes_down": ip_down,
        "directional_flows": sum((m & 1) + (m >> 1) for m in F_dirs),
        "frame_bytes": tot_frame,
        "l2_payload_bytes": tot_frame - 14 * tot_pkts - 4 * vlan_pkts,
        "pcap_file_bytes": 24 + 16 * tot_pkts + tot_frame,
        "ipv6_packets": v6_pkts,
        "ipv6_flows": flow_v6,
        "vlan_packets": vlan_pkts,
        "vlan_flows": flow_vlan,
        "imix_ip_size_classes": {"small(40/60)": small, "576": med, "1500": large},
        "first_ts": EPOCH + 0.0,
        "last_ts": EPOCH + last_ts / 1e6,
        "duration_s": round(last_ts / 1e6, 6),
        "pcap_sha256": sha.hexdigest(),
        "client_nets": ["10.10.0.0/16", "fd00:10:10::/48"],
        "server_nets": ["203.0.113.0/24", "198.51.100.0/24", "2001:db8::/32"],
        "ip_bytes_definition": "sum of IPv4 total length / IPv6 payload length + 40; up = client(initiator)->server",
    }
    meta_path = a.meta or (os.path.splitext(a.out)[0] + ".json")
    with open(meta_path + ".tmp", "w") as mf:
        json.dump(meta, mf, indent=2)
        mf.write("\n")
    os.replace(meta_path + ".tmp", meta_path)
    if not a.quiet:
        print("wrote %s: %d packets, %d flows, %d IP bytes, %.1f%% v6 pkts, %.1f%% vlan pkts, %.1fs"
              % (a.out, tot_pkts, nflows, tot_ip, 100.0 * v6_pkts / tot_pkts, 100.0 * vlan_pkts / tot_pkts,
                 time.time() - t_start), file=sys.stderr)


if __name__ == "__main__":
    main()
