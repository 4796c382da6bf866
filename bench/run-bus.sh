#!/usr/bin/env bash
# Durable publish, side by side in one run (issue 15 item 8): the embedded bus
# (bus_publish on src/bus/bus_sqlite.c: returns once an fdatasync of the log
# covers the message's commit) against Redis Streams (XADD on Debian's redis-server with
# appendonly yes + appendfsync always: it fsyncs its AOF before it answers).
# One harness, build/bench_bus, measures both the same way: N threads, each
# with its own connection for Redis (hiredis, synchronous XADD), ~200-byte
# CloudEvents-like values, distinct keys, the latency of each call.
#
# What it does: installs redis-server and libhiredis-dev when missing (apt-get;
# nothing else), rebuilds bench_bus with hiredis if it was built without it,
# starts redis-server on a loopback ephemeral port in a temp dir (the embedded
# logs go in the same temp dir: the same filesystem and fsync), runs
# bench_bus for ROUNDS rounds (in each, for each thread count, both backends
# back to back, which one first alternating), prints every run, then the
# medians and embedded/redis ratios, and stops the redis-server it started by
# its PID.
#
# Citrus over HTTP, when the binary has the route: `citrus dev` (no shards, no router,
# no auth) on another loopback ephemeral port in the same temp dir, and
# bench_bus POSTs one envelope per request to /v1/topics/$HTTP_TOPIC/events
# (one keep-alive connection per producer thread, libcurl); answered once
# durable on the node's embedded bus. Skipped, and said so, when the node
# has no /v1/topics (HTTP=off skips it too).
#
# Knobs (environment): DURATION=5 (s per run) THREADS=1,16 ROUNDS=3
# VALUE_BYTES=200 PARTITIONS=4 HTTP=auto HTTP_TOPIC=citrus.shard.ingest.commands
# (a topic no worker of citrus dev reads, so that the HTTP runs measure the
# publish alone, as the Redis runs do; citrus.platform.events is consumed
# live by the event notification worker, whose polls share the bus writer)
# BUILD=build CITRUS_BIN=$BUILD/citrus BENCH_TMPDIR=${TMPDIR:-/tmp}
# OUT=$BUILD/bench-bus-results.json (the runs as JSON).
# Exit status: 0 all runs clean; 1 a run failed or redis died; 2 missing tools.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
PY=${PY:-/usr/bin/python3}
DURATION=${DURATION:-5}
THREADS=${THREADS:-1,16}
ROUNDS=${ROUNDS:-3}
VALUE_BYTES=${VALUE_BYTES:-200}
PARTITIONS=${PARTITIONS:-4}
OUT=${OUT:-$BUILD/bench-bus-results.json}
HTTP=${HTTP:-auto}
HTTP_TOPIC=${HTTP_TOPIC:-citrus.shard.ingest.commands}
CITRUS_BIN=${CITRUS_BIN:-$BUILD/citrus}
BENCH=$BUILD/bench_bus
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

log() { printf '[run-bus] %s\n' "$*" >&2; }

# ------------------------------------------------------------------ what the run needs
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
pkg-config --exists hiredis 2>/dev/null || missing+=(libhiredis-dev)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null; then
        apt-get update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null
    fi
fi
command -v redis-server >/dev/null || {
    log "redis-server not found"
    exit 2
}
[ -x "$PY" ] || {
    log "python3 not found at $PY"
    exit 2
}
# bench_bus links hiredis only when CMake found it: configure again when the
# binary in hand was built without it (or is not built yet).
if [ ! -x "$BENCH" ] || ! ldd "$BENCH" | grep -q hiredis; then
    log "building bench_bus with hiredis"
    cmake -S "$ROOT" -B "$BUILD" >/dev/null
    cmake --build "$BUILD" --target bench_bus >/dev/null
fi
ldd "$BENCH" | grep -q hiredis || {
    log "$BENCH was built without hiredis"
    exit 2
}

