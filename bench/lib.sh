# bench/lib.sh — shell helpers the run-*.sh benchmarks share (sourced; bash).
# Needs PY (a python3) set by the caller.

# stop_pid PID [SIGNAL]: SIGTERM (or SIGNAL), then SIGKILL after 10 s; only
# our own children, each by its PID.
stop_pid() {
    local pid=$1 sig=${2:-TERM}
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

# free_port: an ephemeral loopback port free right now.
free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for WHAT PID CMD...: poll CMD up to 30 s while PID lives.
wait_for() {
    local what=$1 pid=$2
    shift 2
    for _ in $(seq 1 300); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "$(basename "$0"): $what did not come up" >&2
    return 1
}

# machine_line: cores, CPU model, kernel and load, for the log of a run.
machine_line() {
    local model
    model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    echo "== machine: $(nproc) cores, ${model:-unknown CPU}, $(uname -sr), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
}

# report_run OUT RC ROUND FILE: prints a generator run's first line (and its error lines
# when RC is not 0), appends its last line (the JSON result) with "round": ROUND to FILE;
# status 1 when RC is not 0.
report_run() {
    local out=$1 rc=$2 round=$3 file=$4
    printf 'round %d  %s\n' "$round" "$(printf '%s\n' "$out" | head -n1)"
    [ "$rc" = 0 ] || printf '%s\n' "$out" | grep -E '^(first error|RESULT)' || true
    printf '%s\n' "$out" | tail -n1 |
        $PY -c 'import json,sys; r=json.loads(sys.stdin.read()); r["round"]=int(sys.argv[1]); print(json.dumps(r))' \
            "$round" >>"$file"
    [ "$rc" = 0 ]
}
