#!/usr/bin/env bash
# Hostile clients against a real collector (issue 9's attacks, re-run): a
# release-built `simpul-collector serve` on loopback, one fresh process per
# attack, and bench/lib/hostile.py (Python 3, stdlib only) as the attacker,
# the /proc sampler and the legitimate prober. Records VmRSS and open
# descriptors before, at the peak during and AFTER_SECS after each burst,
# and whether /healthz, /api/v1/nodes (API token), an agent's upgrade and a
# dashboard's live feed were served during it. Writes the "hostile" section
# of BENCHMARKS.md.
#
# Knobs: ATTACKS (default: all, "agent-prehello live-big live-idle
# slowloris-one slowloris-many slowloris-many-1024"), AFTER_SECS (10),
# IDLE_HOLD_SECS (20, live-idle), SLOW_HOLD_SECS (30, slowloris),
# TRIM_CHECK (1: if gdb is there, call malloc_trim(0) in the collector after
# the "after" figures, to tell memory glibc keeps from memory in use),
# SKIP_BUILD=1, WRITE_MD=0 (section only to bench/out/hostile/section.md),
# REPORT_ONLY=1 (rewrite the section from the last results).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/bench/out/hostile}
AFTER_SECS=${AFTER_SECS:-10}
IDLE_HOLD_SECS=${IDLE_HOLD_SECS:-20}
SLOW_HOLD_SECS=${SLOW_HOLD_SECS:-30}
TRIM_CHECK=${TRIM_CHECK:-1}
ATTACKS=${ATTACKS:-agent-prehello live-big live-idle slowloris-one slowloris-many slowloris-many-1024}
BIN=$ROOT/target/release/simpul-collector
HOSTILE=$ROOT/bench/lib/hostile.py
mkdir -p "$OUT"

if [ -z "${REPORT_ONLY:-}" ]; then
  [ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p simpul-collector
  [ -x "$BIN" ] || { echo "hostile: no $BIN" >&2; exit 2; }

  # The clients hold up to ~3,200 sockets at once (2,000 feeds + probes, or
  # 1,100 slowloris + probes).
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt 8192 ]; then
    echo "hostile: the hard open-files limit is $hard; need 8192 (run as root or raise it)" >&2
    exit 2
  fi
  ulimit -Sn 8192 2>/dev/null || ulimit -Sn "$hard"
  echo "open-files limit of the clients: $(ulimit -n)"

  trim=()
  if [ "$TRIM_CHECK" = 1 ] && command -v gdb >/dev/null; then trim=(--trim); fi

  # A fresh collector: its own data directory, configuration and copies of
  # the example inventory and policies (nothing under configs/ is touched).
  rm -rf "$OUT/data" "$OUT/etc" "$OUT/logs" "$OUT/series" "$OUT/results.jsonl"
  mkdir -p "$OUT/etc" "$OUT/logs" "$OUT/series"
  cp configs/inventory.toml "$OUT/etc/"
  cp -r configs/policies "$OUT/etc/policies"
  read -r HTTP_PORT TLS_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
  CFG=$OUT/etc/collector.toml
  cat > "$CFG" <<EOF
# bench/hostile.sh: default [server] limits, loopback only.
[server]
listen = "127.0.0.1:$HTTP_PORT"
listen_tls = "127.0.0.1:$TLS_PORT"

[storage]
data_dir = "$OUT/data"

[inventory]
file = "inventory.toml"

[policy]
dir = "policies"
EOF
  TOKEN=$("$BIN" api-token create --config "$CFG" --name hostile-bench --role operator 2>"$OUT/logs/api-token.log")
  case "$TOKEN" in spl_*) ;; *) echo "hostile: api-token create printed no token (see $OUT/logs/api-token.log)" >&2; exit 2 ;; esac
  # The legitimate requests' own account: the NOC's dashboard is not the attacker.
  LEGIT=$("$BIN" api-token create --config "$CFG" --name noc-dashboard --role operator 2>>"$OUT/logs/api-token.log")

  export BENCH_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "load average before the runs: $BENCH_LOADAVG"

  PID=
  stop_collector() {
    [ -n "$PID" ] || return 0
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
  }
  trap stop_collector EXIT

  for attack in $ATTACKS; do
    name=$attack variant= nofile=soft note=
    case "$attack" in
      slowloris-many-1024)
        name=slowloris-many variant=-1024 nofile=both
        note="Collector started under \`ulimit -n 1024\` (soft and hard), so it cannot raise the limit: \`max_connections\` is lowered to 1,024 − 256 = 768 (its log says so)." ;;
    esac
    hold=$IDLE_HOLD_SECS
    case "$name" in slowloris-*) hold=$SLOW_HOLD_SECS ;; esac
    log=$OUT/logs/collector-$attack.log
    echo "== $attack: starting the collector"
    if [ "$nofile" = both ]; then
      ( ulimit -n 1024; exec "$BIN" serve --config "$CFG" ) >"$log" 2>&1 &
    else
      # The usual soft limit; the collector raises it to the hard one.
      ( ulimit -Sn 1024; exec "$BIN" serve --config "$CFG" ) >"$log" 2>&1 &
    fi
    PID=$!
    python3 "$HOSTILE" wait --tls-port "$TLS_PORT" --ca "$OUT/data/tls/ca.pem"
    echo "== $attack: pid $PID, $(grep 'open files' /proc/$PID/limits | awk '{print "open files " $4 "/" $5}')"
    python3 "$HOSTILE" attack "$name" --variant "$variant" --note "$note" \
      --pid "$PID" --tls-port "$TLS_PORT" --ca "$OUT/data/tls/ca.pem" --token "$TOKEN" --legit-token "$LEGIT" \
      --data-dir "$OUT/data" --out "$OUT/results.jsonl" --series "$OUT/series" \
      --after "$AFTER_SECS" --hold "$hold" --log "$log" "${trim[@]}" >"$OUT/logs/attack-$attack.json"
    python3 - "$OUT/results.jsonl" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
mb = lambda k: "%.0f MB" % (k / 1024) if k else "?"
b, p, a = r["before"], r["peak"], r["after"]
t = r.get("after_malloc_trim")
print("   RSS %s -> peak %s -> after %s%s; fds %d -> peak %d -> after %d; served: %s" % (
    mb(b["rss_kb"]), mb(p.get("rss_kb")), mb(a["rss_kb"]),
    " (after malloc_trim %s)" % mb(t["rss_kb"]) if t else "",
    b["fds"], p.get("fds", -1), a["fds"],
    ", ".join("%s %d/%d" % (k, v["ok"], v["n"]) for k, v in r["probes"].items())))
if not r["collector_alive"]:
    print("   THE COLLECTOR DIED")
PY
    if ! kill -0 "$PID" 2>/dev/null; then
      echo "hostile: the collector (pid $PID) died during $attack; see $log" >&2
    fi
    stop_collector
  done
  trap - EXIT
fi

tmp=$(mktemp)
python3 "$HOSTILE" report "$OUT/results.jsonl" >"$tmp"
cp "$tmp" "$OUT/section.md"
if [ "${WRITE_MD:-1}" != 0 ]; then
  python3 bench/lib/write_section.py hostile "$tmp"
fi
rm -f "$tmp"
