#!/usr/bin/env bash
# Side-by-side KV benchmark, one run, one machine, one load generator (bench/kvbench.c):
#   (a) read-only on preloaded keys: etcd serializable range  vs  citrus bounded GET
#   (b) write-only:                  etcd put                 vs  citrus durable PUT
# It starts a single-member etcd 3.4 and `citrus dev` on loopback with free ports in a
# temp dir, runs every workload REPEAT times (alternating which target goes first),
# prints each run and a table of medians with citrus/etcd ratios, and stops exactly the
# processes it started. `make bench` runs it after building.
#
# Knobs (environment): DURATION=10 WARMUP=2 CONNS=16 THREADS=1 KEYS=1000 VALUE_SIZE=64
# REPEAT=3 WORKLOADS="read write" CITRUS_ARGS="" (extra citrus flags, e.g.
# "--etcd-batch-puts on") BUILD=build KVBENCH=$BUILD/kvbench CITRUS_BIN=$BUILD/citrus ETCD_BIN=/usr/bin/etcd
# BENCH_TMPDIR=$TMPDIR (where data dirs go: fsync cost depends on its filesystem)
# OUT=$BUILD/bench-kv-results.json (all results as JSON).
#
# Exit status: 0 all runs clean; 1 a run had errors or a server failed; 2 citrus was not
# available (etcd numbers are still printed).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
KVBENCH=${KVBENCH:-$BUILD/kvbench}
CITRUS_BIN=${CITRUS_BIN:-$BUILD/citrus}
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
PY=${PY:-/usr/bin/python3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-16}
THREADS=${THREADS:-1}
KEYS=${KEYS:-1000}
VALUE_SIZE=${VALUE_SIZE:-64}
REPEAT=${REPEAT:-3}
OUT=${OUT:-$BUILD/bench-kv-results.json}
READY_TIMEOUT=${READY_TIMEOUT:-30}
# MODE=dev (default): single-member etcd vs `citrus dev` (embedded store).
# MODE=cluster: a 3-member etcd vs `citrus server` on that same etcd cluster
# (bounded reads from the node's copy, writes through to etcd).
MODE=${MODE:-dev}
case "$MODE" in dev | cluster) ;; *) echo "run-kv: MODE must be dev or cluster" >&2; exit 2 ;; esac

