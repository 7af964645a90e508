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
MAX_LOAD=${MAX_LOAD:-2}
WAIT_S=${WAIT_S:-600}
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
    # Lookups are memory-latency bound: other builds on this 2-core VM
    # move the figures. Wait (up to WAIT_S) for a quiet machine; the load
    # average of each run is written with the results either way.
    waited=0
    while awk -v max="$MAX_LOAD" '{ exit !($1 > max) }' /proc/loadavg && [ "$waited" -lt "$WAIT_S" ]; do
      sleep 10
      waited=$((waited + 10))
    done
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
| heap held by the set (table lines + long names + rule filter) | {med('heap_mb'):.1f} MB | | |
| heap per name | {med('heap_mb') * 1048576 / r0['rules']:.1f} B | | 30.2 B before the rule filter, 33.0 B before inline lines |
| peak resident during load (VmHWM) | {med('vmhwm_mb'):.1f} MB | | |
| load time, CPU | {med('load_cpu_s'):.2f} s | ≤ 2 s | {ok(med('load_cpu_s'), 2)} |
| load time, wall | {med('load_s'):.2f} s | | |
| lookup hit, CPU | {med('hit_cpu_ns'):.0f} ns | ≤ 300 ns | {ok(med('hit_cpu_ns'), 300)} |
| lookup miss, CPU | {med('miss_cpu_ns'):.0f} ns | ≤ 300 ns | {ok(med('miss_cpu_ns'), 300)} |
| lookup deep-subdomain hit, CPU | {med('deep_hit_cpu_ns'):.0f} ns | ≤ 300 ns | {ok(med('deep_hit_cpu_ns'), 300)} |
| lookup deep-subdomain miss, CPU | {med('deep_miss_cpu_ns'):.0f} ns | ≤ 300 ns | {ok(med('deep_miss_cpu_ns'), 300)} |
| lookup hit / miss / deep hit / deep miss, wall | {med('hit_ns'):.0f} / {med('miss_ns'):.0f} / {med('deep_hit_ns'):.0f} / {med('deep_miss_ns'):.0f} ns | | |
| this machine's random-read latency (dependent loads, 32 MiB, 4 KiB pages) | {med('memory_latency_cpu_ns'):.0f} ns | | |
| load average (1 min) at each run | {' / '.join(r['loadavg'] for r in runs)} | | |

Layout (`core/src/policy/domains/table.rs`, `filter.rs`): names stored inline, lowercase, in
64-byte cache lines (`[len][list tag][name]` back to back after a 2-byte header; names over 60
bytes out of line), each name in one of three candidate lines picked by its hash (bucketized
cuckoo hashing, lines filled to ~80 %), on transparent huge pages (`MADV_HUGEPAGE`,
{med('anon_huge_mb'):.0f} MB). A name goes to its first line when that has room, else the first
line's header keeps a bit of its hash. In front of the table, a Bloom filter of the rules: one
64-bit word per rule picked by its hash, 3 bits set in it, 8 bits a rule
({r0['rules'] / 1048576:.1f} MB here, small enough to stay in the ~4 MB of last-level cache a
process keeps on this VM; ~4 % false positives). A lookup hashes the name's suffixes label by
label from the TLD and asks the filter about each as soon as its hash is known; only a suffix the
filter lets through is probed in the table, TLD first (the broadest rule wins): its three lines
are prefetched, the first is waited for, the other two only when that line holds the name's
displaced bit. A hit is confirmed on the bytes fetched, so neither hash collisions nor filter
false positives ever match. A hit or deep hit thus costs one memory latency
({med('memory_latency_cpu_ns'):.0f} ns here) plus hashing, the filter and the scan; a miss or deep
miss usually no table access at all (only a filter false positive reaches the table). While a
list loads, the filter is kept up to date (sized from the file's line count), so a new rule it
rejects needs no duplicate probe in the table. Before the filter (commit 3af12e8) every suffix's
lines were fetched, so a deep miss had up to 24 lines in flight and waited for all of them; side
by side on 2026-12-05 01:23 UTC (load average 3.4–4.2, random read 148 ns, 8 alternating runs
each, medians, CPU ns): hit 257 → 260, miss 211 → 83, deep hit 278 → 275, deep miss 335 → 128;
heap 86.4 → 89.2 MB; load 1.24 → 1.25 s. Filters of 4–12 bits a rule, side by side: hits cost
the same at every size, misses and deep misses fall up to 8 bits (fewer false positives) and no
further. The layout
before the inline lines (one `u64` slot of fingerprint + offset per name, names in a separate
arena, commit d6faef2) needed two dependent reads for a hit (375 ns hit, 364 ns deep miss side
by side on 2026-12-04). `cargo bench -p simpul-core --bench domains` times the
same lookups in criterion, for a 20 k-rule set that fits in cache (`domains_20000`) and the
3 M size (`domains_3000000`).

Machine: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, {cpu} (KVM guest), run {subprocess.run(['date', '-u', '+%Y-%m-%d %H:%M UTC'], capture_output=True, text=True).stdout.strip()}.""")
PY
cat "$tmp"
python3 bench/lib/write_section.py domains "$tmp"
rm -f "$tmp"
