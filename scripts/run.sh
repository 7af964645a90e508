#!/usr/bin/env bash
# The main job. Until the collector lands (issue #3) this builds the agent and
# replays the recorded fixtures, printing flows with their names and agencies.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
cargo build --release -q -p simpul-agent
mkdir -p data
for f in tests/fixtures/*.pcap tests/fixtures/*.pcapng; do
  echo "== $f"
  target/release/simpul-agent replay --pcap "$f" --config tests/fixtures/agent.toml \
    --flows-out "data/$(basename "$f").flows.jsonl" --counters-out "data/$(basename "$f").counters.jsonl"
done
echo
echo "Flow records are in data/*.flows.jsonl; per-second counters in data/*.counters.jsonl."
