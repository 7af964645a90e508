#!/usr/bin/env bash
# The agent's resident memory against its capture ring's size: `simpul-agent
# run` capturing on a veth in a throwaway namespace pair, once per ring
# geometry ([capture] ring_blocks × ring_block_kib), idle (silent link, after
# IDLE_SECONDS) and under tcpreplay (LIVE_PPS for LIVE_SECONDS, then
# --topspeed, the whole IMIX pcap of bench/compare.sh), with the kernel's and
# the agent's drops from its "capture totals" line at stop. The ring is
# mapped whole at start, so its size is resident from the first second;
# the question is how small it may be without drops at the highest rate
# this VM can send. Writes the "agent-ring-rss" section of BENCHMARKS.md
# with WRITE_MD=1 (only on a quiet machine: figures under load are not kept).
#
#   RINGS ["256 128 64 32"]  ring_blocks values, each with BLOCK_KIB [128]
#   IDLE_SECONDS [3] LIVE_PPS [35000] LIVE_SECONDS [10]
#   AGENT_BIN [target/release/simpul-agent] (SKIP_BUILD=1: not rebuilt)
#   PCAP [bench/out/imix.pcap] (made by bench/compare.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RINGS=${RINGS:-"256 128 64 32"}
BLOCK_KIB=${BLOCK_KIB:-128}
IDLE_SECONDS=${IDLE_SECONDS:-3}
LIVE_PPS=${LIVE_PPS:-35000}
LIVE_SECONDS=${LIVE_SECONDS:-10}
AGENT_BIN=${AGENT_BIN:-$ROOT/target/release/simpul-agent}
PCAP=${PCAP:-$ROOT/bench/out/imix.pcap}
WRITE_MD=${WRITE_MD:-0}
OUT=$ROOT/bench/out/ring-rss
mkdir -p "$OUT"

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }
command -v tcpreplay >/dev/null || { echo "tcpreplay missing (scripts/setup.sh)" >&2; exit 1; }
[ -f "$PCAP" ] || { echo "$PCAP missing: run bench/compare.sh once (it makes the pcap)" >&2; exit 1; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release -q -p simpul-agent
fi

if [ "$WRITE_MD" = 1 ]; then
    # Figures for BENCHMARKS.md only from a quiet machine (load average
    # below 1.0), waiting 10 minutes at most.
    for _ in $(seq 1 60); do
        awk '{exit !($1 < 1.0)}' /proc/loadavg && break
        echo "waiting for a quiet machine (load average $(cut -d' ' -f1 /proc/loadavg))"
        sleep 10
    done
fi
echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"

WORK=$(mktemp -d)
source bench/lib/netns.sh
NS_A=simpul-ringrss-a-$$
NS_B=simpul-ringrss-b-$$
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# one BLOCKS -> a JSON line in $RESULTS
one() {
    local blocks=$1 tag=ring-$1x$BLOCK_KIB ifa=veth-rr0 ifb=veth-rr1
    newns "$NS_A"; newns "$NS_B"
    ip link add "$ifa" netns "$NS_A" type veth peer name "$ifb" netns "$NS_B"
    ip -n "$NS_A" link set "$ifa" up; ip -n "$NS_B" link set "$ifb" up
    printf '[agent]\nid = "bench"\nstate_dir = "%s"\n\n[capture]\ninterfaces = ["%s"]\nmethod = "ring"\nring_blocks = %s\nring_block_kib = %s\n\n[output]\nflows_jsonl = "%s"\n' \
        "$WORK/$tag-state" "$ifb" "$blocks" "$BLOCK_KIB" "$WORK/$tag.jsonl" >"$WORK/$tag.toml"
    # `ip netns exec` execs the agent, so $! is the agent's own PID.
    ip netns exec "$NS_B" "$AGENT_BIN" run --config "$WORK/$tag.toml" >"$OUT/$tag.out" 2>"$OUT/$tag.err" &
    local pid=$!
    PIDS+=("$pid")
    sleep "$IDLE_SECONDS"
    kill -0 "$pid" || { echo "$tag: the agent exited (see $OUT/$tag.err)" >&2; return 1; }
    local idle idle_load rate_rss topspeed_rss hwm load sent
    idle=$(status_kib "$pid" VmRSS)
    idle_load=$(cut -d' ' -f1-3 /proc/loadavg)
    ip netns exec "$NS_A" tcpreplay -q -i "$ifa" --pps="$LIVE_PPS" --limit=$((LIVE_PPS * LIVE_SECONDS)) "$PCAP" \
        >"$OUT/$tag.rate.tcpreplay" 2>&1
    sleep 1
    rate_rss=$(status_kib "$pid" VmRSS)
    ip netns exec "$NS_A" tcpreplay -q -i "$ifa" --topspeed "$PCAP" >"$OUT/$tag.topspeed.tcpreplay" 2>&1
    sleep 1
    topspeed_rss=$(status_kib "$pid" VmRSS)
    hwm=$(status_kib "$pid" VmHWM)
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid" 2>/dev/null || true
    ip netns del "$NS_A"; ip netns del "$NS_B"
    python3 - "$blocks" "$BLOCK_KIB" "$idle" "$rate_rss" "$topspeed_rss" "$hwm" "$idle_load" "$load" \
        "$OUT/$tag.err" "$OUT/$tag.rate.tcpreplay" "$OUT/$tag.topspeed.tcpreplay" >>"$RESULTS" <<'PY'
import json, re, sys
blocks, kib, idle, rate, top, hwm = (int(x) for x in sys.argv[1:7])
idle_load, load, err, rate_log, top_log = sys.argv[7:12]
text = open(err, errors="replace").read()
tot = re.findall(r"capture totals .*?frames=(\d+) kernel_packets=(\d+) kernel_drops=(\d+) queue_drops=(\d+)", text)
frames, kpackets, kdrops, qdrops = (int(x) for x in tot[-1]) if tot else (None,) * 4
def sent(path):
    t = open(path, errors="replace").read()
    m = re.search(r"Actual: (\d+) packets .*?\(([\d.]+) pps\)", t, re.S) or re.search(r"Actual: (\d+) packets", t)
    pps = re.search(r"Rated: .*?([\d.]+) pps", t, re.S)
    return (int(m.group(1)) if m else None, float(pps.group(1)) if pps else None)
rate_sent, rate_pps = sent(rate_log)
top_sent, top_pps = sent(top_log)
print(json.dumps({"ring_blocks": blocks, "ring_block_kib": kib, "ring_mib": blocks * kib / 1024,
    "idle_rss_kib": idle, "rate_rss_kib": rate, "topspeed_rss_kib": top, "hwm_kib": hwm,
    "sent": (rate_sent or 0) + (top_sent or 0), "rate_pps": rate_pps, "topspeed_pps": top_pps,
    "frames": frames, "kernel_drops": kdrops, "queue_drops": qdrops,
    "idle_load": idle_load, "load": load}))
PY
    echo "$tag: $(tail -n 1 "$RESULTS")"
}

for b in $RINGS; do one "$b"; done

python3 - "$RESULTS" "$LIVE_PPS" "$LIVE_SECONDS" >"$OUT/section.md" <<'PY'
import json, sys, time
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
pps, secs = sys.argv[2], sys.argv[3]
mib = lambda k: f"{k / 1024:.1f} MiB" if k is not None else "n/a"
num = lambda n: f"{n:,}" if n is not None else "n/a"
print("## Agent memory against the capture ring (`bench/ring_rss.sh`)\n")
print("`simpul-agent run` capturing on a veth (ring capture, one thread, name lane off: no [enforce]),")
print(f"idle after 3 s on a silent link, then the IMIX pcap at {pps} pps for {secs} s, then --topspeed;")
print("VmRSS after each; drops from the agent's capture totals at stop (kernel: the ring was full; queue: the")
print("agent's own hand-off). The ring is mapped whole at start, so its size is resident from the first second.\n")
print("| ring (blocks × KiB) | ring MiB | idle VmRSS | VmRSS after the rate run | VmRSS after --topspeed (peak) | topspeed pps | sent | captured | kernel drops | queue drops | load average |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    print(f"| {r['ring_blocks']} × {r['ring_block_kib']} | {r['ring_mib']:.0f} | {mib(r['idle_rss_kib'])} | {mib(r['rate_rss_kib'])} | "
          f"{mib(r['topspeed_rss_kib'])} ({mib(r['hwm_kib'])}) | {num(round(r['topspeed_pps'] or 0))} | {num(r['sent'])} | {num(r['frames'])} | "
          f"{num(r['kernel_drops'])} | {num(r['queue_drops'])} | {r['load']} |")
print(f"\nRun {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
PY
cat "$OUT/section.md"
if [ "$WRITE_MD" = 1 ]; then
    python3 bench/lib/write_section.py agent-ring-rss "$OUT/section.md"
fi
