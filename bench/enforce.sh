#!/usr/bin/env bash
# Enforcement benchmark (issues 4, 12), in throwaway network namespaces:
#  1. shaping accuracy per rate: the real `simpul-agent policy apply` (tc HTB +
#     nftables) in a router namespace between a client and a server namespace,
#     iperf3 TCP download and upload through it at each unit rate, once per
#     agent offload mode: the router's veths set up as a router's NICs run
#     (GRO on: frames from the wire merged into packets of up to 64 KiB) and
#     the endpoints sending wire-sized frames, then the agent turning
#     GRO/GSO/TSO off on them (`[enforce] offloads = "off"`), keeping them
#     ("keep"), or turning them off only while a class is too slow for them
#     ("auto", the default: one running agent across the rates);
#  2. policy apply time for one agency of 500 units: first apply, identical
#     re-apply, one unit's rate changed, every rate changed — the rate-only
#     changes in place (`tc class change`) and, with `--rebuild`, by
#     rebuilding the trees; the same rate changes in a running agent (`run`
#     with a policy file: only the classes whose rates changed); batch sizes.
# Writes the "enforce-shaping" and "enforce-apply" sections of BENCHMARKS.md.
# Needs root (namespaces, tc, nft), iperf3, python3.
#
# Knobs: RATES (Mbit/s, "1 10 100 1000"), RUNS (3 per rate and direction),
# SECS (4 measured seconds per iperf3 test), OMIT (2 s not counted first);
# below LOW_RATE (5000000 bit/s) one test per direction, LOW_OMIT (16) s
# omitted, then RUNS windows of LOW_SECS (5) s;
# UNITS (500), APPLY_RUNS (5), MODES ("off keep auto": the agent turns the
# router's offloads off / keeps them / decides per plan), ROUTER_GRO (on: GRO on the router's veths, as a
# NIC's default; off: the veth default), ENDPOINT_OFFLOADS (off: TSO/GSO off
# on the client and server veths, a wire's frames; on: veth defaults, whose
# 64 KiB packets cross to the router whatever its GRO), SKIP_SHAPING=1, SKIP_APPLY=1, SKIP_BUILD=1,
# WRITE_MD=0 (sections left in $OUT only), OUT (bench/out/enforce),
# REPORT_ONLY=1 (rewrite the sections from the last run's results).
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=${RATES:-"1 10 100 1000"}
RUNS=${RUNS:-3}
SECS=${SECS:-4}
OMIT=${OMIT:-2}
LOW_RATE=${LOW_RATE:-5000000}
LOW_OMIT=${LOW_OMIT:-16}
LOW_SECS=${LOW_SECS:-5}
UNITS=${UNITS:-500}
APPLY_RUNS=${APPLY_RUNS:-5}
OUT=${OUT:-bench/out/enforce}
ENDPOINT_OFFLOADS=${ENDPOINT_OFFLOADS:-off}
ROUTER_GRO=${ROUTER_GRO:-on}
MODES=${MODES:-"off keep auto"}
WRITE_MD=${WRITE_MD:-1}
LIB=bench/lib/enforce_bench.py
AGENT=$PWD/target/release/simpul-agent

