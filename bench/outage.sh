#!/usr/bin/env bash
# Node outage benchmarks: detection and delivery latency over many cuts
# (real collector, real agent links black-holed at random moments, a
# webhook receiver; HDR histograms), and heartbeats per second one collector
# core handles. Writes the "outage" section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-100}
RUNS=${RUNS:-3}
cargo build --release -q -p simpul-demo --example outage_latency
cargo build --release -q -p simpul-collector
export BENCH_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "load average before the runs: $BENCH_LOADAVG"
lat=$(target/release/examples/outage_latency "$NODES" 2>/dev/null | tail -1)
echo "latency: $lat"
rates=()
for i in $(seq 1 "$RUNS"); do
  out=$(taskset -c 0 target/release/simpul-collector bench-heartbeats --nodes 50000 --secs 5 2>/dev/null)
  r=$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["heartbeats_per_sec"]))' "$out")
  echo "run $i: $r heartbeats/s"
  rates+=("$r")
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
tmp=$(mktemp)
python3 - "$lat" "$median" "${rates[*]}" "$NODES" > "$tmp" <<'PY'
import json, os, subprocess, sys, time
lat = json.loads(sys.argv[1]); median = int(sys.argv[2]); runs = sys.argv[3]; nodes = sys.argv[4]
d, v, s = lat["detect_ms"], lat["deliver_ms"], lat["silence_ms"]
agents = median * 2
ok = lambda c: "met" if c else "NOT met"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"""## Node outages (`bench/outage.sh`)

**Detection and delivery latency** — {lat['cuts']} cuts: a real collector
(default settings: heartbeat every {lat['heartbeat_interval_ms'] // 1000} s, DOWN after {lat['down_after_secs']} s of silence), {nodes}
real agent links (`link::Uplink`, TLS WebSocket) each black-holed once at a
random moment by a TCP relay (the connection stays open and goes silent), a
webhook channel to a local receiver. Milliseconds from the cut
(`demo/examples/outage_latency.rs`, HDR histograms):

| | p50 | p90 | p99 | max | target |
|---|---:|---:|---:|---:|---|
| cut → incident detected | {d['p50']} | {d['p90']} | {d['p99']} | {d['max']} | |
| cut → webhook received | {v['p50']} | {v['p90']} | {v['p99']} | {v['max']} | ≤ 10 000 ms p99: {ok(v['p99'] <= 10000)} |
| last heartbeat → incident detected | {s['p50']} | | {s['p99']} | {s['max']} | ≤ {lat['down_after_secs'] * 1000} ms + 5: {ok(s['max'] <= lat['down_after_secs'] * 1000 + 5)} |

Alerts missing: {lat['alerts_missing']}. The silence is counted from the last heartbeat's arrival, and
the outage monitor sleeps until the earliest node's deadline (no periodic
tick), so detection lands between {lat['down_after_secs']} s minus one heartbeat interval and {lat['down_after_secs']} s after the cut;
delivery adds the notifier's queue and one HTTP request. A closed connection
(agent killed, host rebooted) is detected after two heartbeat intervals instead.

**Heartbeats one collector core handles** — 50 000 nodes, heartbeats through
decode, the node registry and the outage monitor (queue + detector), both
threads pinned to one core (`taskset -c 0`, `simpul-collector bench-heartbeats`):

| runs (heartbeats/s) | median | agents at 1 per 2 s | target ≥ 50 000 agents |
|---|---:|---:|---|
| {runs} | {median} | {agents} | {ok(agents >= 50000)} |

Not included: TLS and WebSocket framing per heartbeat (a 59-byte frame).

Machine: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, {cpu}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average before the runs {os.environ.get('BENCH_LOADAVG', 'not recorded')}.
""")
PY
python3 bench/lib/write_section.py outage "$tmp"
rm -f "$tmp"
