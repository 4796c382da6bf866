#!/usr/bin/env bash
# Router benchmark (issue 5, DESIGN §8): select-by-key on PostgreSQL shards through the
# Citrus router vs direct libpq vs PgBouncer in front of the same server, one run, same
# machine, everything on loopback with ephemeral ports and one temp dir:
#   1. a private PostgreSQL 15 (initdb in the temp dir, run as the postgres user) with
#      SHARDS databases bench_0.., each with kv(key text primary key, value text);
#   2. `citrus dev --dev-shards 0` with its router; the databases are registered as shards
#      pg-0.. (POST /v1/shards), the ring is asked where each of KEYS keys goes
#      (POST /v1/route) and each key's row is loaded into its shard's database;
#   3. Debian's pgbouncer, transaction pooling, POOL server connections per database;
#   4. build/sqlbench: SELECT value FROM kv WHERE key = $1 for random keys, at 1 and
#      CONNS connections, against direct (libpq PQexecParams to PostgreSQL, one
#      connection per shard database per client connection), direct-prepared (the same
#      with the statement prepared once per connection, PQexecPrepared: what the router's
#      statement cache does), pgbouncer (PQexecParams through PgBouncer) and router
#      (POST /v1/query, HTTP keep-alive). REPEAT rounds, the order of the targets
#      rotating from round to round; medians.
# Prints every run, a table of medians and the DESIGN §8 verdicts; all runs go to
# $BUILD/bench-router-results.json. Stops, by PID, exactly the processes it started.
# Knobs (defaults): DURATION=10 WARMUP=2 REPEAT=3 CONNS=8 KEYS=10000 SHARDS=4 POOL=8
# BUILD=build PG_BINDIR=/usr/lib/postgresql/15/bin BENCH_TMPDIR=${TMPDIR:-/tmp}
# CITRUS_ARGS="" (more `citrus dev` options, e.g. "--threads 2")
# TARGETS="direct direct-prepared pgbouncer router" (a subset for experiments; the
# verdicts need direct, pgbouncer and router)
# PERF=1: also record a perf profile of the router during its CONNS-connection runs
# (perf record $PERF_ARGS, default -g; try "--call-graph dwarf -F 499" for user-space
# stacks), reported at the end (top symbols) and kept in $BUILD/router.perf.data.
# Exit status: 0 all runs clean, 1 a run failed or a server died, 2 missing tools.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
REPEAT=${REPEAT:-3}
CONNS=${CONNS:-8}
KEYS=${KEYS:-10000}
SHARDS=${SHARDS:-4}
POOL=${POOL:-8}
PERF=${PERF:-0}
CITRUS_ARGS=${CITRUS_ARGS:-}
PERF_ARGS=${PERF_ARGS:--g}
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

for tool in "$BUILD/citrus" "$BUILD/sqlbench" "$PG_BINDIR/initdb" "$PG_BINDIR/postgres" \
    "$PG_BINDIR/psql" "$PGBOUNCER"; do
    if [ ! -x "$tool" ]; then
        if [ "$tool" = "$PGBOUNCER" ] && [ "$(id -u)" = 0 ]; then
            echo "== installing pgbouncer (apt-get install -y pgbouncer)" >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >/dev/null
            PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
            [ -x "$PGBOUNCER" ] && continue
        fi
        echo "run-router.sh: $tool not found (make; apt-get install postgresql pgbouncer)" >&2
        exit 2
    fi
done

# PostgreSQL and PgBouncer refuse to run as root: run them as postgres.
if [ "$(id -u)" = 0 ]; then
    AS_PG=(setpriv --reuid=postgres --regid=postgres --clear-groups --)
else
    AS_PG=()
