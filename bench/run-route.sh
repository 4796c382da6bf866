#!/usr/bin/env bash
# Routing benchmark (issue 4): ring lookups in process, then the routing API.
#   1. build/ringbench: ns per key (hash + lookup) at 1024 shards x 256 vnodes,
#      single thread, murmur3 and xxhash64.
#   2. `citrus dev` (four SQLite shards) on a free loopback port in a temp dir;
#      kvbench --target route drives GET /v1/route/{key} for keys that follow
#      the ring, then for registered (pinned) tenants, then POST /v1/route with
#      BATCH keys per request.
# Stops exactly the process it started. Knobs: DURATION=10 WARMUP=2 CONNS=16
# KEYS=1000 BATCH=100 BUILD=build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-16}
KEYS=${KEYS:-1000}
BATCH=${BATCH:-100}
PY=/usr/bin/python3
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/citrus-route-bench.XXXXXX")
PID=""
cleanup() {
    stop_pid "$PID" TERM
    rm -rf -- "$TMP"
}
trap cleanup EXIT

machine_line
echo "== ring lookups (build/ringbench)"
"$BUILD/ringbench" | tail -n 2
"$BUILD/ringbench" --hash xxhash64 2>/dev/null | tail -n 2 || true

PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
"$BUILD/citrus" dev --data-dir "$TMP/data" --listen "127.0.0.1:$PORT" --log-level warn \
    >"$TMP/citrus.log" 2>&1 &
PID=$!
wait_for citrus "$PID" curl -sf "$URL/health/ready" || {
    cat "$TMP/citrus.log"
    exit 1
}

# Register KEYS tenants bench:t0 .. (100 per batch call).
$PY - "$URL" "$KEYS" <<'EOF'
import json, sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
for start in range(0, n, 100):
    locs = [{"locationId": f"t{i}", "businessType": "retail"} for i in range(start, min(n, start + 100))]
    req = urllib.request.Request(url + "/api/register/batch", method="POST",
                                 data=json.dumps({"businessId": "bench", "locations": locs}).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
EOF

run() {
    local label=$1
    shift
    local out
    out=$("$BUILD/kvbench" --target route --url "$URL" --conns "$CONNS" --duration "$DURATION" \
        --warmup "$WARMUP" --keys "$KEYS" --server-pid "$PID" --quiet "$@")
    $PY -c '
import json, sys
r = json.loads(sys.argv[2]); a = r["all"]["lat_us"]; c = r["cpu_cores"]
print("%-34s %9.0f req/s  p50 %6.0f  p99 %6.0f us  errors %d  cpu srv %.2f cli %.2f other %.2f" % (
    sys.argv[1], r["rps"], a["p50"], a["p99"], r["errors"], c.get("server") or 0, c["client"],
    c["other"]))' "$label" "$out"
}
echo "== routing API on citrus dev (4 shards), $CONNS connections, ${DURATION}s"
run "GET /v1/route (ring)" --key-prefix "free-"
run "GET /v1/route (pinned tenants)" --key-prefix "bench:t"
run "POST /v1/route x$BATCH (ring)" --key-prefix "free-" --route-batch "$BATCH" --conns 4
echo "(batch: keys/s = req/s x $BATCH)"
