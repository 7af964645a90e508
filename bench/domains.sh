#!/usr/bin/env bash
# Blocklist benchmark: a deterministic 3 M-domain list (plain, hosts and
# adblock lines; 1–4 labels under com/net/id/go.id/co.id/xyz/…) loaded into
# policy::domains::DomainSet in a fresh process: load time, resident memory
# (VmRSS delta), lookup time for hits, misses and deep subdomains.
# Writes the "domains" section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-3000000}
RUNS=${RUNS:-3}
OUT=${OUT:-bench/out/domains}
mkdir -p "$OUT"
# REPORT_ONLY=1 rewrites the section from the last runs without measuring.
if [ -z "${REPORT_ONLY:-}" ]; then
  cargo build --release -q -p simpul-core --example domain_bench
  bin=target/release/examples/domain_bench
  list="$OUT/list-$COUNT.txt"
  [ -s "$list" ] || "$bin" generate "$list" "$COUNT"
  : > "$OUT/runs.jsonl"
  for i in $(seq 1 "$RUNS"); do
    "$bin" measure "$list" | tee -a "$OUT/runs.jsonl"
  done
fi
tmp=$(mktemp)
python3 - "$OUT/runs.jsonl" > "$tmp" <<'PY'
import json, statistics, subprocess, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(k): return statistics.median(r[k] for r in runs)
def ok(v, limit): return "met" if v <= limit else "**not met**"
r0 = runs[0]
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
print(f"""## Domain blocklist (`bench/domains.sh`)

{r0['rules']:,} distinct generated domains ({r0['file_bytes']/1e6:.1f} MB file, about 90 % plain
lines, 5 % hosts lines, 5 % adblock rules; 1–4 labels under com/net/id/co.id/go.id/xyz/…)
loaded by `DomainSetBuilder::add_path(…, ListFormat::Auto)` in a fresh process
(`cargo run --release --example domain_bench`), median of {len(runs)} runs. Lookups: {r0['queries_per_class']:,}
names per class in shuffled order, 3 passes; *hit* = a listed domain, *miss* = a same-shaped
unlisted one, *deep* = the same under four more labels (`a1.b2.c3.www.…`, so the suffix walk
covers 6–8 labels). CPU time (`CLOCK_THREAD_CPUTIME_ID`) is the figure to read; wall time is
shown because the machine was shared with other builds (load average {', '.join(r['loadavg'] for r in runs)}).

| measure | median | target | |
|---|---:|---:|---|
| resident memory after load (VmRSS delta) | {med('rss_delta_mb'):.1f} MB | ≤ 100 MB | {ok(med('rss_delta_mb'), 100)} |
| heap held by the set (arena + table) | {med('heap_mb'):.1f} MB | | |
| peak resident during load (VmHWM) | {med('vmhwm_mb'):.1f} MB | | |
| load time, CPU | {med('load_cpu_s'):.2f} s | ≤ 2 s | {ok(med('load_cpu_s'), 2)} |
| load time, wall | {med('load_s'):.2f} s | | |
| lookup hit, CPU | {med('hit_cpu_ns'):.0f} ns | ≤ 300 ns | {ok(med('hit_cpu_ns'), 300)} |
| lookup miss, CPU | {med('miss_cpu_ns'):.0f} ns | ≤ 300 ns | {ok(med('miss_cpu_ns'), 300)} |
| lookup deep-subdomain hit, CPU | {med('deep_hit_cpu_ns'):.0f} ns | ≤ 300 ns | {ok(med('deep_hit_cpu_ns'), 300)} |
| lookup deep-subdomain miss, CPU | {med('deep_miss_cpu_ns'):.0f} ns | ≤ 300 ns | {ok(med('deep_miss_cpu_ns'), 300)} |
| lookup hit / miss / deep hit / deep miss, wall | {med('hit_ns'):.0f} / {med('miss_ns'):.0f} / {med('deep_hit_ns'):.0f} / {med('deep_miss_ns'):.0f} ns | | |
| this machine's random-read latency (dependent loads, 32 MiB, 4 KiB pages) | {med('memory_latency_cpu_ns'):.0f} ns | | |

Layout: one byte arena of `[len][name]` entries (lowercase, no trailing dot) and a
linear-probing table of `u64` slots (32-bit hash fingerprint + arena offset, load ≤ 0.8),
both on transparent huge pages (`MADV_HUGEPAGE`, {med('anon_huge_mb'):.0f} MB). A lookup hashes
the name's suffixes label by label from the TLD in one pass, loads their home slots before
inspecting any (so the cache misses overlap), and verifies a fingerprint match against the
arena. Every cold label costs about one random memory read and a hit one more for the
arena check, so on this VM (random reads ≈ {med('memory_latency_cpu_ns'):.0f} ns, measured in the
same run) a miss costs about 1.5 and a hit about 2–2.5 memory latencies: the 300 ns target
is not reached on this VM with this layout; a hit's second read (the arena check) is the
first thing a faster design would have to remove. The instruction cost is the other part:
`cargo bench -p simpul-core --bench domains` also times a 20 k-rule set that fits in
cache (group `domains_20000`).

Machine: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, {cpu} (KVM guest), run {subprocess.run(['date', '-u', '+%Y-%m-%d %H:%M UTC'], capture_output=True, text=True).stdout.strip()}.""")
PY
cat "$tmp"
python3 bench/lib/write_section.py domains "$tmp"
rm -f "$tmp"
