#!/usr/bin/env bash
# Policy push benchmark (issue 10): a save through the API → applied and
# acknowledged by every agent it reaches. A real collector and NODES real
# agents (link over TLS WebSocket + the agent's control thread without an
# enforcer: verify, refuse replays, validate, keep, report), spread over
# AGENCIES agencies; SAVES saves (agency documents in turn, every tenth the
# province default, which reaches every node), HDR histograms
# (demo/examples/policy_push.rs). Writes the "policy-push" section of
# BENCHMARKS.md.
#
# Knobs: NODES (500), AGENCIES (10), SAVES (20), SKIP_BUILD=1, WRITE_MD=0
# (section left in bench/out/policy-push.md only), TMPDIR (where the
# collector's database and the agents' state directories go).
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-500}
AGENCIES=${AGENCIES:-10}
SAVES=${SAVES:-20}
WRITE_MD=${WRITE_MD:-1}
mkdir -p bench/out
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p simpul-demo --example policy_push
fi
export BENCH_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "load average before the run: $BENCH_LOADAVG"
out=$(target/release/examples/policy_push "$NODES" "$AGENCIES" "$SAVES" | tail -1)
export BENCH_LOADAVG_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "load average after the run: $BENCH_LOADAVG_AFTER"
echo "$out" > bench/out/policy-push.json
echo "result: $out"
python3 - "$out" > bench/out/policy-push.md <<'PY'
import json, os, subprocess, sys, time
r = json.loads(sys.argv[1])
a, g, d = r["all"], r["agency"], r["default"]
ok = lambda c: "met" if c else "NOT met"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
fails = r["failures"]
nfail = sum(fails.values())
fail_text = ", ".join(f"{k} {v}" for k, v in sorted(fails.items())) if fails else "none"

def row(name, h, target=""):
    return f"| {name} | {h['count']} | {h['p50']} | {h['p90']} | {h['p99']} | {h['max']} | {target} |"

per = r["per_save"]
def per_save_line(kind):
    xs = [s for s in per if s["kind"] == kind]
    return " ".join(str(s["last_applied_ms"]) for s in xs)

print(f"""## Policy push (`bench/policy.sh`)

**A save → applied and acknowledged by every agent it reaches** — a real
collector and {r['nodes']} real agents over {r['agencies']} agencies ({r['nodes'] // r['agencies']} nodes each), each agent the
agent's own collector-mode pair: its link (`link::Uplink`, TLS WebSocket)
and its control thread (`control::Control`) without an enforcer, as
`simpul-agent run` runs when `[enforce]` names no interfaces — it verifies
the signature with the key pinned at enrollment, refuses replays, validates
against its inventory with the core code the collector ran, keeps the policy
(fsync) and reports `applied` at once; the nft/tc apply it skips is in
*Policy apply time* above. {r['saves']} saves through the HTTP API with an admin's token
after a warm-up save: {r['agency_saves']} agency saves (`PUT /api/v1/agencies/{{code}}/policy`,
a new download allocation: {r['nodes'] // r['agencies']} nodes each) and {r['default_saves']} saves of the province default
(`PUT /api/v1/policy/default`, a new blocked domain: {r['agencies']} agency versions, all
{r['nodes']} nodes). Milliseconds from the start of the PUT
(`demo/examples/policy_push.rs`, HDR histograms; the collector's in-memory
policy state of each node — what `GET /api/v1/nodes` shows — polled every
{r['poll_ms']} ms):

| from the PUT's start to | samples | p50 | p90 | p99 | max | target |
|---|---:|---:|---:|---:|---:|---|
{row("a node's `applied` held by the collector, every save", a['applied_ms'], f"≤ 1000 ms p99: {ok(a['applied_ms']['p99'] <= 1000 and nfail == 0)}")}
{row("… agency saves", g['applied_ms'])}
{row("… default saves", d['applied_ms'])}
{row("the last node's `applied` (whole fan-out), every save", a['fanout_ms'])}
{row("… default saves", d['fanout_ms'])}
{row("the agent applied (its report's `at_ms`), every save", a['agent_applied_ms'])}
{row("the new versions published to the sessions", a['published_ms'])}
{row("the PUT's answer", a['put_ms'])}

Failures (rejected, failed, wrong version, not applied within 15 s): {fail_text}.
Whole fan-out per save, agency saves: {per_save_line('agency')} ms; default saves: {per_save_line('default')} ms.
Validating, signing and storing take a few ms (published); the rest is
the push to the sessions, the agents' verify/validate/fsync and their
reports (stored before the collector shows them). The PUT answers after its
audit-chain row, so it can end after the agents applied. Agents connected in
{r['connect_secs']} s. All {r['nodes']} agents, their links and the collector share this machine; a
real agent has a router to itself.

Machine: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, {cpu}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average before the run {os.environ.get('BENCH_LOADAVG', 'not recorded')}, after {os.environ.get('BENCH_LOADAVG_AFTER', 'not recorded')} (this benchmark included).
""")
PY
cat bench/out/policy-push.md
if [ "$WRITE_MD" = 1 ]; then
  python3 bench/lib/write_section.py policy-push bench/out/policy-push.md
fi
