#!/usr/bin/env bash
# Starts a local cluster on loopback: 3 etcd members and 3 citrus nodes, all
# from examples/cluster/citrus.json (identical configs but for --node-id).
# State, logs and PID files go under DIR (default ./cluster-data); stop it
# with scripts/cluster-down.sh DIR.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(mkdir -p "${1:-cluster-data}" && cd "${1:-cluster-data}" && pwd)
CITRUS=${CITRUS_BIN:-$ROOT/build/citrus}
ETCD=${ETCD_BIN:-/usr/bin/etcd}
CONFIG=$ROOT/examples/cluster/citrus.json

[ -x "$CITRUS" ] || { echo "cluster-up: $CITRUS not built (run make)" >&2; exit 1; }
[ -x "$ETCD" ] || { echo "cluster-up: $ETCD missing (run make deps)" >&2; exit 1; }
if ls "$DIR"/*.pid >/dev/null 2>&1; then
  echo "cluster-up: $DIR already has a running cluster (scripts/cluster-down.sh $DIR)" >&2
  exit 1
fi

names=(e1 e2 e3)
client=(2379 22379 32379)
peer=(2380 22380 32380)
initial=""
for i in 0 1 2; do
  initial+="${initial:+,}${names[$i]}=http://127.0.0.1:${peer[$i]}"
done

for i in 0 1 2; do
  n=${names[$i]}
  "$ETCD" --name "$n" --data-dir "$DIR/$n" \
    --listen-client-urls "http://127.0.0.1:${client[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${client[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${peer[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${peer[$i]}" \
    --initial-cluster "$initial" --initial-cluster-state new \
    --initial-cluster-token citrus-local --logger zap --log-level warn \
    >"$DIR/$n.log" 2>&1 &
  echo $! >"$DIR/$n.pid"
done

deadline=$((SECONDS + 20))
for port in "${client[@]}"; do
  until curl -sf -o /dev/null "http://127.0.0.1:$port/health"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "cluster-up: etcd on :$port not healthy; see $DIR/e*.log" >&2
      exit 1
    fi
    sleep 0.2
  done
done

for i in 1 2 3; do
  "$CITRUS" server --config "$CONFIG" --node-id "node$i" --data-dir "$DIR/node$i" \
    >"$DIR/node$i.log" 2>"$DIR/node$i.err" &
  echo $! >"$DIR/node$i.pid"
done

deadline=$((SECONDS + 20))
for port in 8081 8082 8083; do
  until curl -sf -o /dev/null "http://127.0.0.1:$port/health/ready"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "cluster-up: node on :$port not ready; see $DIR/*.log" >&2
      exit 1
    fi
    sleep 0.2
  done
done
echo "cluster-up: 3 etcd members (:2379 :22379 :32379) and 3 citrus nodes (:8081 :8082 :8083) ready"
echo "  state and logs in $DIR; stop with scripts/cluster-down.sh $DIR"
