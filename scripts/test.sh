#!/usr/bin/env bash
# The one command that sets up a fresh machine and runs every test.
# Needs root (network namespaces, AF_PACKET capture, tc/nft) — CI runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# A fresh build is rebuilt from scratch anyway: incremental caches would only
# double the disk it needs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
scripts/disk-check.sh

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests (unit, property, fixture replay vs tshark, live capture in namespaces)"
# Tests that build network namespaces use distinct names and can run in parallel.
cargo test --workspace --all-targets --no-fail-fast

echo "== dashboard in a real browser (playwright-core driving Debian's chromium)"
cargo build -q -p simpul-demo
# Two files at a time: most of their time is spent waiting for the demo's
# traffic to build up, not on the CPU, and the suite must stay under 30 min.
node --test --test-concurrency=2 tests/browser/