# ------------------------------------------------------------------ redis-server
TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/citrus-bench-bus.XXXXXX")
REDIS_PID=""
CITRUS_PID=""
cleanup() {
    stop_pid "$CITRUS_PID" TERM
    stop_pid "$REDIS_PID" TERM
    rm -rf -- "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$TMP/redis" "$TMP/embedded" "$(dirname "$OUT")"
PORT=$(free_port)
# No RDB snapshots (save ""): the AOF alone, fsync'd before each answer.
redis-server --bind 127.0.0.1 --port "$PORT" --dir "$TMP/redis" --appendonly yes \
    --appendfsync always --save "" --daemonize no --protected-mode yes \
    --logfile "$TMP/redis/redis.log" &
REDIS_PID=$!
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" = PONG ]; }
wait_for redis-server "$REDIS_PID" redis_up || {
    tail -n 20 "$TMP/redis/redis.log" >&2 || true
    exit 1
}

HTTP_ARGS=()
if [ "$HTTP" != off ] && [ -x "$CITRUS_BIN" ] && command -v curl >/dev/null; then
    CPORT=$(free_port)
    "$CITRUS_BIN" dev --data-dir "$TMP/citrus" --listen "127.0.0.1:$CPORT" --dev-shards 0 \
        --router-listen off --log-level warn >"$TMP/citrus.log" 2>&1 &
    CITRUS_PID=$!
    citrus_up() { curl -sf "http://127.0.0.1:$CPORT/health/ready"; }
    wait_for citrus "$CITRUS_PID" citrus_up || {
        tail -n 20 "$TMP/citrus.log" >&2 || true
        exit 1
    }
    if curl -sf "http://127.0.0.1:$CPORT/v1/topics" >/dev/null; then
        HTTP_ARGS=(--http "http://127.0.0.1:$CPORT" --http-topic "$HTTP_TOPIC")
    else
        log "citrus has no /v1/topics: no HTTP runs"
        stop_pid "$CITRUS_PID" TERM
        CITRUS_PID=""
    fi
fi

machine_line
echo "== data dir: $TMP ($(df --output=fstype "$TMP" | tail -n 1)), $(
    redis-server --version | cut -d' ' -f1-3), hiredis $(pkg-config --modversion hiredis)"
echo "== DURATION=${DURATION}s THREADS=$THREADS ROUNDS=$ROUNDS VALUE_BYTES=$VALUE_BYTES PARTITIONS=$PARTITIONS"

set +e
"$BENCH" --seconds "$DURATION" --threads "$THREADS" --rounds "$ROUNDS" --dir "$TMP/embedded" \
    --partitions "$PARTITIONS" --value-bytes "$VALUE_BYTES" --redis "127.0.0.1:$PORT" \
    --backends "embedded,redis${HTTP_ARGS[*]:+,http}" "${HTTP_ARGS[@]}" |
    tee "$TMP/bench.out"
rc=${PIPESTATUS[0]}
set -e
machine_line
kill -0 "$REDIS_PID" 2>/dev/null || {
    log "redis-server died"
    rc=1
}
if [ -n "$CITRUS_PID" ] && ! kill -0 "$CITRUS_PID" 2>/dev/null; then
    log "citrus died"
    rc=1
fi
[ "$rc" = 0 ] || {
    log "bench_bus failed (status $rc)"
    exit 1
}
tail -n 1 "$TMP/bench.out" >"$OUT"

# ------------------------------------------------------------------ medians
$PY - "$OUT" <<'EOF'
import json, statistics, sys
runs = json.load(open(sys.argv[1]))["runs"]
threads = sorted({r["threads"] for r in runs})
def med(backend, n, field):
    v = [r[field] for r in runs if r["backend"] == backend and r["threads"] == n]
    return statistics.median(v) if v else None
print("== medians over rounds")
print(f"{'threads':>7}  {'embedded/s':>10} {'p50 us':>7} {'p99 us':>7} {'per fsync':>10}"
      f"   {'redis/s':>8} {'p50 us':>7} {'p99 us':>7}   {'ratio':>5}")
for n in threads:
    e, r = med("embedded", n, "publishes_per_s"), med("redis", n, "publishes_per_s")
    per = statistics.median(x["published"] / x["syncs"] for x in runs
                            if x["backend"] == "embedded" and x["threads"] == n and x["syncs"])
    print(f"{n:>7}  {e:>10.0f} {med('embedded', n, 'p50_us'):>7.0f} "
          f"{med('embedded', n, 'p99_us'):>7.0f} {per:>10.1f}   {r:>8.0f} "
          f"{med('redis', n, 'p50_us'):>7.0f} {med('redis', n, 'p99_us'):>7.0f}   {e / r:>5.2f}")
if any(x["backend"] == "http" for x in runs):
    print(f"{'threads':>7}  {'http/s':>10} {'p50 us':>7} {'p99 us':>7}   {'http/redis':>10}")
    for n in threads:
        h = med("http", n, "publishes_per_s")
        print(f"{n:>7}  {h:>10.0f} {med('http', n, 'p50_us'):>7.0f} "
              f"{med('http', n, 'p99_us'):>7.0f}   {h / med('redis', n, 'publishes_per_s'):>10.2f}")
if 16 in threads:
    e, r = med("embedded", 16, "publishes_per_s"), med("redis", 16, "publishes_per_s")
    print(f"== target (issue 15): embedded >= 1.5x redis at 16 producers: {e / r:.2f}x, "
          + ("met" if e >= 1.5 * r else "NOT met"))
EOF
