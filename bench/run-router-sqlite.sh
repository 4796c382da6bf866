#!/usr/bin/env bash
# Router on SQLite shards: what the statement cache buys. One run, same machine, loopback,
# ephemeral ports, one temp dir:
#   1. SHARDS SQLite files, each with kv(key text primary key, value text);
#   2. two `citrus dev --dev-shards 0` routers over the same files, with the files
#      registered as shards lite-0.. in each (same ids and weights: the same ring):
#      "cached" (--router-statement-cache 256, the default) and "uncached" (0: every
#      statement prepared for its run and finalized, as before the cache);
#   3. build/sqlbench --target router: SELECT value FROM kv WHERE key = $1 for random keys
#      at 1 and CONNS connections against each, REPEAT rounds, the order alternating;
#      medians, router CPU per query.
# Knobs (defaults): DURATION=10 WARMUP=2 REPEAT=3 CONNS=8 KEYS=10000 SHARDS=4 POOL=8
# BUILD=build BENCH_TMPDIR=${TMPDIR:-/tmp}
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
PY=/usr/bin/python3
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

for tool in "$BUILD/citrus" "$BUILD/sqlbench"; do
    [ -x "$tool" ] || {
        echo "run-router-sqlite.sh: $tool not found (make)" >&2
        exit 2
    }
done

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/citrus-router-sqlite-bench.XXXXXX")
declare -A PID=() URL=()
cleanup() {
    for p in "${PID[@]}"; do stop_pid "$p" TERM; done
    rm -rf -- "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

machine_line
echo "== SQLite $($PY -c 'import sqlite3; print(sqlite3.sqlite_version)') (Python's, for loading), $SHARDS shard files"

start_citrus() { # start_citrus NAME CACHE
    local name=$1 cache=$2 api_port router_port api
    api_port=$(free_port)
    router_port=$(free_port)
    api="http://127.0.0.1:$api_port"
    "$BUILD/citrus" dev --data-dir "$TMP/$name" --listen "127.0.0.1:$api_port" \
        --router-listen "127.0.0.1:$router_port" --dev-shards 0 --router-pool-size "$POOL" \
        --router-statement-cache "$cache" --log-level warn >"$TMP/$name.log" 2>&1 &
    PID[$name]=$!
    wait_for "citrus $name" "${PID[$name]}" curl -sf "$api/health/ready" || {
        cat "$TMP/$name.log"
        exit 1
    }
    for i in $(seq 0 $((SHARDS - 1))); do
        curl -sf -X POST -H 'Content-Type: application/json' "$api/v1/shards" \
            -d "{\"id\":\"lite-$i\",\"dsn\":\"sqlite://$TMP/lite-$i.db\"}" >/dev/null || {
            echo "run-router-sqlite.sh: registering lite-$i with $name failed" >&2
            exit 1
        }
    done
    URL[$name]="http://127.0.0.1:$router_port"
    echo "== citrus dev $name (pid ${PID[$name]}): router ${URL[$name]}, statement cache $cache, pool $POOL per shard"
    API=$api
}

for i in $(seq 0 $((SHARDS - 1))); do
    $PY -c 'import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute("PRAGMA journal_mode=WAL"); db.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"); db.commit()' "$TMP/lite-$i.db"
done
start_citrus cached 256
$PY "$ROOT/bench/route_keys.py" "$API" "$KEYS" "$TMP/keys.tsv"
start_citrus uncached 0
$PY - "$TMP" "$TMP/keys.tsv" <<'PYEOF'
import sqlite3, sys
tmp, keys = sys.argv[1], sys.argv[2]
rows = {}
for line in open(keys):
    k, shard, v = line.rstrip("\n").split("\t")
    rows.setdefault(shard, []).append((k, v))
for shard, kv in rows.items():
    db = sqlite3.connect(f"{tmp}/{shard}.db")
    db.executemany("INSERT INTO kv VALUES (?, ?)", kv)
    db.commit()
    db.execute("ANALYZE")
    db.close()
print("== %d keys loaded: %s" % (sum(len(v) for v in rows.values()),
                                  "  ".join(f"{s} {len(v)}" for s, v in sorted(rows.items()))))
PYEOF

RESULTS="$TMP/results.jsonl"
: >"$RESULTS"
FAILED=0
run_one() { # run_one ROUND NAME CONNS
    local round=$1 name=$2 conns=$3 out rc=0
    out=$("$BUILD/sqlbench" --target router --url "${URL[$name]}" --keys-file "$TMP/keys.tsv" \
        --conns "$conns" --duration "$DURATION" --warmup "$WARMUP" \
        --seed "$((round * 1000 + conns))" --label "$name" --cpu "router=${PID[$name]}") || rc=$?
    report_run "$out" "$rc" "$round" "$RESULTS" || FAILED=1
    kill -0 "${PID[$name]}" 2>/dev/null || {
        echo "run-router-sqlite.sh: citrus $name died" >&2
        FAILED=1
    }
}

echo "== select by key, ${DURATION}s after ${WARMUP}s warm-up, $REPEAT rounds, 1 and $CONNS connections"
for round in $(seq 1 "$REPEAT"); do
    if [ $((round % 2)) = 1 ]; then order=(cached uncached); else order=(uncached cached); fi
    for conns in 1 "$CONNS"; do
        for name in "${order[@]}"; do run_one "$round" "$name" "$conns"; done
    done
done

cp "$RESULTS" "$BUILD/bench-router-sqlite-results.json"
$PY - "$RESULTS" "$CONNS" <<'PYEOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
hi = int(sys.argv[2])
def med(name, conns, f):
    v = [f(r) for r in runs if r["label"] == name and r["conns"] == conns]
    return statistics.median(v) if v else float("nan")
print()
print("| router | conns | ops/s | p50 µs | p90 µs | p99 µs | router CPU cores | router CPU µs/query |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for conns in (1, hi):
    for n in ("cached", "uncached"):
        ops = med(n, conns, lambda r: r["ops_per_s"])
        cores = med(n, conns, lambda r: r["cpu_cores"]["router"])
        print("| %s | %d | %.0f | %.0f | %.0f | %.0f | %.2f | %.1f |" % (
            n, conns, ops, med(n, conns, lambda r: r["lat_us"]["p50"]),
            med(n, conns, lambda r: r["lat_us"]["p90"]), med(n, conns, lambda r: r["lat_us"]["p99"]),
            cores, med(n, conns, lambda r: r["cpu_cores"]["router"] / r["ops_per_s"] * 1e6)))
print()
for conns in (1, hi):
    c, u = (med(n, conns, lambda r: r["ops_per_s"]) for n in ("cached", "uncached"))
    print("cached / uncached at %d conn%s: %.2f" % (conns, "" if conns == 1 else "s", c / u))
print("errors in all runs: %d" % sum(r["errors"] for r in runs))
PYEOF
exit "$FAILED"