log() { printf '[enforce %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/simpul-enforce-bench.XXXXXX)
P=sbe$$                      # namespace prefix: unique per run
# shellcheck source=bench/lib/netns.sh
. bench/lib/netns.sh  # the scripts run from the repository root

# ms since the epoch, µs resolution.
now_ms() { local t=${EPOCHREALTIME/./}; echo "$((t / 1000)).$(printf '%03d' $((t % 1000)))"; }

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=false
[ -n "$(git status --porcelain -- agent proto 2>/dev/null)" ] && dirty=true
meta_common() {   # JSON fields shared by both sections
    python3 - "$commit" "$dirty" "$1" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, os, platform, subprocess, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
print(json.dumps({"commit": sys.argv[1], "dirty": sys.argv[2] == "true", "cores": os.cpu_count(), "cpu": cpu,
    "mem": f"{mem / 1048576:.1f} GiB RAM", "kernel": platform.release(),
    "date": subprocess.run(["date", "-u", "+%Y-%m-%d %H:%M UTC"], capture_output=True, text=True).stdout.strip(),
    "load_before": sys.argv[3], "load_after": sys.argv[4]}))
PY
}

# ======================================================================
# 1. Shaping accuracy
# ======================================================================
shaping() {
    local load_before; load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    : >"$OUT/shaping.jsonl"
    : >"$OUT/shaping-modes.jsonl"
    local mode
    for mode in $MODES; do
        shaping_mode "$mode"
    done
    meta_common "$load_before" | python3 -c '
import json, sys
m = json.load(sys.stdin)
a = sys.argv[1:]
m.update(secs=int(a[0]), omit=int(a[1]), runs=int(a[2]), low_rate=int(a[3]), low_omit=int(a[4]), low_secs=int(a[5]),
         modes=[json.loads(l) for l in open(a[6]) if l.strip()])
print(json.dumps(m))' "$SECS" "$OMIT" "$RUNS" "$LOW_RATE" "$LOW_OMIT" "$LOW_SECS" "$OUT/shaping-modes.jsonl" \
        >"$OUT/shaping-meta.json"

    python3 "$LIB" report-shaping "$OUT/shaping-meta.json" "$OUT/shaping.jsonl" "$OUT/shaping-section.md"
    cat "$OUT/shaping-section.md"
    [ "$WRITE_MD" = 1 ] && python3 bench/lib/write_section.py enforce-shaping "$OUT/shaping-section.md"
    return 0
}

# One sweep of $RATES with the agent's offload mode $1 (off | keep | auto), in
# namespaces of its own; results appended to $OUT/shaping.jsonl, what the
# sweep saw to $OUT/shaping-modes.jsonl.
shaping_mode() {
    local mode=$1
    local C=$P-c R=$P-r S=$P-s
    newns "$C"; newns "$R"; newns "$S"
    ip link add eth0 netns "$C" type veth peer name lan0 netns "$R"
    ip link add wan0 netns "$R" type veth peer name eth0 netns "$S"
    ip -n "$C" addr add 10.1.1.2/24 dev eth0
    ip -n "$R" addr add 10.1.1.1/24 dev lan0
    ip -n "$R" addr add 198.51.100.1/24 dev wan0
    ip -n "$S" addr add 198.51.100.10/24 dev eth0
    for x in "$C eth0" "$R lan0" "$R wan0" "$S eth0"; do set -- $x; ip -n "$1" link set "$2" up; done
    ip -n "$C" route add default via 10.1.1.1
    ip -n "$S" route add 10.0.0.0/8 via 198.51.100.1
    command -v ethtool >/dev/null || die "ethtool not found (scripts/setup.sh installs it)"
    # A wire carries frames: the hosts segment (veth would otherwise hand
    # their 64 KiB TSO/GSO packets to the router whole, whatever the
    # router's GRO). The router's veths merge them again with GRO, as a
    # router's NICs do by default (veth's default is GRO off; veth merges
    # only what comes from a peer without TSO).
    local offload_note="" d
    if [ "$ENDPOINT_OFFLOADS" = off ]; then
        ip netns exec "$C" ethtool -K eth0 tso off gso off
        ip netns exec "$S" ethtool -K eth0 tso off gso off
        offload_note="TSO and GSO off on the client's and server's veth (a wire's frames)"
    else
        offload_note="veth defaults on the client and server (TSO/GSO on: their 64 KiB packets reach the router whole)"
    fi
    if [ "$ROUTER_GRO" = on ]; then
        for d in lan0 wan0; do ip netns exec "$R" ethtool -K "$d" gro on; done
        offload_note+="; GRO on on the router's veths (a NIC's default)"
    else
        offload_note+="; GRO off on the router's veths (veth's default)"
    fi
    ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
    # auto runs the agent (`run`), which captures: on an idle interface.
    if [ "$mode" = auto ]; then
        ip -n "$R" link add cap0 type veth peer name cap1
        ip -n "$R" link set cap0 up
        ip -n "$R" link set cap1 up
    fi
    router_features() {
        ip netns exec "$R" sh -c 'for d in lan0 wan0; do printf "%s: " $d; ethtool -k $d | awk -F": " "/^(generic-receive-offload|tcp-segmentation-offload|generic-segmentation-offload):/ {printf \"%s=%s \", \$1, \$2}"; echo; done'
    }
    local features_before; features_before=$(router_features)
    log "shaping [$mode]: router before the agent: $features_before"

    # -J: the server's own intervals (the receiver's, for upload) reach the
    # client with --get-server-output.
    ip netns exec "$S" iperf3 -s -J -p 5201 >"$OUT/logs/iperf3-server-$mode.log" 2>&1 &
    PIDS+=($!)
    local i
    for i in $(seq 1 50); do
        ip netns exec "$S" ss -Hltn 'sport = :5201' | grep -q 5201 && break
        sleep 0.1
    done

    python3 "$LIB" shaping-config "$WORK" "$mode" >"$WORK/shaping-agent.toml"
    python3 "$LIB" shaping-inventory >"$WORK/shaping-inventory.toml"
    cp "$WORK/shaping-agent.toml" "$OUT/logs/shaping-agent-$mode.toml"
    cp "$WORK/shaping-inventory.toml" "$OUT/logs/"

    # HTB's own count of link-layer bytes and packets (segments, for a
    # merged packet) sent by unit a's class on DEV, with the time of the
    # reading (ms), and what its leaf holds: bytes and packets (skbs: a
    # merged packet counts once).
    htb_sample() {
        local a b sent queued
        a=$(now_ms)
        sent=$(ip netns exec "$R" tc -s class show dev "$1" classid 1:10 | awk '/Sent/ {print $2, $4; exit}')
        b=$(now_ms)
        queued=$(ip netns exec "$R" tc -s -j qdisc show dev "$1" parent 1:10 |
            python3 -c 'import json, sys; q = (json.load(sys.stdin) or [{}])[0]; print(q.get("backlog", 0), q.get("qlen", 0))' 2>/dev/null || true)
        [ -n "$sent" ] || sent="0 0"
        [ -n "$queued" ] || queued="0 0"
        set -- $sent $queued
        echo "$1 $(python3 -c "print(($a + $b) / 2)") $2 $3 $4"
    }
    # One iperf3 test of `windows` measurement windows of `wsecs` seconds
    # after `omit` seconds and one more (dropped, see record in $LIB); prints
    # one JSON line per window. With a policy in force, the HTB class counter
    # is read at each window edge.
    iperf_test() {   # rate_bps dir first_run omit windows wsecs
        local rate=$1 dir=$2 run=$3 omit=$4 windows=$5 wsecs=$6 f rc=0 pid dev blk k
        local secs=$((1 + windows * wsecs)) samples="" t_start
        blk=$(python3 "$LIB" blksize "$rate")
        f="$OUT/logs/iperf-$mode-$rate-$dir-$run.json"
        local rev=(); [ "$dir" = download ] && rev=(-R)
        dev=wan0; [ "$dir" = download ] && dev=lan0
        t_start=$(now_ms)
        timeout $((secs + omit + 30)) ip netns exec "$C" iperf3 -c 198.51.100.10 -p 5201 \
            -t "$secs" -O "$omit" -l "$blk" -J --get-server-output "${rev[@]}" >"$f" 2>"$f.err" &
        pid=$!
        if [ "$rate" != 0 ]; then
            # Window edges: about omit + 1 s + k × wsecs after the start (the
            # connection set-up adds a few ms; each reading carries its own
            # time); the last one just before the sender stops.
            local edge
            for k in $(seq 0 "$windows"); do
                edge=0.05; [ "$k" = "$windows" ] && edge=-0.2
                sleep "$(python3 -c "import time; print(max(0, ($t_start + 1000 * ($omit + 1 + $k * $wsecs + $edge)) / 1000 - time.time()))")"
                samples+="$(htb_sample "$dev");"
            done
        fi
        wait "$pid" || rc=$?
        [ "$rc" = 0 ] || log "iperf3 exit status $rc (see $f.err)"
        python3 "$LIB" record "$f" "$rate" "$dir" "$run" "$windows" "$wsecs" "$samples" "$mode"
    }

    # Baseline: what the unshaped path carries with the router's offloads
    # as the agent will leave them (mode off: set here as the agent sets
    # them, then back to the router's defaults for the agent to change).
    log "shaping [$mode]: unshaped baseline"
    if [ "$mode" = off ]; then
        for d in lan0 wan0; do ip netns exec "$R" ethtool -K "$d" gro off gso off tso off; done
    fi
    local bd bu
    bd=$(iperf_test 0 download 0 1 1 2 | python3 -c 'import json,sys; print(json.load(sys.stdin).get("goodput_bps") or 0)')
    bu=$(iperf_test 0 upload 0 1 1 2 | python3 -c 'import json,sys; print(json.load(sys.stdin).get("goodput_bps") or 0)')
    log "shaping [$mode]: unshaped goodput download $bd, upload $bu bit/s"
    if [ "$mode" = off ]; then
        for d in lan0 wan0; do ip netns exec "$R" ethtool -K "$d" gso on tso on; done
        [ "$ROUTER_GRO" = on ] && for d in lan0 wan0; do ip netns exec "$R" ethtool -K "$d" gro on; done
        [ "$(router_features)" = "$features_before" ] || die "router offloads not restored: $(router_features)"
    fi

    local rates_bps=() skipped=() version=0 leaf="" leaf_note="" features_after="" agent_log=""
    local m rate pol out run_pid="" run_log="$OUT/logs/run-$mode.err" per_rate=""
    for m in $RATES; do
        rate=$(python3 -c "print(int(float('$m') * 1000000))")
        if python3 -c "import sys; sys.exit(0 if min($bd, $bu) >= 1.2 * $rate * 1448 / 1514 else 1)"; then
            rates_bps+=("$rate")
        else
            log "shaping [$mode]: $m Mbit/s skipped: unshaped path too slow"
            skipped+=("$rate")
            continue
        fi
        version=$((version + 1))
        pol="$WORK/shaping-$rate.toml"
        python3 "$LIB" shaping-policy "$rate" "$version" >"$pol"
        cp "$pol" "$OUT/logs/"
        local err="$OUT/logs/apply-$mode-$rate.err"
        if [ "$mode" = auto ]; then
            # One running agent: each rate is an edit of its policy file.
            cp "$pol" "$WORK/shaping-run-policy.toml.tmp"
            mv -f "$WORK/shaping-run-policy.toml.tmp" "$WORK/shaping-run-policy.toml"
            if [ -z "$run_pid" ]; then
                ip netns exec "$R" "$AGENT" run --config "$WORK/shaping-agent.toml" 2>"$run_log" &
                run_pid=$!
                PIDS+=("$run_pid")
            fi
            out=""
            for i in $(seq 1 300); do
                out=$(python3 "$LIB" run-applied "$run_log")
                echo "$out" | grep -q "\"version\": $version," && break
                kill -0 "$run_pid" 2>/dev/null || die "agent run exited: $(tail -3 "$run_log")"
                out=""
                sleep 0.1
            done
            [ -n "$out" ] || die "agent run did not apply version $version within 30 s: $(tail -3 "$run_log")"
            sleep 0.5   # the offload changes follow the tc batch
            cp "$run_log" "$err"
        elif ! out=$(ip netns exec "$R" "$AGENT" policy apply "$pol" --config "$WORK/shaping-agent.toml" 2>"$err"); then
            log "shaping [$mode]: policy apply failed at $m Mbit/s: $(tail -3 "$err")"
            for dir in download upload; do
                echo "{\"mode\": \"$mode\", \"rate_bps\": $rate, \"dir\": \"$dir\", \"run\": 0, \"error\": \"policy apply failed\"}" >>"$OUT/shaping.jsonl"
            done
            continue
        fi
        log "shaping [$mode]: $m Mbit/s: $out"
        if [ -z "$leaf" ]; then
            leaf=$(ip netns exec "$R" tc qdisc show dev lan0 | awk '$4 == "parent" && $5 == "1:10" {print $2; exit}')
            leaf_note=$(grep -o 'leaf qdisc: [^"]*' "$err" | head -1 || true)
            grep -q 'lacks better' "$err" &&
                leaf_note="this kernel has none of fq_codel, CAKE, SFQ; the agent logs the fallback"
            [ -n "$leaf_note" ] || leaf_note="detected by the agent"
            features_after=$(router_features)
            agent_log=$(grep -o 'offloads\? turned off[^"]*' "$err" | head -1 || true)
            log "shaping [$mode]: router after the agent: $features_after ${agent_log:+(agent: $agent_log)}"
        fi
        ip netns exec "$R" sh -c 'tc qdisc show dev lan0; tc class show dev lan0; tc qdisc show dev wan0; tc class show dev wan0' \
            >"$OUT/logs/tc-$mode-$rate.txt"
        per_rate+="$m Mbit/s: $(router_features | tr '\n' ' ')"$'\n'
        log "shaping [$mode]: router at $m Mbit/s: $(router_features | tr '\n' ' ')"
        local dir run
        if [ "$rate" -lt "$LOW_RATE" ]; then
            # TCP at such a rate takes seconds to settle (slow start overshoots
            # the small queue, losses, timeouts): one long test per direction,
            # RUNS windows after a long omit.
            for dir in download upload; do
                iperf_test "$rate" "$dir" 1 "$LOW_OMIT" "$RUNS" "$LOW_SECS" | tee -a "$OUT/shaping.jsonl" |
                    while read -r line; do log "shaping [$mode]: $m Mbit/s $dir: $line"; done
            done
        else
            for run in $(seq 1 "$RUNS"); do
                for dir in download upload; do
                    iperf_test "$rate" "$dir" "$run" "$OMIT" 1 "$SECS" | tee -a "$OUT/shaping.jsonl" |
                        while read -r line; do log "shaping [$mode]: $m Mbit/s $dir: $line"; done
                done
            done
        fi
    done

    local rates_json skipped_json
    rates_json=$(printf '%s\n' "${rates_bps[@]}" | python3 -c 'import json,sys; print(json.dumps([int(l) for l in sys.stdin if l.strip()]))')
    skipped_json=$(printf '%s\n' "${skipped[@]}" | python3 -c 'import json,sys; print(json.dumps([int(l) for l in sys.stdin if l.strip()]))')
    python3 -c '
import json, sys
a = sys.argv[1:]
print(json.dumps(dict(mode=a[0], rates_bps=json.loads(a[1]) + json.loads(a[2]), skipped=json.loads(a[2]),
    leaf=a[3] or "?", leaf_note=a[4], baseline={"secs": 2, "download_bps": float(a[5]), "upload_bps": float(a[6])},
    offloads=a[7], features_before=a[8], features_after=a[9], agent_log=a[10], features_per_rate=a[11])))' \
        "$mode" "$rates_json" "$skipped_json" "$leaf" "$leaf_note" "$bd" "$bu" "$offload_note" \
        "$features_before" "$features_after" "$agent_log" "$per_rate" >>"$OUT/shaping-modes.jsonl"

    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=()
    for ns in "$C" "$R" "$S"; do ip netns del "$ns"; done
    NAMESPACES=()
}

# ======================================================================
# 2. Policy apply time for $UNITS units
# ======================================================================
apply_bench() {
    local A=$P-a
    local load_before; load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    newns "$A"
    ip link add lan0 netns "$A" type veth peer name lan0p netns "$A"
    ip link add wan0 netns "$A" type veth peer name wan0p netns "$A"
    local d
    for d in lan0 lan0p wan0 wan0p; do ip -n "$A" link set "$d" up; done

    local cfg=$WORK/agent-units.toml state=$WORK/state-units v
    python3 "$LIB" units-config "$WORK" >"$cfg"
    python3 "$LIB" units-inventory "$UNITS" >"$WORK/units-inventory.toml"
    for v in base one all; do python3 "$LIB" units-policy "$UNITS" "$v" >"$WORK/units-$v.toml"; done
    cp "$cfg" "$WORK"/units-*.toml "$OUT/logs/"

    local t0 t1
    t0=$(now_ms)
    ip netns exec "$A" "$AGENT" policy plan "$WORK/units-base.toml" --config "$cfg" >"$OUT/logs/units-plan.txt" 2>"$OUT/logs/units-plan.err" ||
        die "policy plan failed: $(tail -3 "$OUT/logs/units-plan.err")"
    t1=$(now_ms)
    local plan_ms; plan_ms=$(python3 -c "print($t1 - $t0)")
    local batches; batches=$(python3 "$LIB" batches "$OUT/logs/units-plan.txt" "$WORK")
    log "apply: plan $plan_ms ms: $batches"
    # The in-place batches: every rate of the base plan (what a one-shot
    # apply sends once the kernel's trees check out) and base → one unit
    # changed (what a running agent sends).
    mkdir -p "$WORK/one"
    ip netns exec "$A" "$AGENT" policy plan "$WORK/units-one.toml" --config "$cfg" >"$OUT/logs/units-plan-one.txt" 2>>"$OUT/logs/units-plan.err" ||
        die "policy plan failed: $(tail -3 "$OUT/logs/units-plan.err")"
    python3 "$LIB" batches "$OUT/logs/units-plan-one.txt" "$WORK/one" >/dev/null
    local inplace; inplace=$(python3 "$LIB" inplace "$WORK/plan.tc" "$WORK/one/plan.tc" "$WORK")
    cp "$WORK/inplace-all.tc" "$WORK/inplace-diff.tc" "$OUT/logs/"
    log "apply: in-place batches: $inplace"

    reset_kernel() {
        ip netns exec "$A" nft delete table inet simpul 2>/dev/null || true
        ip netns exec "$A" tc qdisc del dev lan0 root 2>/dev/null || true
        ip netns exec "$A" tc qdisc del dev wan0 root 2>/dev/null || true
        rm -rf "$state"
    }
    # Timed apply; appends a JSON line to $OUT/apply.jsonl.
    timed_apply() {   # scenario run policy [policy apply options]
        local s=$1 r=$2 pol=$3 out rc=0 t0 t1
        shift 3
        t0=$(now_ms)
        out=$(ip netns exec "$A" "$AGENT" policy apply "$pol" --config "$cfg" "$@" 2>>"$OUT/logs/units-apply.err") || rc=$?
        t1=$(now_ms)
        python3 -c '
import json, re, sys
sys.path.insert(0, "bench/lib")
from enforce_bench import shaping_of
s, run, rc, t0, t1, out = sys.argv[1:]
m = re.search(r"applied in (\d+) ms", out)
print(json.dumps({"scenario": s, "run": int(run), "rc": int(rc), "wall_ms": float(t1) - float(t0),
    "agent_ms": int(m.group(1)) if m else None,
    "outcome": "applied" if m else ("unchanged" if "unchanged" in out else "?"),
    "shaping": shaping_of(out), "output": out.strip()}))' \
            "$s" "$r" "$rc" "$t0" "$t1" "$out" | tee -a "$OUT/apply.jsonl" >&2
    }
    tc_listing() {   # file: both devices' qdiscs and classes (no counters)
        ip netns exec "$A" sh -c 'for d in lan0 wan0; do tc qdisc show dev $d; tc class show dev $d; done' >"$1"
    }
    untimed_apply() {
        ip netns exec "$A" "$AGENT" policy apply "$1" --config "$cfg" >/dev/null 2>>"$OUT/logs/units-apply.err" ||
            die "policy apply $1 failed: $(tail -3 "$OUT/logs/units-apply.err")"
    }

    : >"$OUT/apply.jsonl"
    : >"$OUT/logs/units-apply.err"
    local run kernel_after=""
    for run in $(seq 1 "$APPLY_RUNS"); do
        reset_kernel
        timed_apply first "$run" "$WORK/units-base.toml"
        if [ -z "$kernel_after" ]; then
            kernel_after=$(ip netns exec "$A" sh -c '
                printf "{\"classes_lan\": %d, \"classes_wan\": %d, \"nft_rules\": %d, \"nft_elements\": %d}\n" \
                    "$(tc class show dev lan0 | wc -l)" "$(tc class show dev wan0 | wc -l)" \
                    "$(nft list table inet simpul | grep -c "map @units")" \
                    "$(nft list table inet simpul | grep -o ": 1:[0-9a-f]*" | wc -l)"')
            log "apply: kernel after the first apply: $kernel_after"
        fi
        timed_apply identical "$run" "$WORK/units-base.toml"
        timed_apply one "$run" "$WORK/units-one.toml"
        untimed_apply "$WORK/units-base.toml"
        timed_apply one-rebuild "$run" "$WORK/units-one.toml" --rebuild
        untimed_apply "$WORK/units-base.toml"
        timed_apply all "$run" "$WORK/units-all.toml"
        ip netns exec "$A" tc class show dev lan0 >"$OUT/logs/units-classes-after-all.txt"
        tc_listing "$OUT/logs/units-tc-after-all-inplace.txt"
        untimed_apply "$WORK/units-base.toml"
        timed_apply all-rebuild "$run" "$WORK/units-all.toml" --rebuild
        tc_listing "$OUT/logs/units-tc-after-all-rebuild.txt"
    done
    # The changed rate really is in the kernel (after the in-place change;
    # counted below), and the in-place change leaves what the rebuild leaves.
    local same_tree
    same_tree=$(python3 "$LIB" same-tree "$OUT/logs/units-tc-after-all-inplace.txt" "$OUT/logs/units-tc-after-all-rebuild.txt")
    log "apply: in-place and rebuilt trees the same: $same_tree"
    # The base plan's batches by hand, step by step (both are idempotent: the
    # nft script deletes and recreates its table, the tc batch replaces the
    # root qdiscs first).
    untimed_apply "$WORK/units-base.toml"
    local step t0s t1s rcs
    for run in $(seq 1 "$APPLY_RUNS"); do
        for step in nft-check tc tc-inplace-all tc-inplace-diff nft; do
            rcs=0
            t0s=$(now_ms)
            case $step in
                nft-check) ip netns exec "$A" nft -c -f "$WORK/plan.nft" || rcs=$? ;;
                tc) ip netns exec "$A" tc -batch "$WORK/plan.tc" || rcs=$? ;;
                tc-inplace-all) ip netns exec "$A" tc -batch "$WORK/inplace-all.tc" || rcs=$? ;;
                tc-inplace-diff) ip netns exec "$A" tc -batch "$WORK/inplace-diff.tc" || rcs=$? ;;
                nft) ip netns exec "$A" nft -f "$WORK/plan.nft" || rcs=$? ;;
            esac
            t1s=$(now_ms)
            echo "{\"scenario\": \"step-$step\", \"run\": $run, \"rc\": $rcs, \"wall_ms\": $(python3 -c "print($t1s - $t0s)")}" >>"$OUT/apply.jsonl"
        done
    done
    # A running agent (`run`, [standalone] policy_file rewritten): it knows
    # the trees it applied and changes only the classes whose rates changed.
    reset_kernel
    local rcfg=$WORK/agent-units-run.toml rpol=$WORK/units-run-policy.toml rlog=$OUT/logs/units-run.log
    python3 "$LIB" units-run-config "$WORK" >"$rcfg"
    cp "$rcfg" "$OUT/logs/"
    cp "$WORK/units-base.toml" "$rpol"
    ip netns exec "$A" "$AGENT" run --config "$rcfg" >/dev/null 2>"$rlog" &
    local run_pid=$!
    PIDS+=("$run_pid")
    run_count=0
    run_step() {   # scenario run policy: rewrite the policy file, wait for the agent's apply
        local i got="" n
        if [ -n "$3" ]; then cp "$3" "$rpol.tmp" && mv "$rpol.tmp" "$rpol"; fi
        for i in $(seq 1 600); do
            n=$(grep -c 'policy applied' "$rlog" || true)
            if [ "$n" -gt "$run_count" ]; then got=$(python3 "$LIB" run-applied "$rlog"); break; fi
            kill -0 "$run_pid" 2>/dev/null || die "agent run exited: $(tail -3 "$rlog")"
            sleep 0.1
        done
        [ -n "$got" ] || die "agent run did not apply $3 within 60 s: $(tail -3 "$rlog")"
        run_count=$((run_count + 1))
        echo "$got" | python3 -c '
import json, sys
g = json.load(sys.stdin)
print(json.dumps({"scenario": sys.argv[1], "run": int(sys.argv[2]), "rc": 0 if g.get("agent_ms") is not None else 1,
    "agent_ms": g.get("agent_ms"), "outcome": "applied", "shaping": g.get("shaping")}))' "$1" "$2" | tee -a "$OUT/apply.jsonl" >&2
    }
    run_step run-first 1 ""
    for run in $(seq 1 "$APPLY_RUNS"); do
        run_step run-one "$run" "$WORK/units-one.toml"
        run_step run-back "$run" "$WORK/units-base.toml"
        run_step run-all "$run" "$WORK/units-all.toml"
        run_step run-back-all "$run" "$WORK/units-base.toml"
    done
    kill "$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true

    local changed; changed=$(grep -c 'rate 800Kbit' "$OUT/logs/units-classes-after-all.txt" || true)
    log "apply: after the all-rates change, $changed lan0 classes at 800Kbit"
    local leaf_warn=""
    grep -q 'lacks better' "$OUT/logs/units-apply.err" && leaf_warn=1

    local last_subnet
    last_subnet=$(python3 -c "import ipaddress; print(ipaddress.IPv4Network((int(ipaddress.IPv4Address('10.100.0.0')) + 16 * ($UNITS - 1), 28)))")
    local outcome_identical
    outcome_identical=$(python3 -c 'import json,sys; print(",".join(sorted({json.loads(l)["outcome"] for l in open(sys.argv[1]) if json.loads(l)["scenario"] == "identical"})))' "$OUT/apply.jsonl")
    meta_common "$load_before" | python3 -c '