fi

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/citrus-router-bench.XXXXXX")
PG_PID="" CITRUS_PID="" BOUNCER_PID="" PERF_PID=""
cleanup() {
    stop_pid "$PERF_PID" INT
    stop_pid "$CITRUS_PID" TERM
    stop_pid "$BOUNCER_PID" INT
    stop_pid "$PG_PID" INT # fast shutdown
    rm -rf -- "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

machine_line

# ---- PostgreSQL
mkdir -p "$TMP/pg" "$TMP/sock" "$TMP/bouncer"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$TMP"
chmod 755 "$TMP"
"${AS_PG[@]}" "$PG_BINDIR/initdb" -D "$TMP/pg/data" -A trust -U postgres --no-sync --no-locale \
    -E UTF8 --no-instructions >"$TMP/pg/initdb.log" 2>&1 || {
    cat "$TMP/pg/initdb.log"
    exit 1
}
PG_PORT=$(free_port)
"${AS_PG[@]}" "$PG_BINDIR/postgres" -D "$TMP/pg/data" -p "$PG_PORT" -k "$TMP/sock" \
    -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off \
    -c synchronous_commit=off -c full_page_writes=off >"$TMP/pg/postgres.log" 2>&1 &
PG_PID=$!
PSQL=("$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres)
wait_for postgres "$PG_PID" "${PSQL[@]}" -d postgres -tAc 'SELECT 1' || {
    cat "$TMP/pg/postgres.log"
    exit 1
}
PG_VERSION=$("${PSQL[@]}" -d postgres -tAc 'SHOW server_version')
echo "== PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT (pid $PG_PID), $SHARDS databases"
for i in $(seq 0 $((SHARDS - 1))); do
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE bench_$i"
    "${PSQL[@]}" -d "bench_$i" -c 'CREATE TABLE kv (key text PRIMARY KEY, value text NOT NULL)'
done

# ---- citrus dev with the databases as its shards
API_PORT=$(free_port)
ROUTER_PORT=$(free_port)
API="http://127.0.0.1:$API_PORT"
ROUTER="http://127.0.0.1:$ROUTER_PORT"
# shellcheck disable=SC2086 # CITRUS_ARGS is a list of options
"$BUILD/citrus" dev --data-dir "$TMP/citrus" --listen "127.0.0.1:$API_PORT" \
    --router-listen "127.0.0.1:$ROUTER_PORT" --dev-shards 0 --router-pool-size "$POOL" \
    --log-level warn $CITRUS_ARGS >"$TMP/citrus.log" 2>&1 &
CITRUS_PID=$!
wait_for citrus "$CITRUS_PID" curl -sf "$API/health/ready" || {
    cat "$TMP/citrus.log"
    exit 1
}
for i in $(seq 0 $((SHARDS - 1))); do
    curl -sf -X POST -H 'Content-Type: application/json' "$API/v1/shards" \
        -d "{\"id\":\"pg-$i\",\"dsn\":\"postgresql://postgres@127.0.0.1:$PG_PORT/bench_$i\"}" \
        >/dev/null || {
        echo "run-router.sh: registering pg-$i failed" >&2
        exit 1
    }
done
echo "== citrus dev (pid $CITRUS_PID): API $API, router $ROUTER, shards pg-0..pg-$((SHARDS - 1)), pool $POOL per shard"

# Keys, their shards (from the router's own ring) and rows.
$PY "$ROOT/bench/route_keys.py" "$API" "$KEYS" "$TMP/keys.tsv"
for i in $(seq 0 $((SHARDS - 1))); do
    awk -F'\t' -v s="pg-$i" '$2 == s { print $1 "\t" $3 }' "$TMP/keys.tsv" >"$TMP/rows-$i.tsv"
    "${PSQL[@]}" -d "bench_$i" -c "\\copy kv FROM '$TMP/rows-$i.tsv'"
    "${PSQL[@]}" -d "bench_$i" -c 'VACUUM ANALYZE kv'
done
echo "== $KEYS keys loaded: $(cut -f2 "$TMP/keys.tsv" | sort | uniq -c | awk '{printf "%s %s  ", $2, $1}')"

# ---- PgBouncer
BOUNCER_PORT=$(free_port)
{
    echo "[databases]"
    for i in $(seq 0 $((SHARDS - 1))); do
        echo "bench_$i = host=127.0.0.1 port=$PG_PORT dbname=bench_$i user=postgres"
    done
    cat <<EOF
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $TMP/bouncer/userlist.txt
pool_mode = transaction
default_pool_size = $POOL
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 1000
max_db_connections = 0
logfile = $TMP/bouncer/pgbouncer.log
pidfile = $TMP/bouncer/pgbouncer.pid
log_connections = 0
log_disconnections = 0
stats_period = 60
EOF
} >"$TMP/bouncer/pgbouncer.ini"
echo '"postgres" ""' >"$TMP/bouncer/userlist.txt"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$TMP/bouncer"
"${AS_PG[@]}" "$PGBOUNCER" -q "$TMP/bouncer/pgbouncer.ini" >"$TMP/bouncer/stdout.log" 2>&1 &
BOUNCER_PID=$!
wait_for pgbouncer "$BOUNCER_PID" "${PSQL[@]}" -p "$BOUNCER_PORT" -d bench_0 -tAc 'SELECT 1' || {
    cat "$TMP/bouncer/"*.log
    exit 1
}
BOUNCER_VERSION=$("$PGBOUNCER" --version | head -n1)
echo "== $BOUNCER_VERSION on 127.0.0.1:$BOUNCER_PORT (pid $BOUNCER_PID), pool_mode=transaction, default_pool_size=$POOL"

# ---- runs
DIRECT_DSN=() BOUNCER_DSN=()
for i in $(seq 0 $((SHARDS - 1))); do
    DIRECT_DSN+=(--dsn "pg-$i=host=127.0.0.1 port=$PG_PORT dbname=bench_$i user=postgres")
    BOUNCER_DSN+=(--dsn "pg-$i=host=127.0.0.1 port=$BOUNCER_PORT dbname=bench_$i user=postgres")
done
CPU=(--cpu-tree "pg=$PG_PID" --cpu "router=$CITRUS_PID" --cpu "pgbouncer=$BOUNCER_PID")
RESULTS="$TMP/results.jsonl"
: >"$RESULTS"
FAILED=0

run_one() { # run_one ROUND TARGET CONNS
    local round=$1 target=$2 conns=$3 out rc=0 args
    case $target in
    direct) args=(--target pq "${DIRECT_DSN[@]}") ;;
    direct-prepared) args=(--target pq --prepared "${DIRECT_DSN[@]}") ;;
    pgbouncer) args=(--target pq "${BOUNCER_DSN[@]}") ;;
    router) args=(--target router --url "$ROUTER") ;;
    esac
    if [ "$PERF" = 1 ] && [ "$target" = router ] && [ "$conns" = "$CONNS" ] && [ "$round" = 1 ]; then
        # shellcheck disable=SC2086 # PERF_ARGS is a list of options
        sleep "$WARMUP" && perf record -q $PERF_ARGS -o "$TMP/router.perf.data" -p "$CITRUS_PID" \
            -- sleep "$DURATION" >/dev/null 2>&1 &
        PERF_PID=$!
    fi
    out=$("$BUILD/sqlbench" "${args[@]}" --keys-file "$TMP/keys.tsv" --conns "$conns" \
        --duration "$DURATION" --warmup "$WARMUP" --seed "$((round * 1000 + conns))" \
        --label "$target" "${CPU[@]}") || rc=$?
    if [ -n "$PERF_PID" ]; then
        wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=""
    fi
    report_run "$out" "$rc" "$round" "$RESULTS" || FAILED=1
    for p in "$PG_PID" "$CITRUS_PID" "$BOUNCER_PID"; do
        kill -0 "$p" 2>/dev/null || {
            echo "run-router.sh: process $p died" >&2
            FAILED=1
        }
    done
}

