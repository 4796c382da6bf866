#!/usr/bin/env bash
# Runs the libFuzzer targets built in BUILD_DIR (make fuzz / make fuzz-smoke).
#
#   scripts/fuzz.sh BUILD_DIR run SECONDS [TARGET...]   fuzz each target SECONDS
#   scripts/fuzz.sh BUILD_DIR smoke RUNS [TARGET...]    seed corpus + RUNS inputs
#
# Targets default to every tests/fuzz/fuzz_*.c. Each runs on a temporary copy
# of tests/fuzz/corpus/NAME (the seeds are never changed), with
# tests/fuzz/NAME.dict when it exists. A crash, leak, sanitizer report,
# timeout or failed invariant stops that target; its input is saved as
# BUILD_DIR/fuzz-artifacts/NAME-crash-*, the other targets still run, and the
# script exits 1. Smoke runs use -seed=1 so they are repeatable; full runs
# print the seed libFuzzer picked. Set FUZZ_KEEP_CORPUS=DIR to keep what the
# runs found in DIR/NAME.
set -uo pipefail

usage() { echo "usage: $0 BUILD_DIR run|smoke SECONDS|RUNS [TARGET...]" >&2; exit 2; }
[ $# -ge 3 ] || usage
build=$1 mode=$2 amount=$3
shift 3
case $mode in run|smoke) ;; *) usage ;; esac
[[ $amount =~ ^[0-9]+$ ]] || usage

root=$(cd "$(dirname "$0")/.." && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$root"/tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi

artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
work=$(mktemp -d "${TMPDIR:-/tmp}/citrus-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=()
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  bin="$build/fuzz_$name"
  if [ ! -x "$bin" ]; then
    echo "fuzz: $bin is missing (build with CITRUS_FUZZ=ON)" >&2
    failed+=("$name")
    continue
  fi
  corpus="$work/$name"
  mkdir -p "$corpus"
  [ -d "$root/tests/fuzz/corpus/$name" ] && cp -R "$root/tests/fuzz/corpus/$name/." "$corpus/"
  args=(-artifact_prefix="$artifacts/$name-" -timeout=10 -rss_limit_mb=2048 -max_len=8192
        -print_final_stats=1)
  [ -f "$root/tests/fuzz/fuzz_$name.dict" ] && args+=(-dict="$root/tests/fuzz/fuzz_$name.dict")
  if [ "$mode" = smoke ]; then
    seeds=$(find "$corpus" -type f | wc -l)
    args+=(-seed=1 -runs=$((seeds + amount)))
  else
    args+=(-max_total_time="$amount")
  fi
  log="$work/$name.log"
  start=$(date +%s)
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$bin" "${args[@]}" "$corpus" >"$log" 2>&1
  rc=$?
  secs=$(($(date +%s) - start))
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  cov=$(grep -E '^#[0-9]+.*cov:' "$log" | tail -1 | sed -E 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/\1/')
  runs=$(stat number_of_executed_units)
  speed=""
  [ "$mode" = run ] && speed=", $(stat average_exec_per_sec) exec/s"
  echo "fuzz: $name: exit $rc in ${secs}s, ${runs:-?} runs$speed, ${cov:-no coverage line}"
  if [ "$rc" -ne 0 ]; then
    failed+=("$name")
    echo "---- fuzz_$name output (tail) ----"
    tail -n 60 "$log"
    echo "----"
  fi
  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
    mkdir -p "$FUZZ_KEEP_CORPUS/$name" && cp -R "$corpus/." "$FUZZ_KEEP_CORPUS/$name/"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $artifacts)" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed"
