#!/usr/bin/env python3
"""Live-capture figures for bench/compare.sh.

  live_result.py TOOL MODE T0 T1 S0 S1 RSS HWM TCPREPLAY_LOG TOOL_ERR SF_STATS LOAD
      -> one JSON line: what tcpreplay sent, what the tool captured and dropped,
         its CPU (process ticks T0..T1 over wall S0..S1) and memory
  live_result.py --report RESULTS.jsonl PPS SECONDS
      -> the agent-live section of BENCHMARKS.md (markdown on stdout)
"""

import json
import os
import re
import sys


def one(argv):
    tool, mode, t0, t1, s0, s1, rss, hwm, trf, err, stats, load = argv
    secs = float(s1) - float(s0)
    cpu = None
    if t0 and t1 and secs > 0:
        cpu = (int(t1) - int(t0)) / os.sysconf("SC_CLK_TCK") / secs * 100
    txt = open(trf, errors="replace").read() if os.path.exists(trf) else ""
    m = re.search(r"Actual: (\d+) packets.*?in ([\d.]+) seconds", txt, re.S)
    sent = int(m.group(1)) if m else None
    send_secs = float(m.group(2)) if m else None
    r = {"tool": tool, "mode": mode, "sent": sent, "send_secs": send_secs,
         "pps": round(sent / send_secs) if sent and send_secs else None,
         "cpu_percent": round(cpu, 2) if cpu is not None else None,
         "vmrss_kb": int(rss or 0), "vmhwm_kb": int(hwm or 0), "loadavg": load,
         "captured": None, "drops": None}
    if tool.startswith("agent"):
        log = open(err, errors="replace").read() if os.path.exists(err) else ""
        t = re.search(r"capture totals.*", log)
        if t:
            num = lambda k: int(re.search(k + r"=(\d+)", t.group(0)).group(1))
            r["captured"] = num("frames")
            r["drops"] = num("kernel_drops") + num("queue_drops")
            per = re.search(r"per_thread=([\d,]+)", t.group(0))
            if per:
                r["per_thread"] = [int(n) for n in per.group(1).split(",")]
        meth = re.search(r"capturing.*method=(\S+(?: \(\d+ fanout threads\))?)", log)
        r["method"] = meth.group(1) if meth else "?"
    else:
        st = open(stats, errors="replace").read() if os.path.exists(stats) else ""

        def g(k):
            m = re.search(re.escape(k) + r": (\d+)", st)
            return int(m.group(1)) if m else None
        r["captured"] = g("Packets received by libpcap")
        if r["captured"] is not None:
            r["drops"] = (g("Packets dropped by libpcap") or 0) + (g("Packets dropped by interface") or 0)
        r["method"] = "libpcap"
    print(json.dumps(r))


def fmt(v):
    return f"{v:,}" if isinstance(v, int) else ("n/a" if v is None else str(v))


def report(path, pps, secs):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    name = {"agent": "simpul-agent run", "softflowd": "softflowd -i"}
    for r in rows:
        m = re.fullmatch(r"agent_t(\d+)", r["tool"])
        if m:
            name[r["tool"]] = f"simpul-agent run, {m.group(1)} threads with a flow table each"
    mib = lambda kb: f"{kb / 1024:.1f} MiB"
    out = ["## Live capture, agent vs softflowd (`bench/compare.sh`)", "",
           "The replay benchmark's IMIX pcap sent by tcpreplay from one network namespace over a veth to another, "
           "where the tool captures; each tool alone, same traffic. CPU = user+system time of the tool's process "
           "from the first packet sent to 1 s after the last, in % of one core; VmRSS at the end (peak in brackets).",
           "",
           "| tool | capture | tcpreplay | sent | sent pps | captured | drops | CPU % of a core | VmRSS (peak) | load average |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        rate = f"--pps {pps} for {secs} s" if r["mode"] == "rate" else "--topspeed"
        method = r.get("method", "?")
        if r.get("per_thread"):
            method += " — frames per thread " + " / ".join(fmt(n) for n in r["per_thread"])
        out.append(f"| {name.get(r['tool'], r['tool'])} | {method} | {rate} | {fmt(r['sent'])} | "
                   f"{fmt(r['pps'])} | {fmt(r['captured'])} | {fmt(r['drops'])} | {fmt(r['cpu_percent'])} | "
                   f"{mib(r['vmrss_kb'])} ({mib(r['vmhwm_kb'])}) | {r['loadavg']} |")
    by = {(r["tool"], r["mode"]): r for r in rows}
    ag, sf = by.get(("agent", "rate")), by.get(("softflowd", "rate"))
    if ag and sf and ag["cpu_percent"] is not None and sf["cpu_percent"] is not None:
        ok = ag["cpu_percent"] <= 5 and ag["cpu_percent"] < sf["cpu_percent"]
        out += ["", f"Target at {int(pps) // 1000} kpps: agent ≤ 5 % of a core and below softflowd — "
                    f"**{'met' if ok else 'NOT met'}** ({ag['cpu_percent']} % vs {sf['cpu_percent']} %)."]
    for t in ["agent", "softflowd"] + sorted({r["tool"] for r in rows if r["tool"].startswith("agent_t")}):
        r = by.get((t, "topspeed"))
        if r:
            out += ["", f"At the highest rate tcpreplay reaches on this VM ({fmt(r['pps'])} packets/s while both "
                        f"tcpreplay and the tool share its 2 cores): {name[t]} dropped {fmt(r['drops'])} of "
                        f"{fmt(r['sent'])} (captured {fmt(r['captured'])})."]
    out += ["", "Drops are the kernel's (PACKET_STATISTICS tp_drops of the agent's ring, libpcap's and the "
                "interface's for softflowd) plus the agent's own hand-off drops (none when the processing thread keeps up)."]
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--report":
        report(*sys.argv[2:5])
    else:
        one(sys.argv[1:])
