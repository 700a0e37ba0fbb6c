#!/bin/sh
# Runs every test binary of the sanitizer build, the integration scenarios in
# tests/integration/, then each fuzz target over its seed corpus for
# FUZZ_TEST_SECONDS, and ends with "N passed, N failed".
# Usage: scripts/run-tests.sh BUILD_DIR
set -u
b=${1:-build}
fuzz_seconds=${FUZZ_TEST_SECONDS:-30}
passed=0
failed=0
failures=""

export PPFWD="$b/asan/ppfwd"
export PP_VECTORS="tests/vectors"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# Seconds since the previous record (each file's run time in the PASS line,
# so a slow one stands out: CI keeps the whole suite under 10 minutes).
t_last=$(date +%s)
record() {
    local now dt
    now=$(date +%s)
    dt=$((now - t_last))
    t_last=$now
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS: $1 (${dt}s)"
    else
        failed=$((failed + 1))
        failures="$failures $1"
        echo "FAIL: $1 (exit $2, ${dt}s)"
    fi
}

# Unit tests (tests/unit), then the C integration tests (tests/integration/*.c,
# which start $PPFWD).
for t in "$b"/asan/tests/test_* "$b"/asan/itests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d) continue ;; esac
    echo "== $t"
    timeout 300 "$t"
    record "$(basename "$t")" $?
done

# Daemon scenarios on loopback with real peers (HAProxy, nginx, curl,
# go-mmproxy): Debian's python3, standard library only; each file prints
# PASS/FAIL (or SKIP, with the reason) per scenario.
for t in tests/integration/test_*.py tests/packaging/test_*.py; do
    [ -f "$t" ] || continue
    echo "== $t"
    timeout 300 /usr/bin/python3 "$t"
    record "$(basename "$t" .py)" $?
done

for f in "$b"/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    echo "== $f for ${fuzz_seconds}s"
    work="$b/fuzz/work-$(basename "$f")"
    mkdir -p "$work"
    timeout $((fuzz_seconds + 60)) "$f" -max_total_time="$fuzz_seconds" \
        -dict=fuzz/pp.dict -print_final_stats=1 "$work" "$b/fuzz/corpus" 2>"$work.log"
    rc=$?
    tail -n 12 "$work.log"
    record "$(basename "$f")" $rc
done

[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
