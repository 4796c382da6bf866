#!/usr/bin/env bash
# The cost of authentication on the KV API (issue 12): the same KV GET and
# PUT runs (bench/kvbench.c) against three `citrus dev` processes in one
# run, one per auth mode: none, api_key (an API key on every request) and
# jwt (an RS256 token made here with openssl, its JWKS in a file). Rounds
# alternate the order of the modes; the table gives medians and each mode's
# ratio to none. Targets: api_key >= 0.90x none, jwt >= 0.80x none. Every
# process it starts is on loopback, in a temp dir, stopped by PID.
#
# Knobs: DURATION=8 WARMUP=2 CONNS=16 KEYS=1000 REPEAT=3 BUILD=build
#        OUT=$BUILD/bench-auth-results.json
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
PY=${PY:-/usr/bin/python3}
CITRUS_BIN=${CITRUS_BIN:-$BUILD/citrus}
KVBENCH=${KVBENCH:-$BUILD/kvbench}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-16}
KEYS=${KEYS:-1000}
REPEAT=${REPEAT:-3}
OUT=${OUT:-$BUILD/bench-auth-results.json}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/citrus-bench-auth.XXXXXX")
PIDS=()
cleanup() {
    local rc=$? p
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    rm -rf -- "$TMP"
    exit "$rc"
}
trap cleanup EXIT

machine_line

# An RS256 key, its JWKS, and a token for it (sm-operator: reads and writes).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TMP/jwt.pem" 2>/dev/null
MOD=$(openssl rsa -in "$TMP/jwt.pem" -noout -modulus | cut -d= -f2)
"$PY" - "$MOD" "$TMP" <<'PYEOF'
import base64, json, sys, time
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
mod, tmp = sys.argv[1], sys.argv[2]
json.dump({"keys": [{"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig",
                     "n": b64(bytes.fromhex(mod)), "e": "AQAB"}]}, open(tmp + "/jwks.json", "w"))
h = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench"}).encode())
p = b64(json.dumps({"iss": "https://bench.example", "aud": "citrus", "sub": "bench",
                    "exp": int(time.time()) + 7200, "roles": ["sm-operator"]}).encode())
open(tmp + "/signing-input", "w").write(h + "." + p)
PYEOF
openssl dgst -sha256 -sign "$TMP/jwt.pem" -out "$TMP/sig" "$TMP/signing-input"
JWT="$(cat "$TMP/signing-input").$("$PY" -c 'import base64,sys;print(base64.urlsafe_b64encode(open(sys.argv[1],"rb").read()).rstrip(b"=").decode())' "$TMP/sig")"

declare -A URL PID TOKEN
start() { # start MODE ARGS...
    local mode=$1 port
    shift
    port=$(free_port)
    mkdir -p "$TMP/$mode"
    "$CITRUS_BIN" dev --data-dir "$TMP/$mode" --listen "127.0.0.1:$port" --router-listen off \
        --dev-shards 0 --log-level warn "$@" >"$TMP/$mode.log" 2>&1 &
    PID[$mode]=$!
    PIDS+=("$!")
    URL[$mode]="http://127.0.0.1:$port"
    wait_for "citrus ($mode)" "${PID[$mode]}" curl -sf "${URL[$mode]}/health/ready"
}
start none
start api_key --auth api_key
start jwt --auth jwt --jwt-issuer https://bench.example --jwt-audience citrus \
    --jwt-jwks-file "$TMP/jwks.json"
TOKEN[none]=""
TOKEN[api_key]=$(cat "$TMP/api_key/admin.key")
TOKEN[jwt]=$JWT
for m in api_key jwt; do # the token works, and none is refused without it
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${TOKEN[$m]}" \
        "${URL[$m]}/v1/cluster")
    [ "$code" = 200 ] || { echo "run-auth: $m token refused ($code)" >&2; exit 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' "${URL[$m]}/v1/cluster")
    [ "$code" = 401 ] || { echo "run-auth: $m answered $code without a token" >&2; exit 1; }
done

RES="$TMP/results.jsonl"
: >"$RES"
echo "== runs: ${DURATION}s after ${WARMUP}s warm-up, $CONNS connections, $KEYS keys"
modes=(none api_key jwt)
for ((round = 1; round <= REPEAT; round++)); do
    order=("${modes[@]:$(((round - 1) % 3))}" "${modes[@]:0:$(((round - 1) % 3))}")
    for workload in read write; do
        for m in "${order[@]}"; do
            args=(--read-ratio 1 --preload --consistency bounded)
            [ "$workload" = write ] && args=(--read-ratio 0)
            hdr=()
            [ -n "${TOKEN[$m]}" ] && hdr=(--header "Authorization: Bearer ${TOKEN[$m]}")
            out=$("$KVBENCH" --target citrus --url "${URL[$m]}" --conns "$CONNS" \
                --duration "$DURATION" --warmup "$WARMUP" --keys "$KEYS" --seed "$round" \
                --server-pid "${PID[$m]}" --quiet "${hdr[@]}" "${args[@]}" | tail -n 1)
            printf '{"round":%d,"workload":"%s","mode":"%s","result":%s}\n' \
                "$round" "$workload" "$m" "$out" >>"$RES"
            "$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); a=r["all"]["lat_us"]
print("round %s %-5s %-7s %8.0f req/s  p50 %6.0f  p99 %6.0f us  errors %s" % (
    sys.argv[2], sys.argv[3], sys.argv[4], r["rps"], a["p50"], a["p99"], r["errors"]))' \
                "$out" "$round" "$workload" "$m"
        done
    done
done

"$PY" - "$RES" "$OUT" <<'PYEOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def med(w, m):
    return statistics.median(r["result"]["rps"] for r in runs
                             if r["workload"] == w and r["mode"] == m)
print("\n== medians (req/s) and the ratio to none")
print("%-6s %10s %10s %7s %10s %7s" % ("", "none", "api_key", "ratio", "jwt", "ratio"))
summary = {}
for w in ("read", "write"):
    n, k, j = med(w, "none"), med(w, "api_key"), med(w, "jwt")
    print("%-6s %10.0f %10.0f %6.2fx %10.0f %6.2fx" % (w, n, k, k / n, j, j / n))
    summary[w] = {"none": n, "api_key": k, "jwt": j, "api_key_ratio": k / n, "jwt_ratio": j / n}
print("targets: api_key >= 0.90x, jwt >= 0.80x")
bad = [r for r in runs if not r["result"].get("ok")]
if bad:
    print("FLAGGED: %d run(s) had errors" % len(bad))
json.dump({"summary": summary, "runs": runs}, open(sys.argv[2], "w"), indent=1)
PYEOF