import json, sys
m = json.load(sys.stdin)
a = sys.argv[1:]
m.update(units=int(a[0]), apply_runs=int(a[1]), batches=json.loads(a[2]), plan_ms=float(a[3]),
         kernel_after=json.loads(a[4] or "{}"), last_subnet=a[5])
m.update(identical_outcome=a[6], changed_classes=int(a[7] or 0))
m.update(inplace=json.loads(a[8]), inplace_equals_rebuild=a[9] == "true")
print(json.dumps(m))' "$UNITS" "$APPLY_RUNS" "$batches" "$plan_ms" "$kernel_after" "$last_subnet" \
        "$outcome_identical" "$changed" "$inplace" "$same_tree" >"$OUT/apply-meta.json"

    ip netns del "$A"
    NAMESPACES=()
    python3 "$LIB" report-apply "$OUT/apply-meta.json" "$OUT/apply.jsonl" "$OUT/apply-section.md"
    cat "$OUT/apply-section.md"
    [ "$WRITE_MD" = 1 ] && python3 bench/lib/write_section.py enforce-apply "$OUT/apply-section.md"
    return 0
}

if [ -n "${REPORT_ONLY:-}" ]; then   # rewrite the sections from the last run's results
    python3 "$LIB" report-shaping "$OUT/shaping-meta.json" "$OUT/shaping.jsonl" "$OUT/shaping-section.md"
    python3 "$LIB" report-apply "$OUT/apply-meta.json" "$OUT/apply.jsonl" "$OUT/apply-section.md"
    if [ "$WRITE_MD" = 1 ]; then
        python3 bench/lib/write_section.py enforce-shaping "$OUT/shaping-section.md"
        python3 bench/lib/write_section.py enforce-apply "$OUT/apply-section.md"
    fi
    exit 0
fi
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tc, nft)"
for t in ip tc nft iperf3 python3; do command -v "$t" >/dev/null || die "$t not found"; done

if [ -z "${SKIP_BUILD:-}" ]; then
    log "cargo build --release -p simpul-agent"
    cargo build --release -q -p simpul-agent
fi
[ -x "$AGENT" ] || die "$AGENT not found"

started=$SECONDS
[ -n "${SKIP_SHAPING:-}" ] || shaping
[ -n "${SKIP_APPLY:-}" ] || apply_bench
log "done in $((SECONDS - started)) s; results and logs in $OUT"
