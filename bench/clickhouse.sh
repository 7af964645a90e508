#!/usr/bin/env bash
# Flow store on ClickHouse vs SQLite, side by side ("clickhouse" section):
# the same synthetic agent batches (bench-ingest's: 1000 records, ~10 %
# long flows sending an interim record first, per-second counters; 10
# batches a call) into each store, a call acknowledged only once its insert
# returned; then bytes on disk per stored flow and the latency of the
# overview, top-N, usage and flow-page queries over what was stored.
# ClickHouse is Debian's clickhouse-server, started privately on a
# temporary directory (or CLICKHOUSE_URL). RECORDS=100000000 gives the
# issue's 100 M figure (~25 min of ingest per store on this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-1000000}
URL_ARGS=()
[ -n "${CLICKHOUSE_URL:-}" ] && URL_ARGS=(--url "$CLICKHOUSE_URL")
cargo build --release -q -p simpul-collector
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before the run: $loadavg"
out=$(target/release/simpul-collector bench-clickhouse --records "$RECORDS" "${URL_ARGS[@]}")
echo "$out"
tmp=$(mktemp)
python3 - "$out" "$RECORDS" "$loadavg" "$(nproc)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(uname -r)" \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" > "$tmp" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
records, load, cores, cpu, kernel, when = sys.argv[2:8]
version = d["clickhouse_version"]
s, c = d["sqlite"], d["clickhouse"]
def k(v): return f"{v/1000:.0f} k"
def ms(v): return f"{v:.1f}" if v >= 1 else f"{v:.3f}"
print(f"""## Flow store: ClickHouse vs SQLite (`bench/clickhouse.sh`)

{int(records):,} flow records ({d['flows']:,} flows) of `bench-ingest`'s synthetic
traffic (40 nodes, batches of 1000 with per-second counters and ~10 % long
flows updated by a final record), 10 batches a call, into each store; a call
returns (and the server would acknowledge) only after the store's insert:
SQLite's commit with `synchronous=FULL`, ClickHouse's HTTP inserts of the
data and then of the high-water marks (ClickHouse {version}, a private
server on this machine; 18.16 writes parts without fsync). Bytes on disk:
SQLite's database file after the WAL is checkpointed; ClickHouse's active
parts after `OPTIMIZE … FINAL` (raw records, blocked attempts, counters, the
1 min / 1 h / top-N rollups and the marks). Queries: median of 3 over the
whole range just ingested.

| | SQLite | ClickHouse |
|---|---:|---:|
| ingest, records/s | {k(s['records_per_sec'])} | {k(c['records_per_sec'])} |
| slowest call, ms | {s['slowest_call_ms']:.0f} | {c['slowest_call_ms']:.0f} |
| bytes on disk per flow | {s['bytes_per_flow']:.0f} | {c['bytes_per_flow']:.0f} |
| overview (wall), ms | {ms(s['overview_ms'])} | {ms(c['overview_ms'])} |
| top 10 hosts, ms | {ms(s['top_hosts_ms'])} | {ms(c['top_hosts_ms'])} |
| top 10 sites, ms | {ms(s['top_sites_ms'])} | {ms(c['top_sites_ms'])} |
| one agency's minutes, ms | {ms(s['usage_ms'])} | {ms(c['usage_ms'])} |
| newest 100 flows, ms | {ms(s['flow_page_ms'])} | {ms(c['flow_page_ms'])} |

Machine: {cores} cores, {cpu}, kernel {kernel}; run {when}; load average before the run {load}
(the ClickHouse server runs on the same cores as the benchmark).""")
PY
python3 bench/lib/write_section.py clickhouse "$tmp"
rm -f "$tmp"