read -r -a TARGETS <<<"${TARGETS:-direct direct-prepared pgbouncer router}"
NT=${#TARGETS[@]}
echo "== select by key, ${DURATION}s after ${WARMUP}s warm-up, $REPEAT rounds, 1 and $CONNS connections"
for round in $(seq 1 "$REPEAT"); do
    order=()
    for j in $(seq 0 $((NT - 1))); do order+=("${TARGETS[$(((j + round - 1) % NT))]}"); done
    for conns in 1 "$CONNS"; do
        for t in "${order[@]}"; do
            run_one "$round" "$t" "$conns"
        done
    done
done

cp "$RESULTS" "$BUILD/bench-router-results.json"
$PY - "$RESULTS" "$CONNS" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
hi = int(sys.argv[2])
def other(r):  # machine CPU not spent by the processes under test nor the client
    c = r["cpu_cores"]
    return max(0.0, c["machine"] - sum(c.get(k, 0) for k in ("pg", "router", "pgbouncer", "client")))
def med(target, conns, f):
    v = [f(r) for r in runs if r["label"] == target and r["conns"] == conns]
    return statistics.median(v) if v else float("nan")
print()
print("| target | conns | ops/s | p50 µs | p90 µs | p99 µs | CPU: pg | router | pgbouncer | client | other |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for conns in (1, hi):
    for t in ("direct", "direct-prepared", "pgbouncer", "router"):
        if not any(r["label"] == t for r in runs):
            continue
        c = lambda k: med(t, conns, lambda r: r["cpu_cores"].get(k, 0))
        print("| %s | %d | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f |" % (
            t, conns, med(t, conns, lambda r: r["ops_per_s"]),
            med(t, conns, lambda r: r["lat_us"]["p50"]), med(t, conns, lambda r: r["lat_us"]["p90"]),
            med(t, conns, lambda r: r["lat_us"]["p99"]), c("pg"), c("router"), c("pgbouncer"),
            c("client"), med(t, conns, other)))
d8, b8, r8 = (med(t, hi, lambda r: r["ops_per_s"]) for t in ("direct", "pgbouncer", "router"))
d1, r1, b1 = (med(t, 1, lambda r: r["lat_us"]["p50"]) for t in ("direct", "router", "pgbouncer"))
ok = lambda c: "met" if c else "MISSED"
if any(x != x for x in (d8, b8, r8, d1, r1, b1)):  # NaN: a target was left out (TARGETS=...)
    sys.exit(0)
print()
print("router / direct   at %d conns: %.2f  (target >= 0.70: %s)" % (hi, r8 / d8, ok(r8 / d8 >= 0.70)))
print("router / pgbouncer at %d conns: %.2f  (target > 1: %s)" % (hi, r8 / b8, ok(r8 > b8)))
print("added median latency at 1 conn: router %+.0f us, pgbouncer %+.0f us over direct (router target <= 80 us: %s)"
      % (r1 - d1, b1 - d1, ok(r1 - d1 <= 80)))
dp8 = med("direct-prepared", hi, lambda r: r["ops_per_s"])
dp1 = med("direct-prepared", 1, lambda r: r["lat_us"]["p50"])
if dp8 == dp8:
    print("against direct-prepared (a client that prepares its statement, as the router does):"
          " router / direct-prepared at %d conns: %.2f, added median latency at 1 conn: %+.0f us"
          % (hi, r8 / dp8, r1 - dp1))
print("errors in all runs: %d" % sum(r["errors"] for r in runs))
EOF

if [ "$PERF" = 1 ] && [ -f "$TMP/router.perf.data" ]; then
    cp "$TMP/router.perf.data" "$BUILD/router.perf.data"
    echo "== router profile ($CONNS connections, round 1): top symbols (children excluded)"
    perf report -i "$BUILD/router.perf.data" --no-children --sort dso,sym -g none --stdio \
        2>/dev/null | grep '%' | head -n 30 || true
fi
exit "$FAILED"
