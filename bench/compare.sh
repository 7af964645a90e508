#!/usr/bin/env bash
# Replay benchmark: simpul-agent vs softflowd (+nfcapd/nfdump) vs pmacctd on one
# synthetic IMIX pcap.  See bench/README.md.
#
#   bench/compare.sh                 # generate pcap if missing, build, measure, update BENCHMARKS.md
#
# Environment knobs (defaults in brackets):
#   RUNS [3]            timed runs per tool (median wall time is reported)
#   SEED [1] PACKETS [2000000] FLOWS [60000]   generator parameters
#   TOOL_TIMEOUT [300]  seconds per tool invocation;  BUILD_TIMEOUT [1800] for cargo
#   SKIP_BUILD [0]      1 = do not run cargo build (use the existing binary)
#   AGENT_BIN [target/release/simpul-agent]
#   PMACCT_QUEUE [zmq]  zmq = plugin_pipe_zmq (lossless, back-pressure);
#                       pipe = home-grown ring with plugin_pipe_size 1024000000
#   IDLE_SECONDS [3]    idle-RSS measurement window
#   WRITE_MD [1]        0 = do not touch BENCHMARKS.md (report is still in bench/out/)
#   STRICT [0]          1 = exit non-zero when the agent could not be measured
#   LIVE [1]            0 = skip live capture (section agent-live): agent `run` vs
#                       `softflowd -i` on a veth, tcpreplay at LIVE_PPS [35000] for
#                       LIVE_SECONDS [20] (CPU % of a core, RSS), then --topspeed
#                       (drops); LIVE_THREADS [1] ring threads for the agent
#   LIVE_SHARDED [2]    also an agent row with this many fanout rings, each
#                       thread with a flow table of its own (0 = skip that row)
#   ONLY_LIVE [0]       1 = only the live capture rows (no replay rows, the
#                       replay section of BENCHMARKS.md left as it is)
#   QUIET_LOAD [2]      wait (up to QUIET_WAIT [600] s) for a 1-min load below this
#   AGENT_SHARDS [2]    also time the agent with SIMPUL_REPLAY_FLOW_THREADS=this
#                       (flows on that many shards; 0 = skip that row)
#   FLOOR [1]           0 = skip the floor rows: bench/lib/pcap_floor.c (gcc -O2) walks
#                       the same pcap reading only record headers and IP length fields,
#                       1 and 2 threads, read() and mmap -- no flow meter can beat it
# Exit status: 0 ok (agent may be "n/a" unless STRICT=1), 1 a byte-total check failed,
#              2 setup error (missing tool, generator failure).
set -uo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
OUT=$BENCH/out
LOGS=$OUT/logs
PCAP=$OUT/imix.pcap
META=$OUT/imix.json
RESULTS=$OUT/replay-results.jsonl
IDLE_JSON=$OUT/replay-idle.json
REPORT_MD=$OUT/replay-section.md

RUNS=${RUNS:-3}
SEED=${SEED:-1}
PACKETS=${PACKETS:-2000000}
FLOWS=${FLOWS:-60000}
TOOL_TIMEOUT=${TOOL_TIMEOUT:-300}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}
SKIP_BUILD=${SKIP_BUILD:-0}
AGENT_BIN=${AGENT_BIN:-$ROOT/target/release/simpul-agent}
PMACCT_QUEUE=${PMACCT_QUEUE:-zmq}
IDLE_SECONDS=${IDLE_SECONDS:-3}
WRITE_MD=${WRITE_MD:-1}
STRICT=${STRICT:-0}

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

LIVE=${LIVE:-1}
LIVE_PPS=${LIVE_PPS:-35000}
LIVE_SECONDS=${LIVE_SECONDS:-20}
LIVE_THREADS=${LIVE_THREADS:-1}
LIVE_SHARDED=${LIVE_SHARDED:-2}
ONLY_LIVE=${ONLY_LIVE:-0}
QUIET_LOAD=${QUIET_LOAD:-2}
QUIET_WAIT=${QUIET_WAIT:-600}

