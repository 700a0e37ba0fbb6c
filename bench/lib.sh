# bench/lib.sh - what the benchmark scripts share; sourced, not run:
#   bench_init NAME     a temp dir in $tmp; at exit every process started
#                       with spawn gets SIGTERM and is reaped, and $tmp goes
#   spawn LOG CMD...    starts CMD in the background, output to LOG; its pid
#                       in LAST_PID (and in PIDS, for the cleanup)
#   cpu_ticks PID...    user + system clock ticks the processes (their threads
#                       and child processes: nginx's workers, socat's forks)
#                       used so far
#   ports_free WHO LO HI  exits 2 when a TCP or UDP port in LO..HI is held:
#                       the tools bind with SO_REUSEPORT, so a port another
#                       process holds would be shared with it, silently

bench_cleanup() {
    trap - EXIT INT TERM
    local p
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}

bench_init() {
    tmp=$(mktemp -d "/tmp/ppfwd-bench-$1.XXXXXX")
    PIDS=""
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

spawn() {
    local logf=$1
    shift
    "$@" >"$logf" 2>&1 &
    LAST_PID=$!
    PIDS="$PIDS $LAST_PID"
}

cpu_ticks() {
    local p kids sum=0 t
    for p in "$@"; do
        kids=$(pgrep -P "$p" 2>/dev/null | tr '\n' ' ')
        for t in $p $kids; do
            sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$t/stat" 2>/dev/null || echo 0)))
        done
    done
    echo "$sum"
}

ports_free() {
    local busy
    busy=$(ss -Htlnu 2>/dev/null | awk -v lo="$2" -v hi="$3" '
        { n = split($5, a, ":"); p = a[n] + 0; if (p >= lo && p <= hi) print p }' | sort -u | tr '\n' ' ')
    [ -z "$busy" ] || { echo "$1: ports in use: $busy" >&2; exit 2; }
}
