#!/usr/bin/env python3
"""NetFlow/IPFIX in: Simpul's collector vs nfcapd on the same export.

softflowd reads one generated capture (bench/gen_imix.py, dated now) and
exports it as NetFlow v5, v9 and IPFIX; the datagrams are kept in memory and
replayed, paced, over UDP to (a) a real `simpul-collector serve` with
`[netflow] listen` (decode, attribution, SQLite ingest) and (b) nfcapd
(decode, nfcapd files). Figure: records per second of CPU time (user +
system) of the receiving process: records/s per core. Simpul's CPU is read
from /proc around the replay (idle CPU measured before and subtracted);
nfcapd's from its threads' schedstat around the replay. Records: nfdump -I's flows, and Simpul's simpul_netflow_records_total
and simpul_ingest_records_total.

Usage: netflow_bench.py --collector BIN --out SECTION.md [--packets N]
       [--flows N] [--runs N] [--rate DATAGRAMS_PER_S]
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICK = os.sysconf("SC_CLK_TCK")


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def task_cpu_secs(pid):
    """CPU time of the live threads of `pid` in nanoseconds' resolution
    (/proc/PID/stat counts 10 ms ticks: too coarse for nfcapd)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def make_pcap(work, packets, flows):
    raw = os.path.join(work, "imix-raw.pcap")
    subprocess.run([sys.executable, os.path.join(REPO, "bench/gen_imix.py"), "--out", raw,
                    "--packets", str(packets), "--flows", str(flows), "--duration", "60", "--quiet"],
                   check=True)
    shift = int(time.time()) - 1_700_000_000 - 120
    pcap = os.path.join(work, "imix.pcap")
    subprocess.run(["editcap", "-F", "pcap", "-t", str(shift), raw, pcap], check=True,
                   stdout=subprocess.DEVNULL)
    return pcap


