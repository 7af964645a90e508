#!/usr/bin/env bash
# The main job: the collector on its embedded SQLite store (./data) with its
# live dashboard, and demo agencies whose real agent code replays recorded
# captures at their recorded speed over TLS WebSocket connections.
# Open the printed Dashboard URL (default http://127.0.0.1:8080/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
exec cargo run --release -p simpul-demo -- "$@"
