#!/usr/bin/env python3
"""Hostile clients against a running collector (issue 9), stdlib only.

Usage:
  hostile.py wait   --tls-port P --ca FILE [--timeout 60]
  hostile.py attack NAME --pid PID --tls-port P --ca FILE --token T
                    --data-dir DIR --out RESULTS.jsonl [--series DIR]
                    [--after 10] [--hold 20] [--note TEXT]
  hostile.py report RESULTS.jsonl        (markdown section on stdout)

Attacks (all on the TLS listener, 127.0.0.1; every attacking connection
is bound to a source address of its own range in 127.0.0.0/8 so the
legitimate probes from 127.0.0.1 are never counted against the attacker's
per-address share):

  agent-prehello  120 connections to /api/v1/agent (4 addresses, 30 each),
                  WebSocket upgrade, then each starts one 16 MiB binary frame
                  before any Hello, all at the same moment.
  live-big        12 live feeds (bearer token, same-origin Origin) from one
                  address, each starting one 64 MiB message.
  live-idle       2,000 live feeds from 40 addresses (50 each), opened at
                  most 100 at a time, held idle (pongs answered, ticks read
                  and dropped, like a background tab) for --hold s, then
                  all closed at once.
  slowloris-one   1,100 connections from ONE address: TLS handshake, then a
                  request head that never ends (one more header line every
                  3 s); a connection the server closes is opened again
                  (after 0.5 s; after 2 s if it was refused at once) until
                  --hold s have passed.
  slowloris-many  the same from 20 addresses (55 each, under the per-address
                  cap), so only the total cap and the header timeout act.

While an attack runs, the collector's VmRSS, RssAnon, threads and open
descriptors (/proc/PID/status, /proc/PID/fd) are sampled every 100 ms (what
the descriptors point at every 0.5 s), and a prober on 127.0.0.1 does, every
0.5 s, one round of legitimate requests, each on a new connection with a 5 s
timeout: GET /healthz, GET /api/v1/nodes with the token, a WebSocket upgrade
on /api/v1/agent (an agent reconnecting; 101 expected, closed before Hello)
and one on /api/v1/live (a dashboard page; 101 expected).

"before" is taken 2 s after a warm-up round (every probe once), "after" is
taken --after s after the last attacking socket was closed by this client.
Each attack appends one JSON line to --out; --series DIR also gets the
100 ms samples as CSV.
"""

import argparse
import base64
import collections
import json
import os
import resource
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
PROBE_SRC = "127.0.0.1"
CONNECT_TIMEOUT = 10.0

# --------------------------------------------------------------------------
# /proc sampling


def proc_status(pid):
    r = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                    r[k] = int(v.split()[0])
                elif k == "Threads":
                    r[k] = int(v)
    except OSError:
        pass
    return r


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def fd_kinds(pid, data_dir):
    """What the descriptors point at: sockets, the database files, other."""
    k = collections.Counter()
    d = "/proc/%d/fd" % pid
    try:
        names = os.listdir(d)
    except OSError:
        return {}
    for n in names:
        try:
            t = os.readlink(os.path.join(d, n))
        except OSError:
            continue
        if t.startswith("socket:"):
            k["sockets"] += 1
        elif t.startswith(data_dir) and ".db" in t:
            k["database"] += 1
        else:
            k["other"] += 1
    return dict(k)


def nofile_limit(pid):
    try:
        with open("/proc/%d/limits" % pid) as f:
            for line in f:
                if line.startswith("Max open files"):
                    p = line.split()
                    return [p[3], p[4]]
    except OSError:
        pass
    return None


class Sampler(threading.Thread):
    def __init__(self, pid, data_dir, interval=0.1):
        super().__init__(daemon=True)
        self.pid, self.data_dir, self.interval = pid, data_dir, interval
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.samples = []  # (t, rss, anon, fds, threads, db_fds or None)

    def run(self):
        last_kinds = 0.0
        while not self.stop.is_set():
            t = time.monotonic()
            st = proc_status(self.pid)
            fds = fd_count(self.pid)
            db = None
            if t - last_kinds >= 0.5:
                db = fd_kinds(self.pid, self.data_dir).get("database", 0)
                last_kinds = t
            with self.lock:
                self.samples.append((t, st.get("VmRSS", -1), st.get("RssAnon", -1), fds,
                                     st.get("Threads", -1), db))
            self.stop.wait(self.interval)

    def peak(self, t0, t1):
        with self.lock:
            w = [s for s in self.samples if t0 <= s[0] <= t1]
        if not w:
            return {}
        return {
            "rss_kb": max(s[1] for s in w),
            "anon_kb": max(s[2] for s in w),
            "fds": max(s[3] for s in w),
            "threads": max(s[4] for s in w),
            "database_fds": max((s[5] for s in w if s[5] is not None), default=None),
            "samples": len(w),
        }

    def dump(self, path, t0):
        with self.lock, open(path, "w") as f:
            f.write("t_s,vmrss_kb,rssanon_kb,fds,threads,database_fds\n")
            for s in self.samples:
                f.write("%.2f,%d,%d,%d,%d,%s\n" % (s[0] - t0, s[1], s[2], s[3], s[4],
                                                    "" if s[5] is None else s[5]))


