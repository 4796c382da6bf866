#!/usr/bin/env bash
# Stops exactly the processes scripts/cluster-up.sh started (by their PID
# files in DIR, default ./cluster-data). Keeps the data; delete DIR to reset.
set -uo pipefail
DIR=${1:-cluster-data}
shopt -s nullglob
pids=()
for f in "$DIR"/node*.pid "$DIR"/e*.pid; do
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  rm -f "$f"
done
for pid in "${pids[@]}"; do
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
done
echo "cluster-down: stopped ${#pids[@]} processes"
