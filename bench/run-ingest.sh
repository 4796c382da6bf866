#!/usr/bin/env bash
# Enrollment events per second through the enrollment ingest worker, end to
# end (issue 15 item 8): build/bench_ingest sets up in a temp dir what a
# node's workers role runs on (the catalog and its registry with shards and
# pins, the records store with manifests, the embedded bus), publishes
# EVENTS enrollment events and runs the worker with the node's calls; it
# times the first event handled to the last shard ingest command on
# citrus.shard.ingest.commands, and checks that every event produced exactly
# one command, routed as its tenant's pin or the ring says.
#
# For each worker thread count in THREADS and each mode in MODES (backlog:
# every event published before the worker starts; live: a publisher thread
# publishes while the worker runs), ROUNDS rounds; then the medians, and the
# issue's target (>= 5000 events/s, backlog, 1 worker thread, the node's
# defaults) as met or NOT met.
#
# Knobs (environment): EVENTS=20000 ROUNDS=3 THREADS=1,4 MODES=backlog,live
# BATCH=100 (workers.batch) PARTITIONS=4 (bus.partitions) BUILD=build
# BENCH_TMPDIR=${TMPDIR:-/tmp} OUT=$BUILD/bench-ingest-results.json.
# Exit status: 0 all runs clean; 1 a run failed (a missed target is printed,
# not an error); 2 missing tools.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
PY=${PY:-/usr/bin/python3}
EVENTS=${EVENTS:-20000}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1,4}
MODES=${MODES:-backlog,live}
BATCH=${BATCH:-100}
PARTITIONS=${PARTITIONS:-4}
OUT=${OUT:-$BUILD/bench-ingest-results.json}
BENCH=$BUILD/bench_ingest
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

[ -x "$PY" ] || {
    echo "run-ingest: python3 not found at $PY" >&2
    exit 2
}
[ -x "$BENCH" ] || cmake --build "$BUILD" --target bench_ingest >/dev/null
TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/citrus-bench-ingest.XXXXXX")
trap 'rm -rf -- "$TMP"' EXIT
mkdir -p "$(dirname "$OUT")"
: >"$TMP/runs.jsonl"

machine_line
echo "== data dir: $TMP ($(df --output=fstype "$TMP" | tail -n 1))"
echo "== EVENTS=$EVENTS ROUNDS=$ROUNDS THREADS=$THREADS MODES=$MODES BATCH=$BATCH PARTITIONS=$PARTITIONS"
rc=0
IFS=, read -ra threads <<<"$THREADS"
IFS=, read -ra modes <<<"$MODES"
for t in "${threads[@]}"; do
    for m in "${modes[@]}"; do
        if ! "$BENCH" --events "$EVENTS" --rounds "$ROUNDS" --threads "$t" --mode "$m" \
            --batch "$BATCH" --partitions "$PARTITIONS" --dir "$TMP" | tee "$TMP/out"; then
            echo "run-ingest: bench_ingest failed (threads $t, $m)" >&2
            rc=1
            continue
        fi
        tail -n 1 "$TMP/out" >>"$TMP/runs.jsonl"
    done
done
machine_line
$PY - "$TMP/runs.jsonl" "$OUT" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
json.dump({"runs": runs}, open(sys.argv[2], "w"))
print("== medians over rounds")
print(f"{'mode':>8} {'threads':>7} {'batch':>5}  {'events/s':>9} {'committed/s':>11}  rounds (events/s)")
target = None
for r in runs:
    v = [x["events_per_s"] for x in r["rounds"]]
    c = [x["committed_per_s"] for x in r["rounds"]]
    med = statistics.median(v)
    print(f"{r['mode']:>8} {r['threads']:>7} {r['batch']:>5}  {med:>9.0f} "
          f"{statistics.median(c):>11.0f}  {', '.join(f'{x:.0f}' for x in v)}")
    if r["mode"] == "backlog" and r["threads"] == 1 and r["batch"] == 100:
        target = med
if target is not None:
    print(f"== target (issue 15): ingest >= 5000 events/s (backlog, 1 worker thread, batch 100): "
          f"{target:.0f}/s, " + ("met" if target >= 5000 else "NOT met"))
EOF
exit $rc