def capture_export(work, pcap, version):
    """softflowd's datagrams for the capture (what every receiver gets)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    port = sock.getsockname()[1]
    out = []

    def recv():
        while True:
            try:
                out.append(sock.recv(65535))
            except socket.timeout:
                return

    t = threading.Thread(target=recv)
    t.start()
    subprocess.run(["softflowd", "-d", "-a", "-c", "none", "-p", os.path.join(work, "sf.pid"),
                    "-v", version, "-n", f"127.0.0.1:{port}", "-r", pcap],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t.join()
    sock.close()
    return out


def replay(datagrams, port, rate):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic()
    for i, d in enumerate(datagrams):
        s.sendto(d, ("127.0.0.1", port))
        ahead = i / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    s.close()
    return time.monotonic() - start


def metric(port, name, node=None):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    want = f'{name}{{node="{node}"}}' if node else name
    for line in text.splitlines():
        if line.startswith(want + " "):
            return int(float(line.split()[-1]))
    return 0


def run_simpul(bin_, work, datagrams, rate):
    d = tempfile.mkdtemp(dir=work, prefix="simpul-")
    http, tls, mport, nport = free_port(), free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    with open(os.path.join(d, "inventory.toml"), "w") as f:
        f.write('[[agencies]]\ncode = "bench"\n[[agencies.units]]\ncode = "klien"\n'
                'subnets = ["10.10.0.0/16", "fd00:10:10::/48"]\n'
                '[[nodes]]\nid = "bench-nf"\nagency = "bench"\n')
    with open(os.path.join(d, "collector.toml"), "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:{http}"\nlisten_tls = "127.0.0.1:{tls}"\n'
                f'metrics_listen = "127.0.0.1:{mport}"\n[storage]\ndata_dir = "{d}/data"\n'
                f'[inventory]\nfile = "inventory.toml"\n'
                f'[netflow]\nlisten = "127.0.0.1:{nport}"\nreceive_buffer_bytes = 33554432\n'
                f'[[netflow.exporter]]\naddress = "127.0.0.1"\nagency = "bench"\nnode_id = "bench-nf"\n')
    log = open(os.path.join(d, "collector.log"), "w")
    p = subprocess.Popen([bin_, "serve", "--config", os.path.join(d, "collector.toml")],
                         stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(300):
            try:
                metric(mport, "simpul_ingest_records_total")
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(2)
        c0, t0 = cpu_secs(p.pid), time.monotonic()
        time.sleep(2)
        idle = (cpu_secs(p.pid) - c0) / (time.monotonic() - t0)
        c0, t0 = cpu_secs(p.pid), time.monotonic()
        ingested0 = metric(mport, "simpul_ingest_records_total")
        replay(datagrams, nport, rate)
        last, still = -1, 0
        while still < 3:
            time.sleep(0.5)
            n = metric(mport, "simpul_ingest_records_total")
            still = still + 1 if n == last else 0
            last = n
        busy = time.monotonic() - t0 - 1.5
        cpu = cpu_secs(p.pid) - c0 - idle * busy
        decoded = metric(mport, "simpul_netflow_records_total", "bench-nf")
        stored = last - ingested0
        return {"records": decoded, "stored": stored, "cpu": cpu, "wall": busy,
                "lost": metric(mport, "simpul_netflow_sequence_lost_total", "bench-nf")}
    finally:
        p.terminate()
        p.wait(timeout=30)
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def run_nfcapd(work, datagrams, rate):
    d = tempfile.mkdtemp(dir=work, prefix="nfcapd-")
    port = free_port(socket.SOCK_DGRAM)
    p = subprocess.Popen(["nfcapd", "-w", d, "-p", str(port), "-b", "127.0.0.1", "-B", "33554432"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        c0, t0 = task_cpu_secs(p.pid), time.monotonic()
        replay(datagrams, port, rate)
        time.sleep(1)
        wall = time.monotonic() - t0
        # Its records are in memory until it writes the file at exit: the
        # exit's write is not in the figure (nfcapd's favour, a few ms).
        cpu = task_cpu_secs(p.pid) - c0
        p.terminate()
        p.wait(timeout=30)
        out = subprocess.run(["nfdump", "-R", d, "-I"], capture_output=True, text=True).stdout
        flows = int(re.search(r"^Flows:\s*(\d+)", out, re.M).group(1))
        return {"records": flows, "cpu": cpu, "wall": wall}
    finally:
        if p.poll() is None:
            p.kill()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collector", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--flows", type=int, default=250_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=float, default=5000, help="datagrams per second replayed")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="simpul-netflow-bench-")
    try:
        pcap = make_pcap(work, a.packets, a.flows)
        rows = []
        for version, name in (("5", "NetFlow v5"), ("9", "NetFlow v9"), ("10", "IPFIX")):
            dgs = capture_export(work, pcap, version)
            sim = [run_simpul(a.collector, work, dgs, a.rate) for _ in range(a.runs)]
            nfc = [run_nfcapd(work, dgs, a.rate) for _ in range(a.runs)]
            rows.append((name, len(dgs), sim, nfc))
            print(f"{name}: {len(dgs)} datagrams; simpul {sim}; nfcapd {nfc}", file=sys.stderr)
        load = open("/proc/loadavg").read().split()[:3]
        with open(a.out, "w") as f:
            f.write("## NetFlow/IPFIX in (`bench/netflow.sh`)\n\n")
            f.write(f"softflowd 1.1.0 exports a generated capture ({a.packets:,} packets, "
                    f"{a.flows:,} flows, `bench/gen_imix.py` dated now, `softflowd -a -r`); "
                    f"its datagrams are replayed at {a.rate:,.0f}/s over loopback UDP to a real "
                    "`simpul-collector serve` (`[netflow] listen`: decode, attribution, SQLite "
                    "ingest, each record a stored flow) and to nfcapd (decode, its files). "
                    "Records per second of the receiver's CPU time around the replay (Simpul: "
                    "/proc utime + stime, its idle CPU subtracted; nfcapd: its threads' "
                    "schedstat, its file written at exit not included): records/s per core. Median of "
                    f"{a.runs} runs; load average {' '.join(load)} at the end.\n\n")
            f.write("| export | datagrams | records | Simpul records/s per core | nfcapd records/s per core | Simpul stored / decoded | nfcapd records |\n")
            f.write("|---|---:|---:|---:|---:|---:|---:|\n")
            for name, n, sim, nfc in rows:
                sr = statistics.median(r["records"] / r["cpu"] for r in sim if r["cpu"] > 0)
                nr = statistics.median(r["records"] / r["cpu"] for r in nfc if r["cpu"] > 0)
                f.write(f"| {name} | {n:,} | {sim[0]['records']:,} | {sr:,.0f} | {nr:,.0f} | "
                        f"{sim[0]['stored']:,} / {sim[0]['records']:,} | {nfc[0]['records']:,} |\n")
            f.write("\nSimpul's figure includes what nfcapd does not do: attribution to agency and "
                    "unit, the usage rollups and top-N aggregates, and a durable SQLite commit "
                    "every 20 ms; nfcapd appends binary records to a file.\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