def checkpoint(pid, data_dir):
    st = proc_status(pid)
    return {"rss_kb": st.get("VmRSS"), "anon_kb": st.get("RssAnon"), "threads": st.get("Threads"),
            "fds": fd_count(pid), "fd_kinds": fd_kinds(pid, data_dir)}


# --------------------------------------------------------------------------
# TLS, HTTP and WebSocket bits


class Target:
    def __init__(self, port, ca, token, legit_token=None):
        self.port, self.token = port, token
        # The legitimate probes' own account (another operator's token than
        # the attacker's: a cap on one principal must not lock out others).
        self.legit_token = legit_token or token
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.check_hostname = True
        self.hostport = "%s:%d" % (HOST, port)

    def connect(self, src, timeout=CONNECT_TIMEOUT):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(timeout)
        try:
            raw.bind((src, 0))
            raw.connect((HOST, self.port))
            return self.ctx.wrap_socket(raw, server_hostname=HOST)
        except BaseException:
            raw.close()
            raise


def read_head(s, limit=65536):
    """Read an HTTP response head; returns (status, head text, rest bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(16384)
        if not d:
            raise ConnectionError("closed before a response (%d bytes)" % len(buf))
        buf += d
        if len(buf) > limit:
            raise ConnectionError("response head too long")
    head, _, rest = buf.partition(b"\r\n\r\n")
    text = head.decode("latin-1")
    try:
        status = int(text.split(" ", 2)[1])
    except (IndexError, ValueError):
        status = -1
    return status, text, rest


def ws_upgrade(s, target, path, extra):
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: %s" % target.hostport, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % key, "Sec-WebSocket-Version: 13"]
    lines += extra
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return read_head(s)


def live_headers(target, legit=False):
    token = target.legit_token if legit else target.token
    return ["Authorization: Bearer %s" % token, "Origin: https://%s" % target.hostport]


def frame_header(opcode, length, mask=b"\x11\x22\x33\x44"):
    """A client (masked) frame header announcing `length` payload bytes."""
    b0 = 0x80 | opcode
    if length < 126:
        return bytes([b0, 0x80 | length]) + mask
    if length < 65536:
        return bytes([b0, 0x80 | 126]) + struct.pack(">H", length) + mask
    return bytes([b0, 0x80 | 127]) + struct.pack(">Q", length) + mask


def masked(opcode, payload, mask=b"\x01\x02\x03\x04"):
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return frame_header(opcode, len(payload), mask) + body


def http_get(target, path, headers=(), timeout=5.0):
    s = target.connect(PROBE_SRC, timeout)
    try:
        req = ["GET %s HTTP/1.1" % path, "Host: %s" % target.hostport, "Connection: close"]
        req += list(headers)
        s.sendall(("\r\n".join(req) + "\r\n\r\n").encode())
        status, _, rest = read_head(s)
        body = rest
        while True:
            try:
                d = s.recv(65536)
            except (ssl.SSLError, OSError):
                break
            if not d:
                break
            body += d
        return status, body
    finally:
        s.close()


def metrics(target):
    """The connection and feed gauges from /metrics (an operator token)."""
    want = ("simpul_http_connections", "simpul_http_connections_refused_total", "simpul_live_feeds")
    try:
        status, body = http_get(target, "/metrics", ["Authorization: Bearer %s" % target.token])
    except (OSError, ssl.SSLError):
        return None
    if status != 200:
        return None
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        p = line.split()
        if len(p) == 2 and p[0] in want:
            try:
                out[p[0]] = float(p[1])
            except ValueError:
                pass
    return out


def err_name(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, ssl.SSLError):
        return "tls:" + (e.reason or type(e).__name__)
    return type(e).__name__


# --------------------------------------------------------------------------
# The legitimate prober


class Prober(threading.Thread):
    KINDS = ("healthz", "nodes", "agent_upgrade", "live_upgrade")

    def __init__(self, target, every=0.5):
        super().__init__(daemon=True)
        self.target, self.every = target, every
        self.stop = threading.Event()
        self.results = []  # (t, kind, ok, detail, ms)
        self.gauges = []   # metrics seen during the burst

    def one(self, kind):
        t = self.target
        t0 = time.monotonic()
        try:
            if kind == "healthz":
                st, body = http_get(t, "/healthz")
                ok, detail = st == 200 and b'"ok"' in body, str(st)
            elif kind == "nodes":
                st, body = http_get(t, "/api/v1/nodes", ["Authorization: Bearer %s" % t.legit_token])
                ok, detail = st == 200 and body.lstrip().startswith(b"["), str(st)
            else:
                s = t.connect(PROBE_SRC, 5.0)
                try:
                    if kind == "agent_upgrade":
                        st, _, _ = ws_upgrade(s, t, "/api/v1/agent", [])
                    else:
                        st, _, _ = ws_upgrade(s, t, "/api/v1/live", live_headers(t, legit=True))
                finally:
                    s.close()
                ok, detail = st == 101, str(st)
        except (OSError, ssl.SSLError, ConnectionError) as e:
            ok, detail = False, err_name(e)
        return ok, detail, (time.monotonic() - t0) * 1000

    def round(self):
        out = []
        for k in self.KINDS:
            ok, detail, ms = self.one(k)
            out.append((time.monotonic(), k, ok, detail, ms))
        return out

    def run(self):
        n = 0
        while not self.stop.is_set():
            t0 = time.monotonic()
            self.results.extend(self.round())
            n += 1
            if n % 4 == 0:
                m = metrics(self.target)
                if m:
                    self.gauges.append(m)
            self.stop.wait(max(0.0, self.every - (time.monotonic() - t0)))

    def summary(self):
        s = {}
        for k in self.KINDS:
            r = [x for x in self.results if x[1] == k]
            fails = collections.Counter(x[3] for x in r if not x[2])
            s[k] = {"ok": sum(1 for x in r if x[2]), "n": len(r),
                    "max_ms": round(max((x[4] for x in r), default=0)),
                    "median_ms": round(sorted(x[4] for x in r)[len(r) // 2]) if r else None,
                    "failures": dict(fails)}
        return s


# --------------------------------------------------------------------------
# Attacks


def run_threads(fn, args_list, stack=256 * 1024):
    threading.stack_size(stack)
    ts = [threading.Thread(target=fn, args=a, daemon=True) for a in args_list]
    for t in ts:
        t.start()
    return ts


class Ready:
    """Counts connections that are set up (or failed), then lets them all go."""

    def __init__(self, n):
        self.n, self.done = n, 0
        self.cv = threading.Condition()
        self.go = threading.Event()

    def arrive(self):
        with self.cv:
            self.done += 1
            self.cv.notify_all()

    def wait_all(self, timeout):
        end = time.monotonic() + timeout
        with self.cv:
            while self.done < self.n and time.monotonic() < end:
                self.cv.wait(0.2)
        return self.done


def big_message(target, srcs, path, headers, size, label):
    """Every connection upgrades, then all start one `size`-byte binary
    frame at the same moment and push it until the collector stops them."""
    n = len(srcs)
    ready = Ready(n)
    res = [None] * n
    chunk = os.urandom(64 * 1024)

    def conn(i, src):
        r = {"upgraded": False}
        res[i] = r
        s = None
        try:
            s = target.connect(src)
            st, _, _ = ws_upgrade(s, target, path, headers)
            r["status"] = st
            r["upgraded"] = st == 101
        except (OSError, ssl.SSLError, ConnectionError) as e:
            r["setup_error"] = err_name(e)
        ready.arrive()
        if not r["upgraded"]:
            if s:
                s.close()
            return
        ready.go.wait()
        sent = 0
        s.settimeout(30)
        t0 = time.monotonic()
        try:
            s.sendall(frame_header(0x2, size))
            while sent < size:
                k = min(len(chunk), size - sent)
                s.sendall(chunk[:k] if k < len(chunk) else chunk)
                sent += k
            r["end"] = "whole message written"
        except (OSError, ssl.SSLError) as e:
            r["end"] = "cut: " + err_name(e)
        r["sent"] = sent
        r["secs"] = time.monotonic() - t0
        if r["end"] == "whole message written":
            # See whether (and when) the collector closes it.
            try:
                while s.recv(65536):
                    pass
                r["closed_by_server"] = True
            except (OSError, ssl.SSLError):
                r["closed_by_server"] = True
        s.close()

    ts = run_threads(conn, list(enumerate(srcs)))
    ready.wait_all(60)
    # Held open (upgraded, silent) for 2 s first, so the prober sees them.
    time.sleep(2.0)
    ready.go.set()
    for t in ts:
        t.join(120)
    ups = [r for r in res if r and r["upgraded"]]
    ends = collections.Counter(r.get("end") for r in ups)
    sent = sorted(r.get("sent", 0) for r in ups)
    return {
        "connections": n,
        "addresses": len(set(srcs)),
        "upgraded": len(ups),
        "not_upgraded": dict(collections.Counter(r.get("setup_error") or "status %s" % r.get("status")
                                                 for r in res if r and not r["upgraded"])),
        "message_bytes": size,
        "ends": dict(ends),
        "client_bytes_written_max": sent[-1] if sent else 0,
        "client_bytes_written_median": sent[len(sent) // 2] if sent else 0,
        "client_bytes_written_total": sum(sent),
        "cut_after_secs_max": round(max((r.get("secs", 0) for r in ups), default=0), 2),
        "what": label,
    }


def attack_agent_prehello(target, hold):
    srcs = ["127.0.1.%d" % (1 + i // 30) for i in range(120)]
    return big_message(target, srcs, "/api/v1/agent", [], 16 << 20,
                       "16 MiB binary frame before Hello")


def attack_live_big(target, hold):
    srcs = ["127.0.2.1"] * 12
    return big_message(target, srcs, "/api/v1/live", live_headers(target), 64 << 20,
                       "64 MiB message on the live feed")


def ws_drain(s, buf):
    """Read what arrived; answer pings. Returns (buf, closed, data frames)."""
    d = s.recv(65536)
    if not d:
        return buf, True, 0
    buf += d
    frames = 0
    while len(buf) >= 2:
        op = buf[0] & 0x0F
        ln = buf[1] & 0x7F
        off = 2
        if ln == 126:
            if len(buf) < 4:
                break
            ln = struct.unpack(">H", buf[2:4])[0]
            off = 4
        elif ln == 127:
            if len(buf) < 10:
                break
            ln = struct.unpack(">Q", buf[2:10])[0]
            off = 10
        if len(buf) < off + ln:
            break
        payload = buf[off:off + ln]
        buf = buf[off + ln:]
        if op == 0x9:
            s.sendall(masked(0xA, payload))
        elif op == 0x8:
            return buf, True, frames
        elif op in (0x1, 0x2):
            frames += 1
    return buf, False, frames


def attack_live_idle(target, hold, count=2000, per_address=50, parallel=100):
    srcs = ["127.0.3.%d" % (1 + i // per_address) for i in range(count)]
    ready = Ready(count)
    gate = threading.Semaphore(parallel)
    stop = threading.Event()
    res = [None] * count
    lock = threading.Lock()
    state = {"open": 0, "open_max": 0}

    def conn(i, src):
        r = {"outcome": None}
        res[i] = r
        s = None
        with gate:
            try:
                s = target.connect(src)
                st, text, rest = ws_upgrade(s, target, "/api/v1/live", live_headers(target))
                if st == 101:
                    r["outcome"] = "feed"
                elif st == 503:
                    r["outcome"] = "503 (feed cap)"
                else:
                    r["outcome"] = "status %d" % st
            except (OSError, ssl.SSLError, ConnectionError) as e:
                r["outcome"] = "connection refused or cut: " + err_name(e)
                rest = b""
        if r["outcome"] != "feed":
            if s:
                s.close()
            ready.arrive()
            return
        with lock:
            state["open"] += 1
            state["open_max"] = max(state["open_max"], state["open"])
        ready.arrive()
        buf = rest
        s.settimeout(1.0)
        frames = 0
        try:
            while not stop.is_set():
                try:
                    buf, closed, k = ws_drain(s, buf)
                except socket.timeout:
                    continue
                frames += k
                if closed:
                    r["closed_by_server"] = True
                    break
        except (OSError, ssl.SSLError) as e:
            r["closed_by_server"] = err_name(e)
        r["messages"] = frames
        s.close()
        with lock:
            state["open"] -= 1

    t0 = time.monotonic()
    ts = run_threads(conn, list(enumerate(srcs)))
    ready.wait_all(300)
    opened = time.monotonic() - t0
    time.sleep(hold)
    stop.set()
    for t in ts:
        t.join(30)
    outcomes = collections.Counter(r["outcome"] for r in res if r)
    return {
        "connections": count,
        "addresses": len(set(srcs)),
        "outcomes": dict(outcomes),
        "feeds_open_max": state["open_max"],
        "feeds_without_a_message": sum(1 for r in res if r and r["outcome"] == "feed" and not r.get("messages")),
        "messages_per_feed_median": sorted(r.get("messages", 0) for r in res if r and r["outcome"] == "feed")[
            sum(1 for r in res if r and r["outcome"] == "feed") // 2] if outcomes.get("feed") else 0,
        "feeds_closed_by_server_while_held": sum(1 for r in res if r and r.get("closed_by_server")),
        "open_secs": round(opened, 1),
        "hold_secs": hold,
    }


def attack_slowloris(target, hold, count=1100, addresses=1):
    per = -(-count // addresses)
    srcs = ["127.0.4.%d" % (1 + i // per) for i in range(count)]
    stop = threading.Event()
    gate = threading.Semaphore(100)
    lock = threading.Lock()
    st = collections.Counter()
    lifetimes = []
    live = {"now": 0, "max": 0}
    first_round = Ready(count)

    def worker(i, src):
        first = True
        while not stop.is_set():
            s = None
            try:
                with gate:
                    s = target.connect(src)
                    s.sendall(("GET /api/v1/nodes HTTP/1.1\r\nHost: %s\r\n" % target.hostport).encode())
            except (OSError, ssl.SSLError) as e:
                with lock:
                    st["refused at once (" + err_name(e) + ")"] += 1
                if s:
                    s.close()
                if first:
                    first_round.arrive()
                    first = False
                stop.wait(2.0)
                continue
            t_open = time.monotonic()
            with lock:
                st["admitted"] += 1
                live["now"] += 1
                live["max"] = max(live["max"], live["now"])
            if first:
                first_round.arrive()
                first = False
            s.settimeout(3.0)
            how, n = None, 0
            while not stop.is_set():
                try:
                    d = s.recv(4096)
                    if not d:
                        how = "closed by server (EOF)"
                    else:
                        how = "answered %s, closed" % d.split(b" ", 2)[1].decode("latin-1", "replace") \
                            if d.startswith(b"HTTP/") else "closed by server (data)"
                    break
                except socket.timeout:
                    try:
                        n += 1
                        s.sendall(b"X-Slow-%d: %d\r\n" % (n, n))
                    except (OSError, ssl.SSLError) as e:
                        how = "closed by server (" + err_name(e) + ")"
                        break
                except (OSError, ssl.SSLError) as e:
                    how = "closed by server (" + err_name(e) + ")"
                    break
            life = time.monotonic() - t_open
            s.close()
            with lock:
                live["now"] -= 1
                if how:
                    st[how] += 1
                    lifetimes.append(life)
                else:
                    st["still open at the end"] += 1
            if how:
                stop.wait(0.5)

    t0 = time.monotonic()
    ts = run_threads(worker, list(enumerate(srcs)))
    first_round.wait_all(120)
    first_secs = time.monotonic() - t0
    time.sleep(max(0.0, hold - first_secs))
    stop.set()
    for t in ts:
        t.join(30)
    lifetimes.sort()
    return {
        "connections": count,
        "addresses": addresses,
        "events": dict(st),
        "held_at_once_max": live["max"],
        "server_closed_lifetime_s": {
            "min": round(lifetimes[0], 1) if lifetimes else None,
            "median": round(lifetimes[len(lifetimes) // 2], 1) if lifetimes else None,
            "max": round(lifetimes[-1], 1) if lifetimes else None,
        },
        "first_round_secs": round(first_secs, 1),
        "hold_secs": hold,
    }


ATTACKS = {
    "agent-prehello": attack_agent_prehello,
    "live-big": attack_live_big,
    "live-idle": attack_live_idle,
    "slowloris-one": lambda t, h: attack_slowloris(t, h, addresses=1),
    "slowloris-many": lambda t, h: attack_slowloris(t, h, addresses=20),
}


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cmd_attack(a):
    if raise_nofile() < 4000:
        sys.exit("hostile: need at least 4000 open files (ulimit -n) for the clients")
    target = Target(a.tls_port, a.ca, a.token, a.legit_token)
    data_dir = os.path.realpath(a.data_dir)
    # Warm-up: every legitimate request once (lazy initialisation is not
    # counted as the attack's), then the baseline.
    warm = Prober(target)
    for _ in range(2):
        r = warm.round()
    bad = [(x[1], x[3]) for x in r if not x[2]]
    if bad:
        sys.exit("hostile: legitimate requests fail before the attack: %s" % bad)
    time.sleep(2)
    sampler = Sampler(a.pid, data_dir)
    sampler.start()
    time.sleep(0.3)
    loadavg = open("/proc/loadavg").read().split()[:3]
    before = checkpoint(a.pid, data_dir)
    before["metrics"] = metrics(target)
    prober = Prober(target)
    t0 = time.monotonic()
    prober.start()
    stats = ATTACKS[a.name](target, a.hold)
    t1 = time.monotonic()
    prober.stop.set()
    prober.join(30)
    # What the caps saw, right after the burst.
    m_end = metrics(target)
    time.sleep(a.after)
    after = checkpoint(a.pid, data_dir)
    after["metrics"] = metrics(target)
    sampler.stop.set()
    sampler.join()
    alive = os.path.exists("/proc/%d" % a.pid)
    trimmed = None
    if a.trim and alive:
        # Is what stayed resident freed memory glibc keeps, or still in use?
        # malloc_trim(0) hands free pages back; what remains is live.
        try:
            subprocess.run(["gdb", "-p", str(a.pid), "-batch", "-ex", "call (int)malloc_trim(0)"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
            time.sleep(0.5)
            trimmed = checkpoint(a.pid, data_dir)
        except (OSError, subprocess.SubprocessError):
            trimmed = None
    log = None
    if a.log:
        try:
            lines = open(a.log, errors="replace").read().splitlines()
            log = {"lines": len(lines),
                   "warn": sum(1 for l in lines if " WARN " in l),
                   "error": sum(1 for l in lines if " ERROR " in l),
                   "refused_before_authentication": sum(1 for l in lines if "bytes before authentication" in l),
                   "errors_first": [l[:300] for l in lines if " ERROR " in l][:3]}
        except OSError:
            pass
    peak = sampler.peak(t0, t1)
    gauges = prober.gauges + ([m_end] if m_end else [])
    rec = {
        "attack": a.name,
        "variant": a.variant,
        "note": a.note,
        "loadavg_before": " ".join(loadavg),
        "collector_nofile": nofile_limit(a.pid),
        "burst_secs": round(t1 - t0, 1),
        "after_secs": a.after,
        "before": before,
        "peak": peak,
        "after": after,
        "after_malloc_trim": trimmed,
        "collector_alive": alive,
        "collector_log": log,
        "metrics_during_max": {k: max(g.get(k, 0) for g in gauges) for k in
                               ("simpul_http_connections", "simpul_live_feeds")} if gauges else None,
        "refused_connections": ((after["metrics"] or {}).get("simpul_http_connections_refused_total", 0)
                                - (before["metrics"] or {}).get("simpul_http_connections_refused_total", 0))
        if after["metrics"] and before["metrics"] is not None else None,
        "probes": prober.summary(),
        "stats": stats,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if a.series:
        os.makedirs(a.series, exist_ok=True)
        sampler.dump(os.path.join(a.series, "%s%s.csv" % (a.name, a.variant)), t0)
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec, indent=1))


def cmd_wait(a):
    target = Target(a.tls_port, a.ca, "")
    end = time.monotonic() + a.timeout
    while time.monotonic() < end:
        try:
            st, _ = http_get(target, "/healthz", timeout=2)
            if st == 200:
                return
        except (OSError, ssl.SSLError, ConnectionError):
            pass
        time.sleep(0.2)
    sys.exit("hostile: the collector did not answer /healthz within %d s" % a.timeout)


# --------------------------------------------------------------------------
# The BENCHMARKS.md section

OLD = {
    "agent-prehello": ("120 connections × 16 MiB before Hello → **2.04 GB** RSS, not returned after they closed"),
    "live-big": "12 connections × 64 MiB on `/api/v1/live` → **843 MB** (no read timeout either)",
    "live-idle": "2,000 idle feeds, closed → **~500 MB** and **517 database descriptors** left behind",
    "slowloris-one": "1,100 idle connections at the 1,024-descriptor limit → agents and API locked out",
    "slowloris-many": "(same)",
    "slowloris-many-1024": "(same)",
}

TITLE = {
    "agent-prehello": "(a) 120 × 16 MiB frame before Hello, `/api/v1/agent`",
    "live-big": "(b) 12 live feeds × 64 MiB message",
    "live-idle": "(c) 2,000 idle live feeds, opened then closed",
    "slowloris-one": "(d) 1,100 slowloris connections, one address",
    "slowloris-many": "(d′) 1,100 slowloris connections, 20 addresses",
    "slowloris-many-1024": "(d″) as (d′), collector limited to 1,024 descriptors",
}


def size(n):
    if n >= 1 << 20:
        return "%.1f MiB" % (n / 1048576.0)
    return "%.0f KiB" % (n / 1024.0)


def mb(kb):
    return "%.0f MB" % (kb / 1024.0) if kb is not None and kb >= 0 else "?"


def served(p):
    parts = []
    all_ok = True
    for k, label in (("healthz", "healthz"), ("nodes", "nodes"), ("agent_upgrade", "agent"),
                     ("live_upgrade", "live")):
        x = p.get(k, {})
        if x.get("n", 0) == 0:
            parts.append("%s –" % label)
            continue
        if x["ok"] < x["n"]:
            all_ok = False
        parts.append("%s %d/%d" % (label, x["ok"], x["n"]))
    return ("yes" if all_ok else "**no**") + " (" + ", ".join(parts) + ")"


def fails(p):
    out = []
    for k, x in p.items():
        if x.get("failures"):
            out.append("%s: %s" % (k, ", ".join("%s ×%d" % kv for kv in sorted(x["failures"].items()))))
    return "; ".join(out)


def verdict(r):
    """Problems the figures show (the thresholds are generous: 16 MB of RSS,
    4 descriptors, 2 database descriptors more than before)."""
    b, a = r["before"], r["after"]
    t = r.get("after_malloc_trim")
    probs = []
    if not r.get("collector_alive", True):
        probs.append("the collector died")
        return probs
    d_rss = (a["rss_kb"] - b["rss_kb"]) / 1024.0
    if d_rss > 16:
        msg = "RSS %+.0f MB %d s after the burst (%s → %s)" % (d_rss, r["after_secs"], mb(b["rss_kb"]), mb(a["rss_kb"]))
        if t:
            d_t = (t["rss_kb"] - b["rss_kb"]) / 1024.0
            if d_t <= 16:
                msg += ("; not returned to the system, but free: glibc malloc keeps it (malloc_trim(0) "
                        "brought RSS to %s, %+.0f MB from before)" % (mb(t["rss_kb"]), d_t))
            else:
                msg += "; still %+.0f MB after malloc_trim(0) (%s): memory in use" % (d_t, mb(t["rss_kb"]))
        probs.append(msg)
    d_fds = a["fds"] - b["fds"]
    if d_fds > 4:
        probs.append("%+d descriptors after (%d → %d)" % (d_fds, b["fds"], a["fds"]))
    db_b = b["fd_kinds"].get("database", 0)
    db_a = a["fd_kinds"].get("database", 0)
    if db_a > db_b + 2:
        probs.append("%+d database descriptors after (%d → %d)" % (db_a - db_b, db_b, db_a))
    return probs


def refusal_text(key, p):
    f = fails(p)
    live = p.get("live_upgrade", {})
    only_live_503 = (all(x["ok"] == x["n"] for k, x in p.items() if k != "live_upgrade")
                     and set(live.get("failures", {})) == {"503"})
    if key == "live-idle" and only_live_503:
        return ("a legitimate dashboard page's live feed was refused with 503 in %d of %d attempts while "
                "the attacker's feeds were open: the 1,024-feed cap is one pool for every caller, so one "
                "operator token (or session) can take all of it; everything else was served"
                % (live["n"] - live["ok"], live["n"]))
    return "legitimate requests refused or timed out during the burst: " + f


def cmd_report(a):
    runs = {}
    for line in open(a.results):
        if line.strip():
            r = json.loads(line)
            runs[r["attack"] + (r.get("variant") or "")] = r
    order = ["agent-prehello", "live-big", "live-idle", "slowloris-one", "slowloris-many",
             "slowloris-many-1024"]
    rows = [runs[k] for k in order if k in runs]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    out = []
    w = out.append
    w("## Hostile clients against the collector (`bench/hostile.sh`)")
    w("")
    w("The attacks issue 9 measured against the old collector, re-run against a release build")
    w("(`simpul-collector serve`, fresh data directory, `configs/inventory.toml` and")
    w("`configs/policies/`, default `[server]` limits: `max_connections = 4096`,")
    w("`max_connections_per_address = 64`, `header_read_timeout_secs = 10`,")
    w("`idle_timeout_secs = 120`; 16 KiB before Hello, 4 KiB client messages and")
    w("1,024 feeds on the live feed) on loopback, TLS listener. A fresh collector per")
    w("attack, started with a soft descriptor limit of 1,024 (it raises it to the hard")
    w("limit itself) unless noted. VmRSS and open descriptors from `/proc/PID/status` and")
    w("`/proc/PID/fd`: before (after a warm-up), the peak during the burst (100 ms")
    w("samples), and %d s after this client closed its last attacking socket. Attackers" % rows[0]["after_secs"]
      if rows else "")
    w("use source addresses of their own in 127.0.0.0/8; legitimate requests come from")
    w("127.0.0.1 every 0.5 s during the burst, each on a new TLS connection with a 5 s")
    w("timeout: `GET /healthz`, `GET /api/v1/nodes` with an operator's API token, a")
    w("WebSocket upgrade on `/api/v1/agent` (an agent reconnecting: 101 expected) and")
    w("one on `/api/v1/live` (a dashboard page: 101 expected); ok/attempts below. The")
    w("legitimate requests use another operator's token than the attackers' (one stolen")
    w("token may exhaust what its own principal is allowed, not lock out the others).")
    w("")
    w("| attack | old collector (issue 9) | before: RSS / fds | peak during: RSS / fds | %d s after: RSS / fds | legitimate requests served during |" %
      (rows[0]["after_secs"] if rows else 10))
    w("|---|---|---:|---:|---:|---|")
    problems = []
    for r in rows:
        b, pk, af = r["before"], r["peak"], r["after"]
        key = r["attack"] + (r.get("variant") or "")
        t = r.get("after_malloc_trim")
        w("| %s | %s | %s / %d | %s / %d | %s / %d%s | %s |" % (
            TITLE.get(key, key), OLD.get(key, ""),
            mb(b["rss_kb"]), b["fds"], mb(pk.get("rss_kb")), pk.get("fds", -1),
            mb(af["rss_kb"]), af["fds"], " (malloc_trim: %s)" % mb(t["rss_kb"]) if t else "",
            served(r["probes"])))
        for p in verdict(r):
            problems.append("%s: %s" % (TITLE.get(key, key), p))
        if "**no**" in served(r["probes"]):
            problems.append("%s: %s" % (TITLE.get(key, key), refusal_text(key, r["probes"])))
    w("")
    w("What happened, attack by attack (descriptor kinds: sockets / database files / other):")
    w("")
    for r in rows:
        key = r["attack"] + (r.get("variant") or "")
        s = r["stats"]
        b, af, pk = r["before"], r["after"], r["peak"]
        kinds = lambda c: "%d / %d / %d" % (c["fd_kinds"].get("sockets", 0), c["fd_kinds"].get("database", 0),
                                            c["fd_kinds"].get("other", 0))
        line = "- **%s** — " % TITLE.get(key, key)
        if r["attack"] in ("agent-prehello", "live-big"):
            line += ("%d connections from %d address(es), %d upgraded and held silent for 2 s, then each "
                     "started a %d MiB frame at the same moment: %s; the client got at most %s (median %s) "
                     "into the socket before the connection ended (kernel socket buffers included), all cut "
                     "within %.0f ms. " % (s["connections"], s["addresses"], s["upgraded"], s["message_bytes"] >> 20,
                                          ", ".join("%s ×%d" % kv for kv in s["ends"].items()),
                                          size(s["client_bytes_written_max"]),
                                          size(s["client_bytes_written_median"]), s["cut_after_secs_max"] * 1000))
            if r["attack"] == "agent-prehello":
                n = (r.get("collector_log") or {}).get("refused_before_authentication")
                line += ("Caps: the 16 KiB pre-Hello budget%s; 30 per address stays under the per-address cap. "
                         % (" (%d \"more than 16384 bytes before authentication\" refusals in the log)" % n
                            if n is not None else ""))
            else:
                line += ("Caps: a live-feed client message may be 4 KiB, so the 64 MiB frame header is refused "
                         "when it arrives. ")
            if s.get("not_upgraded"):
                line += "Not upgraded: %s. " % ", ".join("%s ×%d" % kv for kv in s["not_upgraded"].items())
        elif r["attack"] == "live-idle":
            line += ("%d authenticated feeds asked for from %d addresses (%d each, under the per-address cap), "
                     "opened in %.0f s: %s; at most %d feeds open at once, held %d s (pings answered, ticks "
                     "read), then all closed. " % (
                         s["connections"], s["addresses"], s["connections"] // s["addresses"], s["open_secs"],
                         ", ".join("%s ×%d" % kv for kv in sorted(s["outcomes"].items())),
                         s["feeds_open_max"], s["hold_secs"]))
            nfeed = s["outcomes"].get("feed", 0)
            line += ("Caps: the live-feed cap (1,024) admitted %d and answered the rest 503; %d per address stays "
                     "under the per-address cap (64), which would have held one address to 64 connections; "
                     "the total cap (4,096) was not reached. " % (nfeed, s["connections"] // s["addresses"]))
        else:
            lt = s["server_closed_lifetime_s"]
            line += ("%d connections from %d address(es) for %d s, each reopened when closed: %s; at most "
                     "%d held at once; the collector closed held ones after %s–%s s (median %s s). " % (
                         s["connections"], s["addresses"], s["hold_secs"],
                         ", ".join("%s ×%d" % kv for kv in sorted(s["events"].items())),
                         s["held_at_once_max"], lt["min"], lt["max"], lt["median"]))
            per = -(-s["connections"] // s["addresses"])
            if per > 64:
                line += ("Caps: the per-address cap (64) held the address to 64 connections and closed every "
                         "further one at accept; the header timeout closed each held one after ~10 s. ")
            elif r.get("variant") == "-1024":
                line += ("Caps: %d per address stays under the per-address cap; the total cap (768 here) "
                         "filled, and every connection beyond it — the legitimate ones included — was closed "
                         "at accept until the header timeout freed places, which the attacker took again. " % per)
            else:
                line += ("Caps: %d per address stays under the per-address cap and %d under the total cap "
                         "(4,096), so all were admitted; the header timeout closed each after ~10 s. "
                         % (per, s["connections"]))
        if r.get("refused_connections") is not None:
            line += "Connections refused by the caps (`simpul_http_connections_refused_total`): %d. " % r["refused_connections"]
        if r.get("metrics_during_max"):
            md = r["metrics_during_max"]
            line += "Gauges seen during: up to %d connections, %d live feeds. " % (
                md.get("simpul_http_connections", 0), md.get("simpul_live_feeds", 0))
        line += ("Descriptors before %s, after %s; peak %s database descriptors; threads %d → peak %d → %d; "
                 "RssAnon %s → peak %s → %s. Collector open-files limit %s. Burst %.0f s. Load average "
                 "before: %s." % (kinds(b), kinds(af), pk.get("database_fds"), b["threads"], pk.get("threads", -1),
                                  af["threads"], mb(b["anon_kb"]), mb(pk.get("anon_kb")), mb(af["anon_kb"]),
                                  "/".join(r["collector_nofile"] or ["?"]), r["burst_secs"], r["loadavg_before"]))
        f = fails(r["probes"])
        if f:
            line += " Failed legitimate requests: %s." % f
        lat = ", ".join("%s %s ms" % (k, v["max_ms"]) for k, v in r["probes"].items() if v["n"])
        line += " Slowest legitimate answer: %s." % lat
        if r.get("note"):
            line += " " + r["note"]
        w(line)
    w("")
    if problems:
        w("**Problems the figures show** (thresholds: RSS more than 16 MB above before, more than 4")
        w("descriptors or 2 database descriptors above before, any legitimate request refused):")
        w("")
        for p in problems:
            w("- " + p)
    else:
        w("No problem found: memory and descriptors came back and every legitimate request was served.")
    w("")
    when = rows[-1]["when"] if rows else "?"
    w("\"malloc_trim\": after the %d s figures, `gdb -p PID -batch -ex 'call (int)malloc_trim(0)'`" % (
        rows[0]["after_secs"] if rows else 10))
    w("asks glibc to hand its free pages back; what stays resident then is memory in use.")
    w("")
    w("Machine: %d cores, %s; run %s; load average before the runs %s (a shared machine: other" % (
        os.cpu_count(), cpu, when, rows[0]["loadavg_before"] if rows else "?"))
    w("jobs were running). The 100 ms samples are in `bench/out/hostile/series/`.")
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--tls-port", type=int, required=True)
    w.add_argument("--ca", required=True)
    w.add_argument("--timeout", type=float, default=60)
    t = sub.add_parser("attack")
    t.add_argument("name", choices=sorted(ATTACKS))
    t.add_argument("--pid", type=int, required=True)
    t.add_argument("--tls-port", type=int, required=True)
    t.add_argument("--ca", required=True)
    t.add_argument("--token", required=True)
    t.add_argument("--legit-token", help="the legitimate probes' token (default: --token)")
    t.add_argument("--data-dir", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--series")
    t.add_argument("--after", type=float, default=10)
    t.add_argument("--hold", type=float, default=20)
    t.add_argument("--note", default="")
    t.add_argument("--variant", default="")
    t.add_argument("--trim", action="store_true",
                   help="after the 'after' figures, call malloc_trim(0) in the collector with gdb and measure again")
    t.add_argument("--log", help="the collector's log, to count its refusals and errors")
    r = sub.add_parser("report")
    r.add_argument("results")
    a = ap.parse_args()
    {"wait": cmd_wait, "attack": cmd_attack, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
