#!/usr/bin/env bash
# The monthly report's cost: the province-sized demo (60 agencies, 120 real
# agents replaying traffic, release build), then this month's report asked
# ROUNDS times per format (JSON, CSV, PDF) for the province and for one
# agency over HTTP with an admin session; median and maximum wall time,
# answer size, PDF pages (pdfinfo). Writes the "reports" section of
# BENCHMARKS.md (WRITE_MD=0: print it only).
#
# Knobs: ROUNDS (5), SETTLE (30 s of traffic first), SKIP_BUILD=1,
# SIMPUL_DEMO_BIN (default target/release/simpul-demo), WAIT_QUIET=0 (do not
# wait for a load average below 1.0).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SETTLE=${SETTLE:-30}
BIN=${SIMPUL_DEMO_BIN:-target/release/simpul-demo}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p simpul-demo --bin simpul-demo
command -v pdfinfo >/dev/null || { echo "reports: pdfinfo (poppler-utils, scripts/setup.sh) missing" >&2; exit 2; }

# A quiet machine first (load average below 1.0), waiting 10 minutes at most.
for _ in $(seq 1 60); do
  [ "${WAIT_QUIET:-1}" = 1 ] || break
  awk '{exit !($1 < 1.0)}' /proc/loadavg && break
  echo "waiting for a quiet machine (load average $(cut -d' ' -f1 /proc/loadavg))"
  sleep 10
done
export BENCH_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" --province --data-dir "$work/data" --listen "127.0.0.1:$port" >"$work/out.log" 2>"$work/err.log" &
demo=$!
cleanup() { kill "$demo" 2>/dev/null || true; wait "$demo" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 120); do
  grep -q '^Press Ctrl-C' "$work/out.log" 2>/dev/null && break
  kill -0 "$demo" 2>/dev/null || { tail -20 "$work/err.log"; exit 1; }
  sleep 1
done
echo "province demo up on port $port; ${SETTLE}s of traffic first"
sleep "$SETTLE"
export BENCH_LOADAVG_DURING="$(cut -d' ' -f1-3 /proc/loadavg)"

BASE="http://127.0.0.1:$port" CREDS="$work/data/credentials.txt" ROUNDS="$ROUNDS" WORK="$work" \
python3 - > "$work/section.md" <<'PY'
import http.cookiejar, json, os, statistics, subprocess, time, urllib.request

base, work, rounds = os.environ["BASE"], os.environ["WORK"], int(os.environ["ROUNDS"])
creds = {l.split()[0]: l.split()[1:] for l in open(os.environ["CREDS"]) if l.strip() and not l.startswith("#")}
user, password = creds["admin"]
jar = http.cookiejar.CookieJar()
op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
op.open(urllib.request.Request(base + "/api/v1/auth/login", json.dumps({"username": user, "password": password}).encode(),
                               {"content-type": "application/json"})).read()
month = time.strftime("%Y-%m", time.gmtime(time.time() + 7 * 3600))
rows = []
for scope in ["", "dinkes"]:
    for fmt in ["json", "csv", "pdf"]:
        q = f"month={month}&format={fmt}" + (f"&agency={scope}" if scope else "")
        times, size = [], 0
        for _ in range(rounds):
            t0 = time.monotonic()
            body = op.open(base + "/api/v1/reports/monthly?" + q).read()
            times.append(time.monotonic() - t0)
            size = len(body)
        extra = ""
        if fmt == "pdf":
            path = os.path.join(work, "r.pdf")
            open(path, "wb").write(body)
            info = subprocess.run(["pdfinfo", path], capture_output=True, text=True).stdout
            extra = next((l.split()[-1] for l in info.splitlines() if l.startswith("Pages:")), "?") + " pages"
        if fmt == "json" and not scope:
            r = json.loads(body)
            nodes, agencies = len(r["availability"]["nodes"]), len(r["agencies"])
        rows.append((scope or "province", fmt, statistics.median(times) * 1000, max(times) * 1000, size, extra))
print(f"This month's report of the province-sized demo ({agencies} agencies, {nodes} nodes, 120 agents replaying traffic), "
      f"asked {rounds} times per format over HTTP with an admin session (`bench/reports.sh`).\n")
print("| scope | format | median | max | size | |")
print("|---|---|---:|---:|---:|---|")
for scope, fmt, med, mx, size, extra in rows:
    print(f"| {scope} | {fmt} | {med:.0f} ms | {mx:.0f} ms | {size / 1024:.0f} KiB | {extra} |")
print(f"\nRun {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average before the demo "
      f"{os.environ.get('BENCH_LOADAVG', 'not recorded')}, while measuring {os.environ.get('BENCH_LOADAVG_DURING', 'not recorded')}.")
PY
cat "$work/section.md"
if [ "${WRITE_MD:-1}" = 1 ]; then
  python3 bench/lib/write_section.py reports "$work/section.md"
fi
