#!/usr/bin/env bash
# Refuses to start the suite on a disk too full to hold it, saying so, rather
# than letting the linker die half-way with a bus error (CI, stop 19).
# A fresh `scripts/test.sh` build takes ~4 GB in target/ and the tests' temp
# directories (spools, SQLite files, ClickHouse and PostgreSQL data) under
# ~1 GB at a time.
set -euo pipefail
cd "$(dirname "$0")/.."

need_gb() { # <dir> <GiB> <what>
  local dir=$1 need=$2 what=$3 free
  mkdir -p "$dir"
  free=$(df -Pk "$dir" | awk 'NR == 2 { print int($4 / 1048576) }')
  if ((free < need)); then
    echo "disk-check: only ${free} GiB free under $dir, and $what takes up to ${need} GiB." >&2
    echo "disk-check: free some space (an old target/ elsewhere, 'cargo clean') and run again." >&2
    exit 1
  fi
  echo "disk-check: ${free} GiB free under $dir (${need} GiB wanted for $what)"
}

need_gb "${CARGO_TARGET_DIR:-target}" "${SIMPUL_DISK_BUILD_GB:-6}" "the build"
need_gb "${TMPDIR:-/tmp}" "${SIMPUL_DISK_TMP_GB:-2}" "the tests' temporary files"