FLOOR=${FLOOR:-1}
export AGENT_SHARDS=${AGENT_SHARDS:-2}

for t in python3 softflowd nfcapd nfdump pmacctd timeout ss ip; do
    command -v "$t" >/dev/null 2>&1 || die "required tool '$t' not found"
done
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) not found (apt-get install time)"

mkdir -p "$OUT" "$LOGS"
WORK=$(mktemp -d /tmp/simpul-bench.XXXXXX)
NFCAPD_PID=""
IDLE_PID=""
NS_A=""
NS_B=""
LIVE_PID=""

cleanup() {
    if [ -n "$NFCAPD_PID" ] && kill -0 "$NFCAPD_PID" 2>/dev/null; then
        kill -TERM "$NFCAPD_PID" 2>/dev/null; wait "$NFCAPD_PID" 2>/dev/null
    fi
    if [ -n "$IDLE_PID" ] && kill -0 "$IDLE_PID" 2>/dev/null; then
        kill -KILL "$IDLE_PID" 2>/dev/null; wait "$IDLE_PID" 2>/dev/null
    fi
    if [ -n "$LIVE_PID" ] && kill -0 "$LIVE_PID" 2>/dev/null; then
        kill -KILL "$LIVE_PID" 2>/dev/null; wait "$LIVE_PID" 2>/dev/null
    fi
    [ -n "$NS_A" ] && ip netns del "$NS_A" 2>/dev/null
    [ -n "$NS_B" ] && ip netns del "$NS_B" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- (a) pcap
need_gen=1
if [ -s "$PCAP" ] && [ -s "$META" ]; then
    if python3 - "$META" "$PCAP" "$SEED" "$PACKETS" "$FLOWS" <<'EOF'
import json, os, sys
m = json.load(open(sys.argv[1]))
ok = (m.get("seed") == int(sys.argv[3]) and m.get("total_packets") == int(sys.argv[4])
      and m.get("flows") == int(sys.argv[5]) and "l2_payload_bytes" in m
      and os.path.getsize(sys.argv[2]) == m.get("pcap_file_bytes"))
sys.exit(0 if ok else 1)
EOF
    then need_gen=0; fi
fi
if [ "$need_gen" = 1 ]; then
    log "generating $PCAP (seed=$SEED packets=$PACKETS flows=$FLOWS)"
    timeout 600 python3 "$BENCH/gen_imix.py" --out "$PCAP" --meta "$META" \
        --seed "$SEED" --packets "$PACKETS" --flows "$FLOWS" || die "generator failed"
else
    log "using existing $PCAP (ground truth in $META)"
fi
read -r GT_PKTS GT_BYTES GT_FLOWS < <(python3 -c '
import json,sys; m=json.load(open(sys.argv[1])); print(m["total_packets"], m["total_ip_bytes"], m["flows"])' "$META")
log "ground truth: $GT_PKTS packets, $GT_BYTES IP bytes, $GT_FLOWS flows"

# ---------------------------------------------------------------- (b) build
AGENT_NOTE=""
BUILD_FAILED=0
if [ "$SKIP_BUILD" != 1 ]; then
    log "cargo build --release -p simpul-agent (log: $LOGS/cargo-build.log)"
    if (cd "$ROOT" && timeout "$BUILD_TIMEOUT" cargo build --release -p simpul-agent) >"$LOGS/cargo-build.log" 2>&1; then
        log "build ok"
    else
        AGENT_NOTE="cargo build failed (see bench/out/logs/cargo-build.log)"
        BUILD_FAILED=1
        log "WARNING: $AGENT_NOTE -- continuing with the peers"
        tail -n 15 "$LOGS/cargo-build.log" | sed 's/^/    | /' >&2
    fi
fi
if [ -z "$AGENT_NOTE" ] && [ ! -x "$AGENT_BIN" ]; then
    AGENT_NOTE="agent binary $AGENT_BIN not found"
    log "WARNING: $AGENT_NOTE"
fi

# ---------------------------------------------------------------- helpers
: >"$RESULTS"
rm -f "$OUT/replay-agent-mem.json" "$OUT/replay-agent-split.json" "$IDLE_JSON"

# timed TAG CMD...  -> T_WALL (s, ns clock) T_RSS (KiB) T_CPU (user+sys s) T_RC
timed() {
    local tag=$1; shift
    local tf=$LOGS/$tag.time t0 t1
    t0=$(date +%s%N)
    timeout -k 5 "$TOOL_TIMEOUT" /usr/bin/time -v -o "$tf" "$@" >"$LOGS/$tag.out" 2>"$LOGS/$tag.err"
    T_RC=$?
    t1=$(date +%s%N)
    T_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", (b-a)/1e9}')
    T_RSS=$(awk -F': ' '/Maximum resident set size/{print $2}' "$tf" 2>/dev/null)
    T_CPU=$(awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{printf "%.2f", u+s}' "$tf" 2>/dev/null)
    T_RSS=${T_RSS:-0}
    [ "$T_RC" = 124 ] && log "  $tag: TIMEOUT after ${TOOL_TIMEOUT}s"
    return 0
}

# emit TOOL RUN RC WALL RSS CPU PACKETS BYTES RECORDS NOTE
emit() {
    python3 - "$@" >>"$RESULTS" <<'EOF'
import json, sys
a = sys.argv[1:]
num = lambda s, f=int: (f(s) if s not in ("", "null", None) else None)
print(json.dumps({"tool": a[0], "run": int(a[1]), "rc": int(a[2]), "wall_s": num(a[3], float),
                  "maxrss_kb": num(a[4]), "cpu_s": num(a[5], float), "packets": num(a[6]),
                  "bytes": num(a[7]), "records": num(a[8]), "note": a[9]}))
EOF
}

free_udp_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

check_total() {  # check_total TOOL RUN BYTES PACKETS
    local d=$(( $3 - GT_BYTES ))
    log "  $1 run $2: wall=${T_WALL}s rss=${T_RSS}KiB cpu=${T_CPU}s packets=$4 bytes=$3 (delta vs ground truth: $d)"
}

log "warming page cache"
cat "$PCAP" >/dev/null
# Other work on the machine skews every figure: wait for a quiet one.
waited=0
while ! awk -v m="$QUIET_LOAD" '{exit !($1 < m)}' /proc/loadavg && [ "$waited" -lt "$QUIET_WAIT" ]; do
    log "waiting for a quiet machine (load average $(cut -d' ' -f1 /proc/loadavg), want < $QUIET_LOAD)"
    sleep 15; waited=$((waited + 15))
done
# The machine must be quiet: the load average before the timed runs goes
# into the report.
export BENCH_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
log "load average before the runs: $BENCH_LOADAVG"

if [ "$ONLY_LIVE" != 1 ]; then  # (c1) to (d): the replay rows
# ---------------------------------------------------------------- (c1) agent
AGENT_FAILED=0
if [ -z "$AGENT_NOTE" ]; then
    for i in $(seq 1 "$RUNS"); do
        jf=$WORK/agent.$i.jsonl
        timed "agent.$i" "$AGENT_BIN" replay --pcap "$PCAP" --flows-out "$jf"
        if [ "$T_RC" != 0 ]; then
            AGENT_NOTE="simpul-agent replay exited with status $T_RC (see bench/out/logs/agent.$i.err)"
            log "WARNING: $AGENT_NOTE -- skipping the agent, continuing with the peers"
            tail -n 10 "$LOGS/agent.$i.err" | sed 's/^/    | /' >&2
            emit agent "$i" "$T_RC" "$T_WALL" "$T_RSS" "$T_CPU" "" "" "" "$AGENT_NOTE"
            break
        fi
        read -r A_PK A_BY A_REC A_ERR A_UP A_DOWN < <(python3 - "$jf" <<'EOF'
import json, sys
pk = by = n = bad = up = down = 0
try:
    with open(sys.argv[1]) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
                u, d = int(r["bytes_up"]), int(r["bytes_down"])
                up += u
                down += d
                by += u + d
                pk += int(r["packets_up"]) + int(r["packets_down"])
                n += 1
            except Exception:
                bad += 1
    print(pk, by, n, bad, up, down)
except OSError:
    print("0 0 0 -1 0 0")
EOF
)
        note=""
        [ "$A_ERR" != 0 ] && note="flows-out unreadable or $A_ERR malformed lines"
        check_total agent "$i" "$A_BY" "$A_PK"
        sed 's/^/    agent stdout | /' "$LOGS/agent.$i.out" | head -n 20 >&2
        emit agent "$i" 0 "$T_WALL" "$T_RSS" "$T_CPU" "$A_PK" "$A_BY" "$A_REC" "$note"
        printf '{"bytes_up": %s, "bytes_down": %s}\n' "$A_UP" "$A_DOWN" >"$OUT/replay-agent-split.json"
        rm -f "$jf"
    done
    if [ -z "$AGENT_NOTE" ]; then
        # One extra, untimed run sampling the process tree: separates anonymous memory from the
        # file-backed pages of the mmap'ed pcap, which /usr/bin/time's max RSS lumps together.
        log "agent: untimed memory-sampling run"
        timeout -k 5 "$TOOL_TIMEOUT" python3 "$BENCH/lib/peak_rss.py" --json "$OUT/replay-agent-mem.json" -- \
            "$AGENT_BIN" replay --pcap "$PCAP" --flows-out "$WORK/agent.mem.jsonl" >/dev/null 2>&1 \
            || log "  memory-sampling run failed (ignored)"
        rm -f "$WORK/agent.mem.jsonl"
    fi
else
    emit agent 0 -1 "" "" "" "" "" "" "$AGENT_NOTE"
fi
[ -n "$AGENT_NOTE" ] && AGENT_FAILED=1

# ---------------------------------------------------------------- (c1a) agent, sharded flows
if [ -z "$AGENT_NOTE" ] && [ "$AGENT_SHARDS" -gt 1 ] 2>/dev/null; then
    for i in $(seq 1 "$RUNS"); do
        jf=$WORK/agent-sharded.$i.jsonl
        timed "agent-sharded.$i" env SIMPUL_REPLAY_FLOW_THREADS="$AGENT_SHARDS" "$AGENT_BIN" replay --pcap "$PCAP" --flows-out "$jf"
        read -r A_PK A_BY A_REC < <(python3 -c '
import json, sys
pk = by = n = 0
try:
    for line in open(sys.argv[1]):
        if line.strip():
            r = json.loads(line); by += r["bytes_up"] + r["bytes_down"]; pk += r["packets_up"] + r["packets_down"]; n += 1
except (OSError, ValueError, KeyError):
    pass
print(pk, by, n)' "$jf")
        note=""
        [ "$T_RC" != 0 ] && note="exited with status $T_RC"
        check_total "agent-sharded" "$i" "$A_BY" "$A_PK"
        emit agent_sharded "$i" "$T_RC" "$T_WALL" "$T_RSS" "$T_CPU" "$A_PK" "$A_BY" "$A_REC" "$note"
        rm -f "$jf"
    done
fi

# ---------------------------------------------------------------- (c1b) the floor
# The same file walked by a program that does nothing else (see pcap_floor.c):
# its whole-process wall time bounds any replay of this file on this machine.
if [ "$FLOOR" = 1 ]; then
    if gcc -O2 -pthread -o "$WORK/pcap_floor" "$BENCH/lib/pcap_floor.c" 2>"$LOGS/pcap_floor-build.log"; then
        for mode in read mmap; do
            for th in 1 2; do
                for i in $(seq 1 "$RUNS"); do
                    timed "floor-$mode-$th.$i" "$WORK/pcap_floor" "$PCAP" "$th" "$mode"
                    read -r F_PK F_BY < <(sed -n 's/^packets=\([0-9]*\) ip_bytes=\([0-9]*\).*/\1 \2/p' "$LOGS/floor-$mode-$th.$i.out")
                    note=""
                    [ "$T_RC" != 0 ] && note="pcap_floor exited with status $T_RC"
                    check_total "floor-$mode-$th" "$i" "${F_BY:-0}" "${F_PK:-0}"
                    emit "floor_${mode}_$th" "$i" "$T_RC" "$T_WALL" "$T_RSS" "$T_CPU" "${F_PK:-}" "${F_BY:-}" "" "$note"
                done
            done
        done
    else
        log "WARNING: cannot build bench/lib/pcap_floor.c (see $LOGS/pcap_floor-build.log); floor rows skipped"
    fi
fi

# ---------------------------------------------------------------- (c2) softflowd -> nfcapd
for i in $(seq 1 "$RUNS"); do
    d=$WORK/nfcapd.$i
    mkdir -p "$d"
    port=$(free_udp_port)
    timeout -k 5 $((TOOL_TIMEOUT + 60)) nfcapd -w "$d" -p "$port" -b 127.0.0.1 -B 16777216 \
        >"$LOGS/nfcapd.$i.log" 2>&1 &
    NFCAPD_PID=$!
    for _ in $(seq 1 50); do
        ss -Hlun "sport = :$port" 2>/dev/null | grep -q . && break
        sleep 0.1
    done
    timed "softflowd.$i" softflowd -d -c none -p "$WORK/softflowd.pid" -v 9 -n "127.0.0.1:$port" -r "$PCAP"
    sleep 1   # let nfcapd drain its socket buffer
    kill -TERM "$NFCAPD_PID" 2>/dev/null
    wait "$NFCAPD_PID" 2>/dev/null
    NFCAPD_PID=""
    timeout 60 nfdump -R "$d" -I >"$LOGS/nfdump.$i.txt" 2>&1
    read -r S_PK S_BY S_REC < <(awk -F': ' '/^Packets:/{p=$2} /^Bytes:/{b=$2} /^Flows:/{f=$2} END{print p+0, b+0, f+0}' "$LOGS/nfdump.$i.txt")
    note=""
    [ "$T_RC" != 0 ] && note="softflowd exited with status $T_RC"
    [ "$S_PK" != "$GT_PKTS" ] && note="${note:+$note; }collector saw $S_PK of $GT_PKTS packets (export loss?)"
    check_total softflowd "$i" "$S_BY" "$S_PK"
    emit softflowd "$i" "$T_RC" "$T_WALL" "$T_RSS" "$T_CPU" "$S_PK" "$S_BY" "$S_REC" "$note"
    rm -rf "$d"
done

# ---------------------------------------------------------------- (c3) pmacctd
for i in $(seq 1 "$RUNS"); do
    csv=$WORK/pmacct.$i.csv
    conf=$WORK/pmacctd.$i.conf
    {
        echo "daemonize: false"
        echo "pcap_savefile: $PCAP"
        echo "pcap_savefile_wait: false"
        echo "plugins: print"
        echo "aggregate: src_host,dst_host,src_port,dst_port,proto"
        echo "plugin_buffer_size: 10240000"
        if [ "$PMACCT_QUEUE" = pipe ]; then
            echo "plugin_pipe_size: 1024000000"
        else
            echo "plugin_pipe_zmq: true"
        fi
        echo "print_output: csv"
        echo "print_output_file: $csv"
        echo "print_refresh_time: 86400"
    } >"$conf"
    cp "$conf" "$LOGS/pmacctd.conf"
    timed "pmacctd.$i" pmacctd -f "$conf"
    read -r P_PK P_BY P_REC < <(awk -F, 'NR==1{for(k=1;k<=NF;k++){if($k=="PACKETS")pc=k; if($k=="BYTES")bc=k}; next}
        {p+=$pc; b+=$bc; n++} END{printf "%d %d %d\n", p, b, n}' "$csv" 2>/dev/null || echo "0 0 0")
    note=""
    [ "$T_RC" != 0 ] && note="pmacctd exited with status $T_RC"
    [ "$P_PK" != "$GT_PKTS" ] && note="${note:+$note; }pmacct accounted $P_PK of $GT_PKTS packets (queue loss?)"
    check_total pmacctd "$i" "$P_BY" "$P_PK"
    emit pmacctd "$i" "$T_RC" "$T_WALL" "$T_RSS" "$T_CPU" "$P_PK" "$P_BY" "$P_REC" "$note"
    rm -f "$csv"
done

# ---------------------------------------------------------------- (d) agent idle RSS
idle_na() {
    log "idle RSS: n/a ($1)"
    python3 -c 'import json,sys; print(json.dumps({"status": "n/a", "reason": sys.argv[1]}))' "$1" >"$IDLE_JSON"
}
measure_idle() {
    [ "$BUILD_FAILED" = 1 ] && { idle_na "cargo build failed; not measuring a stale binary"; return; }
    [ -x "$AGENT_BIN" ] || { idle_na "agent binary not found"; return; }
    NS_A=simpul-bench-a-$$
    NS_B=simpul-bench-b-$$
    local ifa=veth-sb0 ifb=veth-sb1 cfg=$WORK/idle.toml
    if ! { ip netns add "$NS_A" && ip netns add "$NS_B" &&
           ip link add "$ifa" netns "$NS_A" type veth peer name "$ifb" netns "$NS_B"; } 2>"$LOGS/idle-netns.err"; then
        idle_na "could not create network namespaces: $(head -c 200 "$LOGS/idle-netns.err")"; return
    fi
    local ns
    for ns in "$NS_A" "$NS_B"; do   # no IPv6 => no DAD/router solicitations: the link stays silent
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null
    done
    ip -n "$NS_A" link set lo up; ip -n "$NS_B" link set lo up
    ip -n "$NS_A" link set "$ifa" up; ip -n "$NS_B" link set "$ifb" up
    cat >"$cfg" <<EOF
[agent]
id = "bench"

[capture]
interfaces = ["$ifa"]

[output]
flows_jsonl = "$WORK/idle-flows.jsonl"
EOF
    cp "$cfg" "$LOGS/idle.toml"
    # `ip netns exec` execs the agent, so $! is the agent's own PID.
    ip netns exec "$NS_A" "$AGENT_BIN" run --config "$cfg" >"$LOGS/idle-agent.out" 2>"$LOGS/idle-agent.err" &
    IDLE_PID=$!
    sleep "$IDLE_SECONDS"
    if ! kill -0 "$IDLE_PID" 2>/dev/null; then
        wait "$IDLE_PID"; local rc=$?
        IDLE_PID=""
        idle_na "simpul-agent run exited with status $rc within ${IDLE_SECONDS}s (see bench/out/logs/idle-agent.err)"
        return
    fi
    local rss hwm exe
    exe=$(readlink "/proc/$IDLE_PID/exe" 2>/dev/null)
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$IDLE_PID/status" 2>/dev/null)
    hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$IDLE_PID/status" 2>/dev/null)
    local thr
    thr=$(awk '/^Threads:/{print $2}' "/proc/$IDLE_PID/status" 2>/dev/null)
    kill -TERM "$IDLE_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$IDLE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$IDLE_PID" 2>/dev/null
    wait "$IDLE_PID" 2>/dev/null
    IDLE_PID=""
    ip netns del "$NS_A"; ip netns del "$NS_B"; NS_A=""; NS_B=""
    if [ -z "$rss" ]; then idle_na "could not read /proc/PID/status"; return; fi
    log "idle RSS: VmRSS=${rss} KiB VmHWM=${hwm} KiB threads=${thr} (exe=$exe)"
    python3 -c 'import json,sys; print(json.dumps({"status": "ok", "vmrss_kb": int(sys.argv[1]), "vmhwm_kb": int(sys.argv[2] or 0),
        "threads": int(sys.argv[3] or 0), "seconds": float(sys.argv[4])}))' "$rss" "$hwm" "$thr" "$IDLE_SECONDS" >"$IDLE_JSON"
}
measure_idle

fi  # ONLY_LIVE
# ---------------------------------------------------------------- (d2) live capture
LIVE_JSONL=$OUT/live-results.jsonl
LIVE_MD=$OUT/live-section.md
ticks_of() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null; }
# live_run TOOL MODE [THREADS] -> one JSON line in $LIVE_JSONL
#   MODE rate: tcpreplay --pps LIVE_PPS for LIVE_SECONDS; topspeed: --topspeed, the whole pcap
#   THREADS: the agent's ring threads [LIVE_THREADS]; other than that, its row is agent_tTHREADS
live_run() {
    local tool=$1 mode=$2 threads=${3:-$LIVE_THREADS} ifa=veth-lv0 ifb=veth-lv1 ns label=$1
    NS_A=simpul-live-a-$$; NS_B=simpul-live-b-$$
    ip netns add "$NS_A" && ip netns add "$NS_B" &&
        ip link add "$ifa" netns "$NS_A" type veth peer name "$ifb" netns "$NS_B" || return 1
    for ns in "$NS_A" "$NS_B"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null
        ip -n "$ns" link set lo up
    done
    ip -n "$NS_A" link set "$ifa" up; ip -n "$NS_B" link set "$ifb" up
    [ "$tool" = agent ] && [ "$threads" != "$LIVE_THREADS" ] && label=agent_t$threads
    local tag=live.$label.$mode
    if [ "$tool" = agent ]; then
        printf '[agent]\nid = "bench"\nstate_dir = "%s"\n\n[capture]\ninterfaces = ["%s"]\nthreads = %s\n\n[output]\nflows_jsonl = "%s"\n' \
            "$WORK/$tag-state" "$ifb" "$threads" "$WORK/$tag.jsonl" >"$WORK/$tag.toml"
        # `ip netns exec` execs the tool, so $! is the tool's own PID.
        ip netns exec "$NS_B" "$AGENT_BIN" run --config "$WORK/$tag.toml" >"$LOGS/$tag.out" 2>"$LOGS/$tag.err" &
    else
        ip netns exec "$NS_B" softflowd -d -c "$WORK/$tag.ctl" -v 9 -n 127.0.0.1:9 -i "$ifb" \
            >"$LOGS/$tag.out" 2>"$LOGS/$tag.err" &
    fi
    LIVE_PID=$!
    sleep 2
    if ! kill -0 "$LIVE_PID" 2>/dev/null; then
        log "  $tag: $tool exited early (see $LOGS/$tag.err)"; LIVE_PID=""
        ip netns del "$NS_A"; ip netns del "$NS_B"; NS_A=""; NS_B=""; return 1
    fi
    local args
    if [ "$mode" = rate ]; then
        args=(--pps="$LIVE_PPS" --limit=$((LIVE_PPS * LIVE_SECONDS)))
    else
        args=(--topspeed)
    fi
    local t0 s0 t1 s1 rss hwm load
    t0=$(ticks_of "$LIVE_PID"); s0=$(date +%s.%N)
    ip netns exec "$NS_A" tcpreplay -q -i "$ifa" "${args[@]}" "$PCAP" >"$LOGS/$tag.tcpreplay" 2>&1
    sleep 1   # the last block timeout / libpcap buffer
    t1=$(ticks_of "$LIVE_PID"); s1=$(date +%s.%N)
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$LIVE_PID/status")
    hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$LIVE_PID/status")
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    if [ "$tool" = softflowd ]; then
        softflowctl -c "$WORK/$tag.ctl" statistics >"$LOGS/$tag.stats" 2>&1
        softflowctl -c "$WORK/$tag.ctl" shutdown >/dev/null 2>&1
    fi
    kill -TERM "$LIVE_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$LIVE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$LIVE_PID" 2>/dev/null; wait "$LIVE_PID" 2>/dev/null; LIVE_PID=""
    ip netns del "$NS_A"; ip netns del "$NS_B"; NS_A=""; NS_B=""
    python3 "$BENCH/lib/live_result.py" "$label" "$mode" "$t0" "$t1" "$s0" "$s1" "$rss" "$hwm" \
        "$LOGS/$tag.tcpreplay" "$LOGS/$tag.err" "$LOGS/$tag.stats" "$load" >>"$LIVE_JSONL"
    log "  $tag: $(tail -n 1 "$LIVE_JSONL")"
}
measure_live() {
    : >"$LIVE_JSONL"
    [ "$LIVE" = 1 ] || { log "LIVE=0: live capture skipped"; return; }
    command -v tcpreplay >/dev/null || { log "live capture: tcpreplay missing, skipped"; return; }
    [ "$BUILD_FAILED" = 1 ] && { log "live capture: build failed, skipped"; return; }
    [ -x "$AGENT_BIN" ] || { log "live capture: no agent binary, skipped"; return; }
    log "live capture: tcpreplay at $LIVE_PPS pps for ${LIVE_SECONDS}s, then --topspeed"
    for mode in rate topspeed; do
        for tool in agent softflowd; do
            live_run "$tool" "$mode" || log "  live $tool $mode failed"
        done
        if [ "$LIVE_SHARDED" -gt 1 ] 2>/dev/null && [ "$LIVE_SHARDED" != "$LIVE_THREADS" ]; then
            live_run agent "$mode" "$LIVE_SHARDED" || log "  live agent ($LIVE_SHARDED threads) $mode failed"
        fi
    done
    python3 "$BENCH/lib/live_result.py" --report "$LIVE_JSONL" "$LIVE_PPS" "$LIVE_SECONDS" >"$LIVE_MD"
    if [ "$WRITE_MD" = 1 ]; then
        python3 "$BENCH/lib/write_section.py" agent-live "$LIVE_MD" || log "write_section agent-live failed"
    fi
}
measure_live
if [ "$ONLY_LIVE" = 1 ]; then
    log "ONLY_LIVE=1: live rows in $LIVE_MD; the replay section is left as it was"
    exit 0
fi

# ---------------------------------------------------------------- (e) report
python3 "$BENCH/lib/replay_report.py" --meta "$META" --results "$RESULTS" --idle "$IDLE_JSON" \
    --agent-mem "$OUT/replay-agent-mem.json" --agent-split "$OUT/replay-agent-split.json" \
    --pmacct-queue "$PMACCT_QUEUE" --runs "$RUNS" --md "$REPORT_MD"
rep_rc=$?
if [ "$WRITE_MD" = 1 ]; then
    python3 "$BENCH/lib/write_section.py" agent-replay "$REPORT_MD" || die "write_section failed"
else
    log "WRITE_MD=0: report left in $REPORT_MD"
fi

if [ "$rep_rc" != 0 ]; then
    log "RESULT: a byte-total check FAILED (see above)"
    exit 1
fi
if [ "$AGENT_FAILED" = 1 ]; then
    log "RESULT: peers measured; agent n/a ($AGENT_NOTE)"
    [ "$STRICT" = 1 ] && exit 1
fi
exit 0
