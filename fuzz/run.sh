#!/usr/bin/env bash
# Runs every cargo-fuzz target for RUNS executions each (default 10 M), one
# at a time at the lowest priority, and writes the "fuzz" section of
# BENCHMARKS.md: executions, wall time, execs/s, crashes, corpus size, date
# and the load average before each run.
#
#   fuzz/run.sh                          # all six targets, 10 M executions each
#   RUNS=100000 TARGETS="policy" fuzz/run.sh
#   JOBS=2 fuzz/run.sh                   # two targets at a time (one per core)
#   REPORT_ONLY=1 fuzz/run.sh            # rewrite the section from fuzz/out/
#
# Per target: seeds from fuzz/seeds/<target>/ (committed), new inputs in
# fuzz/corpus/<target>/ (scratch, kept between runs), crash inputs in
# fuzz/artifacts/<target>/, the libFuzzer log and the result in fuzz/out/.
# The section lists every target with a result in fuzz/out/, so a rerun of
# one target updates its row only. Exits 1 if any run crashed.
set -euo pipefail
cd "$(dirname "$0")"
RUNS=${RUNS:-10000000}
ALL="decode_and_name capture_file wire_agent wire_collector policy domain_list netflow"
TARGETS=${TARGETS:-$ALL}
JOBS=${JOBS:-1}
OUT=out
mkdir -p "$OUT"
# Stable rustc accepts the sanitizer flags cargo-fuzz passes (README "Fuzzing").
export RUSTC_BOOTSTRAP=1
# cargo-fuzz defaults: release, debug assertions and overflow checks, ASan.
fuzz() { nice -n 19 cargo fuzz "$@"; }

# One target: its own working directory (libFuzzer's -jobs log is
# fuzz-0.log in the current directory), its own corpus and artifacts.
run_target() {
  local t=$1 work="$OUT/work-$1" bin="$PWD/target/$TRIPLE/release/$1"
  mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t" "$work"
  read -r l1 l5 l15 _ < /proc/loadavg
  local date marker start end rc=0 crashes
  date=$(date -u '+%Y-%m-%d %H:%M UTC')
  marker=$(mktemp)
  rm -f "$work/fuzz-0.log"
  echo "== $t: $RUNS executions (load $l1 $l5 $l15)"
  start=$(date +%s.%N)
  # -jobs=1 -workers=1: one process; libFuzzer writes its log to fuzz-0.log.
  (cd "$work" && nice -n 19 "$bin" -artifact_prefix="$PWD/../../artifacts/$t/" \
      -runs="$RUNS" -jobs=1 -workers=1 -print_final_stats=1 \
      "../../corpus/$t" "../../seeds/$t") > "$OUT/$t.console" 2>&1 || rc=$?
  end=$(date +%s.%N)
  mv -f "$work/fuzz-0.log" "$OUT/$t.log" 2>/dev/null || cp "$OUT/$t.console" "$OUT/$t.log"
  # Not slow-unit-* (a slow input under load is no failure).
  crashes=$(find "artifacts/$t" -type f -newer "$marker" \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  rm -f "$marker"
  # 72: libFuzzer's exit on SIGINT/SIGTERM (stopped by hand, not a crash):
  # recorded with the executions reached, marked stopped.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 72 ] && [ "$crashes" -eq 0 ]; then
    crashes=1 # a failure that left no input (e.g. a startup error)
  fi
  python3 - "$t" "$OUT" "$start" "$end" "$rc" "$crashes" "$date" "$l1 $l5 $l15" "$RUNS" <<'PY'
import json, os, re, sys
t, out, start, end, rc, crashes, date, load, runs = sys.argv[1:]
log = open(os.path.join(out, t + ".log"), errors="replace").read()
def stat(name):
  m = re.findall(r"stat::%s:\s+(\d+)" % name, log)
  return int(m[-1]) if m else None
execs = stat("number_of_executed_units")
if execs is None:  # stopped by a crash: the last status line
  m = re.findall(r"^#(\d+)\s", log, re.M)
  execs = int(m[-1]) if m else 0
corpus = os.path.join("corpus", t)
files = [os.path.join(corpus, f) for f in os.listdir(corpus)]
wall = float(end) - float(start)
r = {
  "target": t, "runs": int(runs), "executions": execs, "wall_s": round(wall, 1),
  "execs_per_s": round(execs / wall) if wall > 0 else 0,
  "libfuzzer_execs_per_s": stat("average_exec_per_sec"),
  "crashes": int(crashes), "exit_code": int(rc), "stopped": int(rc) == 72,
  "new_units": stat("new_units_added"), "peak_rss_mb": stat("peak_rss_mb"),
  "corpus_files": len(files), "corpus_bytes": sum(os.path.getsize(f) for f in files),
  "seed_files": len(os.listdir(os.path.join("seeds", t))),
  "artifacts": sorted(f for f in os.listdir(os.path.join("artifacts", t))
                      if not f.startswith("slow-unit-")),
  "date": date, "loadavg": load,
}
json.dump(r, open(os.path.join(out, t + ".json"), "w"), indent=1)
print(json.dumps(r))
PY

  [ "$crashes" -eq 0 ]
}

failed=0
if [ -z "${REPORT_ONLY:-}" ]; then
  for t in $TARGETS; do
    [ -f "fuzz_targets/$t.rs" ] || { echo "run.sh: no target $t" >&2; exit 2; }
  done
  fuzz build
  TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
  # JOBS targets at a time (default 1: the figures of one target alone).
  running=0
  for t in $TARGETS; do
    if [ "$running" -ge "$JOBS" ]; then
      wait -n || failed=1
      running=$((running - 1))
    fi
    run_target "$t" &
    running=$((running + 1))
  done
  while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
  done
fi

tmp=$(mktemp)
python3 - "$OUT" "$ALL" > "$tmp" <<'PY'
import json, os, subprocess, sys
out, order = sys.argv[1], sys.argv[2].split()
what = {
    "decode_and_name": "frames → decode, DPI, flows, naming (`simpul_core::fuzzing::decode_and_name`)",
    "capture_file": "pcap/pcapng image → file reader → processor (`simpul_agent::fuzzing::capture_file`)",
    "wire_agent": "agent frame → collector's decoders (v3, v2, JSON, spooled batch) (`simpul_proto::fuzzing::wire_agent`)",
    "wire_collector": "collector frame → agent's decoders (v3, v2, JSON) (`simpul_proto::fuzzing::wire_collector`)",
    "policy": "TOML/JSON → policy parse + validation, matcher, plan; else inventory validation (`simpul_core::fuzzing::policy`)",
    "domain_list": "blocklist text → `DomainSetBuilder` (`ListFormat::Auto`) + lookups (`simpul_core::fuzzing::domain_list`)",
    "netflow": "datagrams → NetFlow v5/v9/IPFIX decoder with its template cache (`simpul_core::netflow::fuzz`)",
}
rows = [json.load(open(os.path.join(out, t + ".json"))) for t in order
        if os.path.exists(os.path.join(out, t + ".json"))]
if not rows:
    sys.exit("run.sh: no results in " + out)
def sh(cmd):
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True).stdout.strip()
def dur(s):
    m, s = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02}:{s:02}" if h else f"{m}:{s:02}"
