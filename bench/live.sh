#!/usr/bin/env bash
# The live feed's cost per open wall: the province-sized demo (60 agencies,
# 120 real agents replaying traffic, release build), CLIENTS live-feed
# clients that count the bytes on their sockets (after permessage-deflate)
# and rebuild the overview from the snapshot and the patches
# (demo/examples/live_bytes.rs), then a few clients asking for each message
# compressed on its own (what compressed binary frames inflated with the
# browser's DecompressionStream would cost) and a few offering no deflate,
# for comparison. Writes the "live" section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-10}
SECS=${SECS:-60}
SETTLE=${SETTLE:-40}
cargo build --release -q -p simpul-demo --bin simpul-demo --example live_bytes

# A quiet machine first (load average below 1.0), waiting 10 minutes at most.
for _ in $(seq 1 60); do
  awk '{exit !($1 < 1.0)}' /proc/loadavg && break
  echo "waiting for a quiet machine (load average $(cut -d' ' -f1 /proc/loadavg))"
  sleep 10
done
export BENCH_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "load average before the demo: $BENCH_LOADAVG"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/simpul-demo --province --data-dir "$work/data" --listen "127.0.0.1:$port" \
  >"$work/out.log" 2>"$work/err.log" &
demo=$!
cleanup() { kill "$demo" 2>/dev/null || true; wait "$demo" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 120); do
  grep -q '^Press Ctrl-C' "$work/out.log" 2>/dev/null && break
  kill -0 "$demo" 2>/dev/null || { tail -20 "$work/err.log"; exit 1; }
  sleep 1
done
token=$(awk '$1 == "kiosk-token" {print $2}' "$work/data/credentials.txt")
echo "province demo up on port $port; settling ${SETTLE}s"
sleep "$SETTLE"

ticks() { awk '{print $14 + $15}' "/proc/$demo/stat"; }
t0=$(ticks); s0=$(date +%s.%N)
deflated=$(target/release/examples/live_bytes "127.0.0.1:$port" "$token" "$CLIENTS" "$SECS" | tail -1)
t1=$(ticks); s1=$(date +%s.%N)
export BENCH_LOADAVG_DURING="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "deflate: $deflated"
permsg=$(target/release/examples/live_bytes "127.0.0.1:$port" "$token" 2 30 --per-message | tail -1)
echo "per message: $permsg"
plain=$(target/release/examples/live_bytes "127.0.0.1:$port" "$token" 2 30 --plain | tail -1)
echo "plain: $plain"
rss=$(awk '/VmRSS/ {print $2}' "/proc/$demo/status")
cpu=$(python3 -c "import os,sys; print(round((int(sys.argv[2])-int(sys.argv[1]))/os.sysconf('SC_CLK_TCK')/(float(sys.argv[4])-float(sys.argv[3]))*100))" "$t0" "$t1" "$s0" "$s1")
echo "demo CPU while measured: $cpu % of one core, RSS $rss KiB"

tmp=$(mktemp)
python3 - "$deflated" "$plain" "$cpu" "$rss" "$CLIENTS" "$SECS" "$permsg" > "$tmp" <<'PY'
import json, os, subprocess, sys, time
d = json.loads(sys.argv[1]); p = json.loads(sys.argv[2]); m = json.loads(sys.argv[7])
cpu, rss, clients, secs = sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
ok = lambda c: "met" if c else "NOT met"
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"""## Live feed (`bench/live.sh`)

The dashboard's live feed (`/api/v1/live`) at province size: the demo with
`--province` ({d['agencies']} agencies, {d['nodes']} nodes of which 120 real agents replay
recorded traffic; release build), {clients} clients for {secs} s after a 5 s warm-up.
Each client counts the bytes it reads from its socket — after
permessage-deflate, as a browser receives them — and rebuilds the overview
from the snapshot and the patches as `dashboard/live.js` does, checking
that no patch is missed (`demo/examples/live_bytes.rs`).

| | permessage-deflate, window kept (browsers) | each message on its own | no compression |
|---|---:|---:|---:|
| first message (handshake answer + snapshot with 15 min of history), bytes | {d['first_message_bytes']:.0f} | {m['first_message_bytes']:.0f} | {p['first_message_bytes']:.0f} |
| steady state per tab, bytes/s | **{d['steady_bytes_per_sec']}** (max of {clients}: {d['steady_bytes_per_sec_max']}) | {m['steady_bytes_per_sec']} | {p['steady_bytes_per_sec']} |
| the same messages inflated, bytes/s | {d['inflated_bytes_per_sec']} | {m['inflated_bytes_per_sec']} | {p['inflated_bytes_per_sec']} |
| patches per second | {d['deltas_per_sec']} | {m['deltas_per_sec']} | {p['deltas_per_sec']} |

"Each message on its own" is what compressed binary frames inflated with
the browser's `DecompressionStream` would cost (no window shared between
messages): permessage-deflate with its window kept is smaller and needs no
code in the page. tungstenite 0.29 (under axum 0.8) has no
permessage-deflate, so the feed negotiates it and compresses itself
(`collector/src/live/deflate.rs`); at most 256 pages get a compressor
(its window and tables, ~300 KB each), the rest plain frames.

Target ≤ 1 KB/s per tab at 100 nodes in steady state: {ok(d['steady_bytes_per_sec'] <= 1000 and d['nodes'] >= 100)}
({d['nodes']} nodes). Before (issue 11): every second the whole overview —
now {d['full_overview_bytes']} bytes of JSON at this size — uncompressed: 97 KB/s per tab
at 120 nodes, 140 KB and more as the first message.

How: a snapshot once, then per second only what changed (`collector/src/live/delta.rs`):
agency rates as one flat array, rounded to 3 significant digits while they
move and exact once they keep still; a node's last seen at most every 10 s
and its health counters every 60 s (status, liveness, policy and drops at
once); top lists every 5 s. One patch per scope is made once a second and
shared by every page of it; each page's permessage-deflate keeps its
window between messages (context takeover).

Demo CPU while measured: {cpu} % of one core (collector, 120 agents, the
clients' feeds), RSS {rss // 1024} MiB.

Machine: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, {model}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average before the demo
{os.environ.get('BENCH_LOADAVG', 'not recorded')}, while measuring {os.environ.get('BENCH_LOADAVG_DURING', 'not recorded')} (the demo's 120 agents
each spool every batch with fsync: the load counts them).
""")
PY
python3 bench/lib/write_section.py live "$tmp"
rm -f "$tmp"
