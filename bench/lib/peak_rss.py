#!/usr/bin/env python3
"""Run a command and sample the memory of its whole process tree.

Usage: peak_rss.py [--interval 0.01] [--timeout 300] [--json OUT] -- CMD [ARGS...]

Every --interval seconds it sums RssAnon / RssFile / RssShmem (from
/proc/PID/status) over the command and all its descendants and keeps the peak
of each sum.  Unlike `/usr/bin/time -v` "Maximum resident set size", this
separates anonymous memory (heap, flow tables) from file-backed pages (e.g. an
mmap'ed pcap, which shows up in RSS but is page cache).  Sampling can miss
short spikes; use it for untimed runs only.  Prints one JSON object.
The command's stdout/stderr are discarded.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    out.extend(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return out


def tree(pid):
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(children(p))
    return seen


def status(pid):
    r = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                    k, v = line.split(":", 1)
                    r[k] = int(v.split()[0])
    except OSError:
        pass
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--json")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("missing command")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = {"RssAnon": 0, "RssFile": 0, "RssShmem": 0, "total": 0}
    samples = 0
    deadline = time.monotonic() + a.timeout
    rc = None
    while True:
        rc = p.poll()
        if rc is not None:
            break
        if time.monotonic() > deadline:
            p.kill()
            rc = p.wait()
            break
        tot = {"RssAnon": 0, "RssFile": 0, "RssShmem": 0}
        for pid in tree(p.pid):
            for k, v in status(pid).items():
                tot[k] += v
        for k, v in tot.items():
            peak[k] = max(peak[k], v)
        peak["total"] = max(peak["total"], sum(tot.values()))
        samples += 1
        time.sleep(a.interval)
    res = {"rc": rc, "samples": samples, "peak_anon_kb": peak["RssAnon"], "peak_file_kb": peak["RssFile"],
           "peak_shmem_kb": peak["RssShmem"], "peak_total_kb": peak["total"]}
    s = json.dumps(res)
    if a.json:
        with open(a.json, "w") as f:
            f.write(s + "\n")
    print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
