#!/usr/bin/env bash
# Investigation reads: the ingest benchmark's synthetic traffic (40 agencies,
# skewed hosts and sites) stored in SQLite, then the reads of the flows table
# and the search page, each timed (median of RUNS after a warm-up run), on one
# core. Writes the "collector-search" section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-1000000}
RUNS=${RUNS:-5}
cargo build --release -q -p simpul-collector
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before the run: $loadavg"
out=$(taskset -c 0 target/release/simpul-collector bench-search --records "$RECORDS" --runs "$RUNS")
table=$(python3 - "$out" <<'PY'
import json, sys
for t in json.loads(sys.argv[1]):
    print("| %s | %s | %.1f | %.1f |" % (t["name"], format(t["rows"], ","), t["median_ms"], t["max_ms"]))
PY
)
echo "$table"
tmp=$(mktemp)
cat > "$tmp" <<MD
## Investigation reads (\`bench/search.sh\`)

$RECORDS flow records of 40 agencies (the ingest benchmark's traffic: skewed
hosts and sites, ~10 % long flows) in SQLite, then the reads behind the flows
table and \`/api/v1/search\` through \`store::Reader\`, pinned to one core
(\`taskset -c 0\`): median and slowest of $RUNS runs after a warm-up. All the
records fall within a few seconds, so every chunk overlaps every range: the
worst case for the chunk index. A search summary reads at most 500 000 flows
(newest first), a page at most 2 000 000.

| read | rows | median ms | max ms |
|---|---:|---:|---:|
$table

Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r); run $(date -u '+%Y-%m-%d %H:%M UTC'); load average before the run $loadavg.
MD
python3 bench/lib/write_section.py collector-search "$tmp"
rm -f "$tmp"
