#!/usr/bin/env bash
# Named list distribution benchmark (issue 10): a 3 M-domain list uploaded
# through the API, enabled in the province default, fetched by NODES real
# agents by its hash in 1 MiB chunks over their TLS links, verified
# (SHA-256 of the text) and held; then an allocation-only change, which
# must not send the list again (demo/examples/list_push.rs). The list is
# the "domains" benchmark's generated one (same input). Writes the "lists"
# section of BENCHMARKS.md.
#
# Knobs: NODES (50), AGENCIES (5), COUNT (3000000), SKIP_BUILD=1,
# WRITE_MD=0 (section in bench/out/lists.md only), TMPDIR (state dirs).
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-50}
AGENCIES=${AGENCIES:-5}
COUNT=${COUNT:-3000000}
WRITE_MD=${WRITE_MD:-1}
mkdir -p bench/out/domains
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p simpul-core --example domain_bench
  cargo build --release -q -p simpul-demo --example list_push
fi
list="bench/out/domains/list-$COUNT.txt"
[ -s "$list" ] || target/release/examples/domain_bench generate "$list" "$COUNT"
export BENCH_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "load average before the run: $BENCH_LOADAVG"
out=$(target/release/examples/list_push "$list" "$NODES" "$AGENCIES" | tail -1)
export BENCH_LOADAVG_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "load average after the run: $BENCH_LOADAVG_AFTER"
echo "$out" > bench/out/lists.json
echo "result: $out"
python3 - "$out" > bench/out/lists.md <<'PY'
import json, os, sys, time
r = json.loads(sys.argv[1])
e, a = r["enable"], r["allocation_change"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ok = lambda c: "met" if c else "**not met**"
held_all = e["held_ms"]["max"] if e["held"] == r["nodes"] else None
def row(name, h):
    return f"| {name} | {h['count']} | {h['p50']:,} | {h['p90']:,} | {h['p99']:,} | {h['max']:,} |"
print(f"""## Named list distribution (`bench/lists.sh`)

**A {r['domains']:,}-domain list reaches {r['nodes']} agents** — the "domains" benchmark's
generated list ({r['file_bytes'] / 1e6:.1f} MB of text) uploaded through `PUT /api/v1/lists/bench`
({r['upload_ms']:,} ms: read, made canonical — normalized, sorted, one a line — hashed and
stored gzip, {r['stored_bytes'] / 1e6:.1f} MB), then enabled in the province default. A real collector
and {r['nodes']} real agents over {r['agencies']} agencies (`demo/examples/common/agents.rs`: each the
agent's own link and control thread with its own state directory, no enforcer), on
one machine over loopback TLS. Per agent, from the default's save (PUT start):
*held* = the list fetched by its hash in 1 MiB chunks, its text's SHA-256 checked and the
file renamed into the agent's state directory; *applied* = the collector holding the
agent's `applied` for the new version, after the agent built its matcher of every name
(about 1.3 s of CPU and 95 MB per agent, see *Domain blocklist*: here {r['nodes']} agents
share {os.cpu_count()} cores, so their builds queue: about {r['nodes']} × 1.3 s / {os.cpu_count()}; on routers each
has its own). The agent says `applied` once its packet path and DNS responder hold the
new rules. Milliseconds.

| step | agents | p50 | p90 | p99 | max |
|---|---:|---:|---:|---:|---:|
{row("list held (fetched, verified, stored)", e["held_ms"])}
{row("new version applied (list loaded)", e["applied_ms"])}
{row("then an allocation-only change applied", a["applied_ms"])}

- Target: the list reaches {r['nodes']} agents in ≤ 30 s — all held after {held_all if held_all is not None else '—'} ms: {ok(held_all is not None and held_all <= 30000)}.
- List bytes the collector sent: {e['list_bytes_sent']:,} for the enabling save ({e['list_bytes_sent'] / max(r['stored_bytes'], 1):.2f} × the stored list);
  **{a['list_bytes_sent']:,}** for the allocation-only change (the agents hold the hash: nothing sent again).
- Peak resident memory of the whole process (collector + {r['nodes']} agents with their matchers): {r['vm_hwm_kb'] / 1024:,.0f} MB.

Load average before {os.environ.get('BENCH_LOADAVG', '?')}, after {os.environ.get('BENCH_LOADAVG_AFTER', '?')}.
Machine: {os.cpu_count()} cores, {cpu}. Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.""")
PY
cat bench/out/lists.md
if [ "$WRITE_MD" = 1 ]; then
  python3 bench/lib/write_section.py lists bench/out/lists.md
fi