total = sum(r["crashes"] for r in rows)
lf = sh("grep -A1 '^name = \"libfuzzer-sys\"' Cargo.lock | sed -n 's/version = \"\\(.*\\)\"/\\1/p'")
print(f"""## Fuzzing (`fuzz/run.sh`)

Each cargo-fuzz target run for a fixed number of executions (`-runs=N -jobs=1 -workers=1`,
`nice -n 19`; `JOBS` targets at a time, see the load average) as cargo-fuzz builds it by default: release with debug
assertions, overflow checks and AddressSanitizer ({sh('cargo fuzz --version')}, libfuzzer-sys {lf},
{sh('rustc --version')} with `RUSTC_BOOTSTRAP=1`). Inputs: the seeds in `fuzz/seeds/<target>/`
and the scratch corpus `fuzz/corpus/<target>/` (kept between runs, not committed). execs/s is
executions over the run's wall time, on a machine shared with other builds and tests (load average
before each run in the table). **{total} crash{'' if total == 1 else 'es'}** in {sum(r['executions'] for r in rows):,} executions.

| target | input → code | executions | wall time | execs/s | crashes | corpus after (files, KB) | load avg before | run |
|---|---|---:|---:|---:|---:|---:|---|---|""")
for r in rows:
    stopped = " (stopped by hand)" if r.get("stopped") else ""
    print(f"| `{r['target']}` | {what.get(r['target'], '')} | {r['executions']:,}{stopped} | {dur(r['wall_s'])} | "
          f"{r['execs_per_s']:,} | {r['crashes']} | {r['corpus_files']:,}, {r['corpus_bytes'] / 1024:,.0f} | "
          f"{r['loadavg']} | {r['date']} |")
crashed = [r for r in rows if r["crashes"]]
if crashed:
    print("\nCrash inputs (fuzz/artifacts/): " + "; ".join(
        f"`{r['target']}`: {', '.join(r['artifacts']) or 'none written (exit ' + str(r['exit_code']) + ')'}" for r in crashed))
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
print(f"\nMachine: {sh('nproc')} cores, {cpu}.")
PY
cat "$tmp"
python3 ../bench/lib/write_section.py fuzz "$tmp"
rm -f "$tmp"
exit "$failed"