log() { printf '[run-kv] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# ------------------------------------------------------------------ processes and cleanup
TMP=""
PIDS=()       # servers we started
BENCH_PID=""  # the generator, while it runs
cleanup() {
    local rc=$? pid i
    if [ -n "$BENCH_PID" ]; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    # Newest first, one at a time: citrus stops (revoking its session lease)
    # while the etcd it talks to is still up.
    local j
    for ((j = ${#PIDS[@]} - 1; j >= 0; j--)); do
        pid=${PIDS[$j]}
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid did not stop on SIGTERM, killing"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$TMP" ] && [ -d "$TMP" ]; then
        rm -rf -- "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Prints N distinct free loopback ports (bound to port 0, then released).
free_ports() {
    "$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# wait_ready NAME PID URL LOGFILE: polls URL for HTTP 200 until READY_TIMEOUT seconds.
wait_ready() {
    local name=$1 pid=$2 url=$3 logfile=$4 code
    local deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited during start-up; last log lines:"
            tail -n 20 "$logfile" >&2 || true
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    log "$name not ready at $url after ${READY_TIMEOUT}s; last log lines:"
    tail -n 20 "$logfile" >&2 || true
    return 1
}

# ------------------------------------------------------------------ preparation
command -v curl >/dev/null || die "curl is required"
[ -x "$PY" ] || die "python3 not found at $PY"
[ -x "$ETCD_BIN" ] || die "etcd not found at $ETCD_BIN (Debian package etcd-server)"
if [ ! -x "$KVBENCH" ]; then
    log "building kvbench"
    cmake --build "$BUILD" --target kvbench >/dev/null || die "cannot build kvbench"
fi

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/citrus-bench.XXXXXX")
mkdir -p "$TMP/runs" "$(dirname "$OUT")"
read -r ETCD_CLIENT ETCD_PEER CITRUS_PORT E2_CLIENT E2_PEER E3_CLIENT E3_PEER <<<"$(free_ports 7)"

# ------------------------------------------------------------------ machine facts
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
ETCD_VERSION=$("$ETCD_BIN" --version 2>/dev/null | awk '/etcd Version/ {print $3}')
FSTYPE=$(df --output=fstype "$TMP" 2>/dev/null | tail -n 1 || echo unknown)
CITRUS_VERSION=""
if [ -x "$CITRUS_BIN" ]; then
    CITRUS_VERSION=$("$CITRUS_BIN" --version 2>/dev/null | head -n 1 || true)
fi
echo "== machine"
echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "nproc:    $(nproc)"
echo "cpu:      ${CPU_MODEL:-unknown}"
echo "kernel:   $(uname -sr)"
echo "memory:   $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "etcd:     ${ETCD_VERSION:-unknown} ($ETCD_BIN)"
echo "citrus:   ${CITRUS_VERSION:-unknown} ($CITRUS_BIN)"
echo "data dir: $TMP ($FSTYPE)"
echo "loadavg:  $(cut -d' ' -f1-3 /proc/loadavg) (before the runs)"
echo "load:     conns=$CONNS threads=$THREADS duration=${DURATION}s warmup=${WARMUP}s keys=$KEYS value=${VALUE_SIZE}B repeat=$REPEAT"

# ------------------------------------------------------------------ start the servers
# start_etcd NAME CLIENT PEER INITIAL_CLUSTER: one member, in the background.
start_etcd() {
    "$ETCD_BIN" --name "$1" --data-dir "$TMP/etcd-$1" \
        --listen-client-urls "http://127.0.0.1:$2" \
        --advertise-client-urls "http://127.0.0.1:$2" \
        --listen-peer-urls "http://127.0.0.1:$3" \
        --initial-advertise-peer-urls "http://127.0.0.1:$3" \
        --initial-cluster "$4" \
        --initial-cluster-state new --logger zap --log-level warn \
        >"$TMP/etcd-$1.log" 2>&1 &
    PIDS+=("$!")
}
if [ "$MODE" = cluster ]; then
    log "starting a 3-member etcd on 127.0.0.1:$ETCD_CLIENT,$E2_CLIENT,$E3_CLIENT"
    INITIAL="bench=http://127.0.0.1:$ETCD_PEER,e2=http://127.0.0.1:$E2_PEER,e3=http://127.0.0.1:$E3_PEER"
    start_etcd bench "$ETCD_CLIENT" "$ETCD_PEER" "$INITIAL"
    ETCD_PID=${PIDS[-1]}
    start_etcd e2 "$E2_CLIENT" "$E2_PEER" "$INITIAL"
    start_etcd e3 "$E3_CLIENT" "$E3_PEER" "$INITIAL"
else
    log "starting etcd on 127.0.0.1:$ETCD_CLIENT"
    start_etcd bench "$ETCD_CLIENT" "$ETCD_PEER" "bench=http://127.0.0.1:$ETCD_PEER"
    ETCD_PID=${PIDS[-1]}
fi

CITRUS_STATE="not built ($CITRUS_BIN missing)"
CITRUS_PID=""
wait_ready etcd "$ETCD_PID" "http://127.0.0.1:$ETCD_CLIENT/health" "$TMP/etcd-bench.log" ||
    die "etcd did not become ready"
if [ -x "$CITRUS_BIN" ]; then
    mkdir -p "$TMP/citrus"
    if [ "$MODE" = cluster ]; then
        log "starting citrus server (etcd catalog) on 127.0.0.1:$CITRUS_PORT"
        "$CITRUS_BIN" server --data-dir "$TMP/citrus" --listen "127.0.0.1:$CITRUS_PORT" \
            --catalog-backend etcd --log-level warn \
            --etcd-endpoints "http://127.0.0.1:$ETCD_CLIENT,http://127.0.0.1:$E2_CLIENT,http://127.0.0.1:$E3_CLIENT" \
            ${CITRUS_ARGS:-} >"$TMP/citrus.log" 2>&1 &
    else
        log "starting citrus dev on 127.0.0.1:$CITRUS_PORT"
        "$CITRUS_BIN" dev --data-dir "$TMP/citrus" --listen "127.0.0.1:$CITRUS_PORT" \
            --log-level warn ${CITRUS_ARGS:-} >"$TMP/citrus.log" 2>&1 &
    fi
    CITRUS_PID=$!
    PIDS+=("$CITRUS_PID")
fi

if [ -n "$CITRUS_PID" ]; then
    if wait_ready citrus "$CITRUS_PID" "http://127.0.0.1:$CITRUS_PORT/health/ready" \
        "$TMP/citrus.log"; then
        CITRUS_STATE=ready
    else
        CITRUS_STATE="failed to start (see log above)"
    fi
fi
log "etcd ready; citrus: $CITRUS_STATE"

# ------------------------------------------------------------------ the runs
ANY_ERRORS=0
RESULT_LINES="$TMP/results.jsonl"
: >"$RESULT_LINES"

# bench ROUND WORKLOAD TARGET: runs kvbench once, appends its JSON line with labels.
bench() {
    local round=$1 workload=$2 target=$3 url args rc=0 json pid
    if [ "$target" = etcd ]; then
        url="http://127.0.0.1:$ETCD_CLIENT"
        pid=$ETCD_PID
    else
        url="http://127.0.0.1:$CITRUS_PORT"
        pid=$CITRUS_PID
    fi
    case "$workload/$target" in
    read/etcd) args=(--read-ratio 1 --preload --consistency serializable) ;;
    read/citrus) args=(--read-ratio 1 --preload --consistency bounded) ;;
    write/*) args=(--read-ratio 0) ;;
    esac
    local out="$TMP/runs/$round-$workload-$target.txt"
    # In the background so that a signal to this script is handled at once (cleanup stops
    # the generator too).
    "$KVBENCH" --target "$target" --url "$url" --conns "$CONNS" --threads "$THREADS" \
        --duration "$DURATION" --warmup "$WARMUP" --keys "$KEYS" --value-size "$VALUE_SIZE" \
        --seed "$round" --server-pid "$pid" "${args[@]}" >"$out" 2>&1 &
    BENCH_PID=$!
    wait "$BENCH_PID" || rc=$?
    BENCH_PID=""
    json=$(grep '^{' "$out" | tail -n 1 || true)
    if [ -z "$json" ] || [ "$rc" -ne 0 ]; then
        ANY_ERRORS=1
        log "round $round $workload $target: kvbench exit $rc; its output:"
        sed 's/^/    /' "$out" >&2
    fi
    [ -n "$json" ] || json='{"ok":false,"rps":0,"errors":-1}'
    printf '{"round":%d,"workload":"%s","target_name":"%s","exit":%d,"result":%s}\n' \
        "$round" "$workload" "$target" "$rc" "$json" >>"$RESULT_LINES"
    "$PY" -c '
import json, sys
r = json.loads(sys.argv[1]); a = r.get("all", {}).get("lat_us", {}); c = r.get("cpu_cores", {})
print("round %s  %-5s %-6s %8.0f req/s  p50 %7.0f  p99 %7.0f  p99.9 %7.0f us  errors %s"
      "  cpu srv %.2f cli %.2f other %.2f%s" % (
    sys.argv[2], sys.argv[3], sys.argv[4], r.get("rps", 0), a.get("p50", 0), a.get("p99", 0),
    a.get("p999", 0), r.get("errors", "?"), c.get("server") or 0, c.get("client", 0),
    c.get("other", 0), "" if r.get("ok") else "  FAILED"))
' "$json" "$round" "$workload" "$target"
}

echo
echo "== runs (each ${DURATION}s measured after ${WARMUP}s warm-up, $CONNS connections, closed loop)"
for ((round = 1; round <= REPEAT; round++)); do
    if [ "$CITRUS_STATE" = ready ]; then
        if ((round % 2)); then order=(etcd citrus); else order=(citrus etcd); fi
    else
        order=(etcd)
    fi
    for workload in ${WORKLOADS:-read write}; do
        for target in "${order[@]}"; do
            bench "$round" "$workload" "$target"
        done
    done
done

# ------------------------------------------------------------------ summary table
echo
echo "loadavg after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
MACHINE=$(printf '{"nproc":%s,"cpu":"%s","kernel":"%s","etcd":"%s","citrus":"%s","fs":"%s"}' \
    "$(nproc)" "$CPU_MODEL" "$(uname -sr)" "$ETCD_VERSION" "$CITRUS_VERSION" "$FSTYPE")
"$PY" - "$RESULT_LINES" "$OUT" "$CITRUS_STATE" "$MACHINE" "$MODE" <<'EOF'
import json, statistics, sys

lines, out, citrus_state = sys.argv[1], sys.argv[2], sys.argv[3]
machine = json.loads(sys.argv[4])
runs = [json.loads(l) for l in open(lines) if l.strip()]

def med(workload, target, field):
    vals = []
    for r in runs:
        if r["workload"] != workload or r["target_name"] != target:
            continue
        res = r["result"]
        if field == "rps":
            vals.append(res.get("rps", 0))
        else:
            vals.append(res.get("all", {}).get("lat_us", {}).get(field, 0))
    return (statistics.median(vals), vals) if vals else (None, [])

cluster = sys.argv[-1] == "cluster"
rows = [
    ("read", "(a) read  etcd serializable range vs citrus bounded GET", 3.0 if cluster else 2.0),
    ("write", "(b) write etcd put vs citrus durable PUT" if not cluster else
     "(b) write etcd put vs citrus PUT (on etcd)", 0.8 if cluster else 1.0),
]
print("== results: median of %d round(s)" % max(1, max((r["round"] for r in runs), default=1)))
hdr = "%-56s %11s %11s %7s %7s  %-6s %s" % ("workload", "etcd req/s", "citrus r/s", "ratio",
                                          "target", "verdict", "p50/p99 us etcd | citrus")
print(hdr)
print("-" * len(hdr))
summary = []
for w, label, target in rows:
    e_rps, e_all = med(w, "etcd", "rps")
    c_rps, c_all = med(w, "citrus", "rps")
    e50, _ = med(w, "etcd", "p50"); e99, _ = med(w, "etcd", "p99")
    c50, _ = med(w, "citrus", "p50"); c99, _ = med(w, "citrus", "p99")
    ratio = c_rps / e_rps if c_rps and e_rps else None
    verdict = "n/a" if ratio is None else ("met" if ratio >= target else "MISSED")
    lat = "%.0f/%.0f | %s" % (e50 or 0, e99 or 0,
                               "%.0f/%.0f" % (c50, c99) if c_rps is not None else "-")
    print("%-56s %11s %11s %7s %7s  %-6s %s" % (
        label, "%.0f" % e_rps if e_rps is not None else "-",
        "%.0f" % c_rps if c_rps is not None else "not run", "%.2fx" % ratio if ratio else "-",
        ">=%gx" % target, verdict, lat))
    summary.append({"workload": w, "etcd_rps": e_rps, "citrus_rps": c_rps,
                    "etcd_rps_runs": e_all, "citrus_rps_runs": c_all, "ratio": ratio,
                    "target_ratio": target, "etcd_p50_us": e50, "etcd_p99_us": e99,
                    "citrus_p50_us": c50, "citrus_p99_us": c99})
print()
print("per-round req/s:")
for s in summary:
    print("  %-5s etcd %s   citrus %s" % (s["workload"],
          " ".join("%.0f" % v for v in s["etcd_rps_runs"]) or "-",
          " ".join("%.0f" % v for v in s["citrus_rps_runs"]) or "-"))
bad = [r for r in runs if not r["result"].get("ok")]
if citrus_state != "ready":
    print("\ncitrus: %s -- citrus NOT measured" % citrus_state)
if bad:
    print("\nFLAGGED: %d run(s) had errors: %s" % (len(bad), ", ".join(
        "round %d %s %s" % (r["round"], r["workload"], r["target_name"]) for r in bad)))
with open(out, "w") as f:
    json.dump({"machine": machine, "citrus": citrus_state, "summary": summary, "runs": runs}, f, indent=1)
print("\nall results: %s" % out)
EOF

if ((ANY_ERRORS)); then
    log "some runs had errors (see FLAGGED above)"
    exit 1
fi
if [ "$CITRUS_STATE" != ready ]; then
    log "citrus was not measured: $CITRUS_STATE"
    exit 2
fi
