#!/usr/bin/env python3
"""Render the agent-replay benchmark results (bench/compare.sh) as markdown.

Inputs: the generator sidecar (--meta), the per-run results JSONL written by
compare.sh (--results), the idle-RSS JSON (--idle).  Writes the section body to
--md and a human summary to stderr.  Exit status 1 if a byte-total check failed
(the agent's bytes_up+bytes_down must equal the ground truth exactly; each peer
must match the byte count its own counting rule predicts), else 0.
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys

TARGET_SPEEDUP = 10.0

COUNTS = {
    "agent": ("total_ip_bytes", "IP-layer bytes (IPv4 total length / IPv6 payload length + 40), "
              "sum of bytes_up + bytes_down over --flows-out"),
    "softflowd": ("l2_payload_bytes", "captured frame length minus the Ethernet/802.1Q header, i.e. IP bytes "
                  "**plus Ethernet padding** of short frames (NetFlow v9 -> nfcapd, `nfdump -I` Bytes)"),
    "pmacctd": ("total_ip_bytes", "IP-layer bytes (IPv4 total length / IPv6 payload length + 40), "
                "sum of BYTES over the print plugin CSV"),
}
LABEL = {
    "agent": "simpul-agent replay",
    "softflowd": "softflowd -v 9 (+nfcapd)",
    "pmacctd": "pmacctd (print plugin)",
}
COUNTS["agent_sharded"] = COUNTS["agent"]
LABEL["agent_sharded"] = "simpul-agent replay, flows on %s shards" % os.environ.get("AGENT_SHARDS", "2")
# The floor: bench/lib/pcap_floor.c walking the same file, nothing else.
FLOORS = ("floor_read_1", "floor_read_2", "floor_mmap_1", "floor_mmap_2")
for _f in FLOORS:
    _mode, _th = _f.split("_")[1:]
    COUNTS[_f] = ("total_ip_bytes", "")
    LABEL[_f] = "floor: walk only, %s, %s thread%s" % ("read()" if _mode == "read" else "mmap", _th,
                                                      "s" if _th != "1" else "")


def cmd_first_line(args, match=None):
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=10)
        for line in (p.stdout + p.stderr).splitlines():
            if match is None or match in line:
                return line.strip()
    except Exception:
        pass
    return "?"


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "mem": mem,
        "os": cmd_first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def versions():
    return {
        "softflowd": "softflowd " + (re.search(r"version ([0-9][0-9.]*[0-9])", cmd_first_line(["softflowd", "-h"], "version"))
                                     or re.search("(.*)", "?")).group(1),
        "pmacctd": cmd_first_line(["pmacctd", "-V"], "pmacctd"),
        "nfcapd": cmd_first_line(["nfcapd", "-V"]),
        "nfdump": cmd_first_line(["nfdump", "-V"]),
    }


def load_json(path):
    if not path:
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt_int(n):
    return "{:,}".format(n) if n is not None else "n/a"


def fmt_rate(x):
    if x is None:
        return "n/a"
    if x >= 1e6:
        return "%.2f M" % (x / 1e6)
    return "%.0f k" % (x / 1e3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meta", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--idle", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pmacct-queue", default="zmq")
    ap.add_argument("--agent-mem", help="peak_rss.py JSON of an untimed agent run")
    ap.add_argument("--agent-split", help="JSON with the agent's bytes_up / bytes_down sums")
    a = ap.parse_args()

    meta = json.load(open(a.meta))
    runs = [json.loads(l) for l in open(a.results) if l.strip()]
    try:
        idle = json.load(open(a.idle))
    except (OSError, ValueError):
        idle = {"status": "n/a", "reason": "not measured"}
    gt_pk = meta["total_packets"]

    tools = {}
    for t in ("agent", "agent_sharded", "softflowd", "pmacctd") + FLOORS:
        rs = [r for r in runs if r["tool"] == t]
        ok = [r for r in rs if r["rc"] == 0 and r["wall_s"] is not None]
        notes = sorted({r["note"] for r in rs if r.get("note")})
        if not ok:
            tools[t] = {"ok": False, "notes": notes or ["not run"]}
            continue
        walls = [r["wall_s"] for r in ok]
        wall = statistics.median(walls)
        byte_set = sorted({r["bytes"] for r in ok})
        pk_set = sorted({r["packets"] for r in ok})
        rec_set = sorted({r["records"] for r in ok})
        exp_key = COUNTS[t][0]
        expected = meta[exp_key]
        byt = ok[-1]["bytes"]
        tools[t] = {
            "ok": True,
            "runs": len(ok),
            "walls": walls,
            "wall": wall,
            "pps": gt_pk / wall if wall > 0 else None,
            "rss_kb": max(r["maxrss_kb"] or 0 for r in ok),
            "cpu": statistics.median([r["cpu_s"] or 0.0 for r in ok]),
            "bytes": byt,
            "packets": ok[-1]["packets"],
            "records": ok[-1]["records"],
            "consistent": len(byte_set) == 1 and len(pk_set) == 1 and len(rec_set) == 1,
            "expected_key": exp_key,
            "expected": expected,
            "match": all(r["bytes"] == expected for r in ok) and all(r["packets"] == gt_pk for r in ok),
            "notes": notes,
        }

    sf = tools["softflowd"]
    base_pps = sf["pps"] if sf.get("ok") else None
    failed = False

    md = []
    m = machine()
    v = versions()
    md.append("## Agent replay throughput (`bench/compare.sh`)")
    md.append("")
    md.append("Same pcap for every tool, read from the page cache; whole-process wall time "
              "(median of %d runs), packets/s = pcap packets / wall time; max RSS from `/usr/bin/time -v` "
              "(largest process of the tool's process tree)." % a.runs)
    md.append("")
    md.append("| tool | packets/s (whole process) | wall s (median) | CPU s (user+sys) | max RSS | byte total | vs ground truth | ratio to softflowd |")
    md.append("|---|---:|---:|---:|---:|---:|---|---:|")
    for t in ("agent", "softflowd", "pmacctd"):
        r = tools[t]
        if not r["ok"]:
            md.append("| %s | n/a | n/a | n/a | n/a | n/a | n/a: %s | n/a |" % (LABEL[t], "; ".join(r["notes"]).replace("|", "/")))
            continue
        d = r["bytes"] - meta["total_ip_bytes"]
        if r["match"]:
            verdict = "exact" if r["expected_key"] == "total_ip_bytes" else "%+d (= Ethernet padding, as expected)" % d
        else:
            verdict = "**MISMATCH** %+d vs IP bytes (expected %s)" % (d, fmt_int(r["expected"]))
            failed = True
        if not r["consistent"]:
            verdict += "; totals differ between runs"
            failed = True
        ratio = ("%.2f×" % (r["pps"] / base_pps)) if base_pps and r["pps"] else "n/a"
        md.append("| %s | %s | %.3f | %.2f | %.0f MiB | %s | %s | %s |" % (
            LABEL[t], fmt_rate(r["pps"]), r["wall"], r["cpu"], r["rss_kb"] / 1024.0,
            fmt_int(r["bytes"]), verdict, ratio))
    floors = [(t, tools[t]) for t in FLOORS if tools.get(t, {}).get("ok")]
    for t, r in ([("agent_sharded", tools["agent_sharded"])] if tools["agent_sharded"]["ok"] else []) + floors:
        ok = r["match"] and r["consistent"]
        failed |= not ok
        ratio = ("%.2f×" % (r["pps"] / base_pps)) if base_pps and r["pps"] else "n/a"
        md.append("| %s | %s | %.3f | %.2f | %.0f MiB | %s | %s | %s |" % (
            LABEL[t], fmt_rate(r["pps"]), r["wall"], r["cpu"], r["rss_kb"] / 1024.0,
            fmt_int(r["bytes"]), "exact" if ok else "**MISMATCH**", ratio))
    md.append("")

    ag = tools["agent"]
    if ag["ok"] and base_pps:
        sp = ag["pps"] / base_pps
        md.append("Target: agent ≥ %.0f× softflowd packets/s — **%s** (%.2f×)." % (
            TARGET_SPEEDUP, "met" if sp >= TARGET_SPEEDUP else "NOT met", sp))
    else:
        md.append("Target: agent ≥ %.0f× softflowd packets/s — not measured (agent n/a)." % TARGET_SPEEDUP)
    if floors and sf.get("ok"):
        budget = sf["wall"] / TARGET_SPEEDUP
        best_t, best = min(floors, key=lambda x: x[1]["wall"])
        one = [r for t, r in floors if t.endswith("_1")]
        md.append("")
        md.append(
            "**The floor.** %.0f× softflowd is a whole-process wall time of %.3f s for this %.0f MB file "
            "(%.1f GB/s). Only walking the file, reading each record header and IP length field and "
            "nothing else, takes %.3f s at best (%s)%s. %s" % (
                TARGET_SPEEDUP, budget, meta["pcap_file_bytes"] / 1e6,
                meta["pcap_file_bytes"] / budget / 1e9, best["wall"], LABEL[best_t],
                ("; one thread at best %.3f s" % min(r["wall"] for r in one)) if one else "",
                ("So the target is out of reach on this machine: the walk alone is slower than the budget."
                 if best["wall"] >= budget else
                 "That leaves %.3f s (%.0f%% of the budget) for decoding, %s flow tables and writing %s records "
                 "on %s cores: %.1f ns of CPU per packet at most, against %.0f ns the agent spends today "
                 "(%.2f CPU s / %s packets)." % (
                     budget - best["wall"], 100.0 * (budget - best["wall"]) / budget,
                     fmt_int(meta["flows"]), fmt_int(meta["flows"]), m["nproc"],
                     (budget - best["wall"]) * (m["nproc"] or 1) * 1e9 / gt_pk,
                     (ag["cpu"] * 1e9 / gt_pk) if ag.get("ok") else float("nan"),
                     ag["cpu"] if ag.get("ok") else float("nan"), fmt_int(gt_pk)))))
    if idle.get("status") == "ok":
        md.append("")
        md.append("Agent idle RSS (`simpul-agent run` capturing on a silent veth in a throwaway netns, after %gs): "
                  "**%.1f MiB** VmRSS (VmHWM %.1f MiB, %d threads)." % (
                      idle.get("seconds", 3), idle["vmrss_kb"] / 1024.0, idle.get("vmhwm_kb", 0) / 1024.0,
                      idle.get("threads", 0)))
    else:
        md.append("")
        md.append("Agent idle RSS: n/a (%s)." % idle.get("reason", "not measured"))
    md.append("")

    md.append("**What each tool counts.** Ground truth (from the generator sidecar): %s packets, "
              "%s IP-layer bytes, %s Ethernet-payload bytes (IP + padding)." % (
                  fmt_int(gt_pk), fmt_int(meta["total_ip_bytes"]), fmt_int(meta["l2_payload_bytes"])))
    md.append("")
    for t in ("agent", "softflowd", "pmacctd"):
        md.append("- %s: %s." % (LABEL[t], COUNTS[t][1]))
    md.append("")
    extra = []
    if sf.get("ok"):
        extra.append("softflowd exported %s unidirectional records for the %s generated flows (default `-m 8192` "
                     "forces early expiry; ICMP echo request/reply are separate flows)" % (
                         fmt_int(sf["records"]), fmt_int(meta["flows"])))
    pm = tools["pmacctd"]
    if pm.get("ok"):
        extra.append("pmacctd printed %s records (generator: %s flow directions with ≥1 packet); its wall time "
                     "includes a fixed 2 s sleep pmacctd takes before reading a savefile (%s packets/s without it); "
                     "queue: %s" % (
                         fmt_int(pm["records"]), fmt_int(meta.get("directional_flows")),
                         fmt_rate(gt_pk / (pm["wall"] - 2.0)) if pm["wall"] > 2.0 else "n/a",
                         "`plugin_pipe_zmq: true`" if a.pmacct_queue != "pipe" else "`plugin_pipe_size: 1024000000`"))
    if ag.get("ok"):
        e = "agent wrote %s flow records (generator: %s flows)" % (fmt_int(ag["records"]), fmt_int(meta["flows"]))
        split = load_json(a.agent_split)
        if split:
            same = split["bytes_up"] == meta["ip_bytes_up"] and split["bytes_down"] == meta["ip_bytes_down"]
            e += "; up/down split %s ground truth (agent up %s / down %s, truth up %s / down %s)" % (
                "matches" if same else "differs from", fmt_int(split["bytes_up"]), fmt_int(split["bytes_down"]),
                fmt_int(meta["ip_bytes_up"]), fmt_int(meta["ip_bytes_down"]))
        mem = load_json(a.agent_mem)
        if mem and mem.get("rc") == 0:
            e += ("; memory split (untimed run sampled by `bench/lib/peak_rss.py`; resident pages of an mmap'ed pcap "
                  "count toward max RSS as file-backed): peak %.0f MiB anonymous + %.0f MiB file-backed" % (
                      mem["peak_anon_kb"] / 1024.0, mem["peak_file_kb"] / 1024.0))
        extra.append(e)
    for e in extra:
        md.append("- " + e + ".")
    for t in ("agent", "softflowd", "pmacctd"):
        for n in tools[t].get("notes", []) if tools[t].get("ok") else []:
            md.append("- %s note: %s." % (LABEL[t], n))
    md.append("")
    share6 = 100.0 * meta["ipv6_packets"] / gt_pk
    sharev = 100.0 * meta["vlan_packets"] / gt_pk
    sc = meta.get("imix_ip_size_classes", {})
    md.append("**pcap**: `bench/gen_imix.py --seed %d` — %s packets, %s bidirectional flows (%s), %s IP bytes, "
              "%.1f s of traffic, IPv6 %.1f%% of packets, 802.1Q %.1f%% of packets, IP sizes small/576/1500 = "
              "%s/%s/%s, %.0f MB file, sha256 `%s…`." % (
                  meta["seed"], fmt_int(gt_pk), fmt_int(meta["flows"]),
                  ", ".join("%s %s" % (fmt_int(n), k) for k, n in meta["flows_by_proto"].items()),
                  fmt_int(meta["total_ip_bytes"]), meta["duration_s"], share6, sharev,
                  fmt_int(sc.get("small(40/60)")), fmt_int(sc.get("576")), fmt_int(sc.get("1500")),
                  meta["pcap_file_bytes"] / 1e6, meta["pcap_sha256"][:16]))
    md.append("")
    md.append("**machine**: %s × %s, %s RAM, kernel %s, %s; run %s; load average before the runs %s." % (
        m["nproc"], m["cpu"], m["mem"], m["kernel"], m["os"], m["date"],
        os.environ.get("BENCH_LOADAVG", "not recorded")))
    md.append("")
    md.append("**versions**: %s; %s; %s; %s." % (v["softflowd"], v["pmacctd"], v["nfcapd"], v["nfdump"]))
    md.append("")
    md.append("Per-run wall times (s): " + "; ".join(
        "%s %s" % (t, ", ".join("%.3f" % w for w in tools[t]["walls"])) for t in ("agent", "softflowd", "pmacctd")
        if tools[t].get("ok")) + ".")

    with open(a.md, "w") as f:
        f.write("\n".join(md) + "\n")

    # ------------------------------------------------------------ console
    print("", file=sys.stderr)
    print("==== replay benchmark (%s packets, %s IP bytes) ====" % (fmt_int(gt_pk), fmt_int(meta["total_ip_bytes"])),
          file=sys.stderr)
    for t in ("agent", "softflowd", "pmacctd"):
        r = tools[t]
        if not r["ok"]:
            print("  %-26s n/a  (%s)" % (LABEL[t], "; ".join(r["notes"])), file=sys.stderr)
            continue
        print("  %-26s %9s pkt/s  wall %.3fs  rss %6.0f MiB  bytes %s (%+d vs IP truth, expected %s: %s)" % (
            LABEL[t], fmt_rate(r["pps"]), r["wall"], r["rss_kb"] / 1024.0, fmt_int(r["bytes"]),
            r["bytes"] - meta["total_ip_bytes"], r["expected_key"], "OK" if r["match"] else "MISMATCH"),
            file=sys.stderr)
    if idle.get("status") == "ok":
        print("  agent idle VmRSS: %.1f MiB" % (idle["vmrss_kb"] / 1024.0), file=sys.stderr)
    else:
        print("  agent idle RSS: n/a (%s)" % idle.get("reason"), file=sys.stderr)
    print("  markdown: %s" % a.md, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
