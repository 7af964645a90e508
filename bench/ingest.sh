#!/usr/bin/env bash
# Collector ingest benchmark: agent batches (1000 flow records each, plus
# counters) into the embedded SQLite store on one core, with durable commits.
# Writes the "collector-ingest" section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-1000000}
RUNS=${RUNS:-3}
cargo build --release -q -p simpul-collector -p simpul-agent
cargo build --release -q -p simpul-proto --example record_size
# Wire size of real records: the recorded fixtures, replayed.
sizes_dir=$(mktemp -d)
for f in tests/fixtures/*.pcap tests/fixtures/*.pcapng; do
  target/release/simpul-agent replay --pcap "$f" --config tests/fixtures/agent.toml --interim \
    --flows-out "$sizes_dir/$(basename "$f").jsonl" >/dev/null
done
sizes=$(cat "$sizes_dir"/*.jsonl | target/release/examples/record_size)
rm -rf "$sizes_dir"
bin_per=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["binary_bytes_per_record"])' "$sizes")
json_per=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["json_bytes_per_record"])' "$sizes")
nrec=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["records"])' "$sizes")
echo "wire: $bin_per B/record binary, $json_per B/record JSON ($nrec records)"
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before the runs: $loadavg"
results=()
for i in $(seq 1 "$RUNS"); do
  out=$(taskset -c 0 target/release/simpul-collector bench-ingest --records "$RECORDS")
  rate=$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["records_per_sec"]))' "$out")
  echo "run $i: $rate records/s"
  results+=("$rate")
done
median=$(printf '%s\n' "${results[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
verdict="met"
[ "$median" -ge 200000 ] || verdict="NOT met"
tmp=$(mktemp)
cat > "$tmp" <<MD
## Collector ingest into SQLite (\`bench/ingest.sh\`)

$RECORDS flow records in batches of 1000 (with per-second counters), through
\`store::Writer::ingest\` — the same code path as live agents: dedup table,
flow upsert, 1 s / 1 min / 1 h rollups (with each minute's and hour's peak
and percentile sketch), top hosts/sites per minute, WAL with
\`synchronous=FULL\` commits — pinned to one core (\`taskset -c 0\`).

| runs (records/s) | median | target ≥ 200 k records/s |
|---|---:|---|
| ${results[*]} | $median | $verdict |

Wire size of a flow record (the $nrec records of the recorded fixtures, batches
of 1000, \`proto/examples/record_size.rs\`): **$bin_per bytes** in the binary
protocol (postcard), $json_per bytes as JSON.

Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r); run $(date -u '+%Y-%m-%d %H:%M UTC'); load average before the runs $loadavg.
MD
python3 bench/lib/write_section.py collector-ingest "$tmp"
rm -f "$tmp"
