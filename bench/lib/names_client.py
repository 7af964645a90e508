#!/usr/bin/env python3
"""Client side of bench/names.sh: COUNT TCP connections to SERVER:443, one
after another, each sending a real TLS ClientHello (Python's ssl, through a
memory BIO) that names NAME.

quiet: the connection then stays silent, waiting up to 500 ms for the
agent's reset (the server only acknowledges, like one that answered the
ClientHello before the refusal was in: a silent client meets no kernel
reset, only the one the agent sends it), and records ClientHello sent →
reset received; the agent's own log gives capture → element-in-kernel
and capture → resets sent.
probe: after the ClientHello the client sends a 1-byte segment every
PROBE_US microseconds until a send fails (the router's reset arrived), and
records ClientHello sent → connection refused as seen on the wire (an upper
bound: the last probe interval is included).

Each connection has a port of its own (BASE_PORT + i): an ephemeral port
the kernel hands out again would repeat a refused 5-tuple, refused at its
SYN for the entry's lifetime.

Usage: names_client.py SERVER NAME COUNT MODE GAP_MS OUT_JSON BASE_PORT [PROBE_US]
"""
import json
import socket
import ssl
import struct
import sys
import time


def client_hello(name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def main():
    server, name, count, mode, gap_ms, out_path = sys.argv[1:7]
    base_port = int(sys.argv[7])
    probe_us = int(sys.argv[8]) if len(sys.argv) > 8 else 100
    count, gap = int(count), float(gap_ms) / 1000.0
    refused_us, survived, errors = [], 0, 0
    reset_us, not_reset = [], 0
    for i in range(count):
        hello = client_hello(name)
        try:
            s = socket.create_connection((server, 443), timeout=2, source_address=("", base_port + i))
        except OSError:
            errors += 1
            time.sleep(gap)
            continue
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        t0 = time.perf_counter()
        s.sendall(hello)
        if mode == "probe":
            deadline = t0 + 1.0
            done = False
            while time.perf_counter() < deadline:
                nxt = time.perf_counter() + probe_us / 1e6
                while time.perf_counter() < nxt:
                    pass
                try:
                    s.send(b"x")
                except OSError:
                    refused_us.append((time.perf_counter() - t0) * 1e6)
                    done = True
                    break
            if not done:
                survived += 1
        else:
            s.settimeout(0.5)
            try:
                s.recv(1)
                not_reset += 1
            except ConnectionResetError:
                reset_us.append((time.perf_counter() - t0) * 1e6)
            except OSError:
                not_reset += 1
        s.close()
        time.sleep(gap)
    with open(out_path, "w") as f:
        json.dump(
            {
                "refused_us": refused_us,
                "survived": survived,
                "errors": errors,
                "reset_us": reset_us,
                "not_reset": not_reset,
            },
            f,
        )


if __name__ == "__main__":
    main()
