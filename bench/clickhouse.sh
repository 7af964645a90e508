#!/usr/bin/env bash
# Flow store on ClickHouse vs SQLite, side by side ("clickhouse" section):
# the same synthetic agent batches (bench-ingest's: 1000 records, ~10 %
# long flows sending an interim record first, per-second counters; 10
# batches a call) into each store, a call acknowledged only once its insert
# returned; then bytes on disk per stored flow and the latency of the
# overview, top-N, usage and flow-page queries over what was stored.
# ClickHouse is Debian's clickhouse-server, started privately on a
# temporary directory (or CLICKHOUSE_URL).
#
# NOTE="…" adds a paragraph under the side-by-side table (what the run
# could not control, say).
#
# GENERATE=N instead writes N flows inside ClickHouse (INSERT … SELECT
# FROM numbers(), rows shaped as the writer writes them, NODES agents over
# HOURS hours; see collector/src/store/clickhouse/generate.rs) and times
# the store's reader on them ("clickhouse_generated" section): the issue's
# 100 M figure is GENERATE=100000000 (~12 GB on disk while it runs, dropped
# afterwards). SQLite cannot hold 100 M here; its side-by-side figure is
# this script's default mode at RECORDS=10000000.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-1000000}
URL_ARGS=()
[ -n "${CLICKHOUSE_URL:-}" ] && URL_ARGS=(--url "$CLICKHOUSE_URL")
cargo build --release -q -p simpul-collector
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before the run: $loadavg"
if [ -n "${GENERATE:-}" ]; then
  NODES=${NODES:-500}
  HOURS=${HOURS:-48}
  free_gb=$(df -BG --output=avail "${TMPDIR:-/tmp}" | tail -1 | tr -dc 0-9)
  need_gb=$(( GENERATE / 7000000 + 3 ))
  if [ -z "${REUSE:-}" ] && [ "$free_gb" -lt "$need_gb" ]; then
    echo "need ~${need_gb} GB free under ${TMPDIR:-/tmp} for $GENERATE flows, have ${free_gb} GB" >&2
    exit 1
  fi
  start=$(date +%s)
  # KEEP=1 keeps the generated database (with CLICKHOUSE_URL, a server of
  # your own); REUSE=1 times a kept one of the same shape again.
  KEEP_ARGS=()
  [ -n "${KEEP:-}" ] && KEEP_ARGS+=(--keep)
  [ -n "${REUSE:-}" ] && KEEP_ARGS+=(--reuse)
  out=$(target/release/simpul-collector bench-clickhouse --generate "$GENERATE" \
    --nodes "$NODES" --hours "$HOURS" "${URL_ARGS[@]}" "${KEEP_ARGS[@]}")
  echo "$out"
  tmp=$(mktemp)
  python3 - "$out" "$loadavg" "$(nproc)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(uname -r)" \
    "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(( $(date +%s) - start ))" "${REUSE:-}" > "$tmp" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
load, cores, cpu, kernel, when, wall, reuse = sys.argv[2:9]
reused = (" (in an earlier run, while other work ran; kept with KEEP=1 and timed"
          " again here with REUSE=1)") if reuse else ""
def ms(v): return f"{v:.1f}" if v >= 1 else f"{v:.3f}"
print(f"""## Flow store: ClickHouse at {d['flows']/1e6:.0f} M generated flows (`GENERATE={d['flows']} bench/clickhouse.sh`)

{d['flows']:,} flow records generated inside ClickHouse {d['clickhouse_version']}
(`INSERT … SELECT … FROM numbers()`, every column as the writer writes it,
the top-N views firing on the inserts; `bench-ingest`'s distributions:
{d['nodes']} agents of one agency each taking turns in batches of 1000,
{d['hours']} hours, 4 units, hosts skewed over 250 a unit, 3000 sites skewed,
20 000 peers skewed). Per-second counters for the last hour (feeding the
1 min / 1 h views); the earlier minutes and hours written pre-summed.
Generated and merged (`OPTIMIZE … PARTITION … FINAL`) in {d['generate_secs']:.0f} s{reused};
the whole run took {wall} s. Queries through the store's reader (the API's
code path), median of 3; the newest-flows pages are over the whole range.

| | ClickHouse |
|---|---:|
| bytes on disk per flow, all tables | {d['bytes_per_flow']:.0f} |
| bytes on disk per flow, flow records | {d['flow_table_bytes_per_flow']:.0f} |
| overview (wall: last 15 min), ms | {ms(d['overview_ms'])} |
| top 10 hosts, whole range, ms | {ms(d['top_hosts_ms'])} |
| top 10 sites, whole range, ms | {ms(d['top_sites_ms'])} |
| top 10 hosts, last hour, ms | {ms(d['top_hosts_last_hour_ms'])} |
| one agency's minutes, last 24 h, ms | {ms(d['usage_minutes_ms'])} |
| newest 100 flows, ms | {ms(d['newest_flows_ms'])} |
| newest 100 flows of one agency, ms | {ms(d['newest_flows_one_agency_ms'])} |
| biggest 100 flows of the last hour, ms | {ms(d['biggest_flows_last_hour_ms'])} |

SQLite is not run at this size (the file would not fit this machine's
disk beside the rest); the side-by-side figures above are at the size
stated there. Machine: {cores} cores, {cpu}, kernel {kernel}; run {when};
load average before the run {load} (the ClickHouse server runs on the same
cores).""")
PY
  python3 bench/lib/write_section.py clickhouse_generated "$tmp"
  rm -f "$tmp"
  exit 0
fi
out=$(target/release/simpul-collector bench-clickhouse --records "$RECORDS" "${URL_ARGS[@]}")
echo "$out"
tmp=$(mktemp)
python3 - "$out" "$RECORDS" "$loadavg" "$(nproc)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(uname -r)" \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" "${NOTE:-}" > "$tmp" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
records, load, cores, cpu, kernel, when, note = sys.argv[2:9]
note = f"\n\n{note}" if note else ""
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
(the ClickHouse server runs on the same cores as the benchmark).{note}""")
PY
python3 bench/lib/write_section.py clickhouse "$tmp"
rm -f "$tmp"
