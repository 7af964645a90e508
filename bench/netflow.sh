#!/usr/bin/env bash
# NetFlow/IPFIX in: records/s per core of Simpul's collector (decode +
# attribution + SQLite ingest) vs nfcapd, on the same softflowd export
# (v5, v9, IPFIX) replayed over loopback UDP. Writes the "netflow" section
# of BENCHMARKS.md. Run on a quiet machine:
#   bench/netflow.sh            (RUNS=3 PACKETS=2000000 FLOWS=250000 RATE=5000)
set -euo pipefail
cd "$(dirname "$0")/.."
for t in python3 softflowd nfcapd nfdump editcap; do
    command -v "$t" >/dev/null || { echo "netflow.sh: $t is missing (scripts/setup.sh)" >&2; exit 1; }
done
cargo build --release -q -p simpul-collector
# Bursts of export datagrams need socket buffers larger than the default cap.
old_rmem=$(sysctl -n net.core.rmem_max)
trap 'sysctl -qw net.core.rmem_max="$old_rmem"' EXIT
sysctl -qw net.core.rmem_max=33554432 || echo "netflow.sh: cannot raise net.core.rmem_max (not root?)" >&2
out=$(mktemp)
python3 bench/lib/netflow_bench.py --collector target/release/simpul-collector --out "$out" \
    --runs "${RUNS:-3}" --packets "${PACKETS:-2000000}" --flows "${FLOWS:-250000}" --rate "${RATE:-5000}"
python3 bench/lib/write_section.py netflow "$out"
rm -f "$out"
