#!/bin/bash
# bench/cost.sh BUILD_DIR [PPFWD] - the cost model's figures for one ppfwd
# binary (BUILD_DIR/ppfwd unless given): what a proxied TCP connection and a
# proxied UDP datagram cost it, in system calls and in user-space instructions.
# Unlike a rate or a CPU time, both are near-deterministic, so they stay
# comparable on a machine shared with other jobs (docs/design.md, "the cost
# model").
#
#   syscalls   strace -f -c attached to every thread of a running ppfwd for a
#              load of BENCH_COST_SECS; divided by the upstream socket() calls
#              (TCP: one per proxied connection, counted by strace itself; the
#              connect may go through io_uring, the socket() does not) or by
#              the answers the load generator got (UDP: all=, one request and
#              its reply per unit, as bench/ab.sh counts). Everything the
#              workers do is in it: epoll_wait, the accept4 that ends a batch
#              with EAGAIN, timers.
#   instr      valgrind --tool=callgrind on ppfwd, counters zeroed once it
#              serves and dumped after the load (callgrind_control), divided
#              the same way (TCP: callgrind's count of calls to socket).
#              User space only: the kernel's share is what the syscalls cost.
#              Under valgrind ppfwd runs on its epoll backend (loop_new: the
#              ring deadlocks valgrind), so TCP's count is epoll's path.
#
# Load: bench_tcp_load rate (64 clients, connect + 64-byte echo + close),
# bench_udp_load (window 32 over 4 sockets), as bench/ab.sh. Modes: TCP plain,
# send-proxy=v2, accept-proxy=required; UDP 64 B plain, 1,400 B plain,
# 64 B send-proxy=v2. Knobs: BENCH_COST_SECS (2), BENCH_COST_PORT (28500:
# uses 28500-28515, which must be free), BENCH_COST_DETAIL=1 also prints each syscall per unit,
# BENCH_COST_MODES (all six) a subset.
# Then the kernel's price list (BUILD_DIR/bench/bench_kernel, BENCH_COST_KERNEL=0
# skips it): a system call by itself, and a UDP datagram over loopback to the
# sender and the receiver by how many travel together, by sendmmsg or GSO: the
# floor under the per-datagram figures (docs/design.md, "the cost model").
# Without strace or valgrind their column is n/a. Exit status 2 when the
# benchmark could not run.
set -u

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: bench/cost.sh BUILD_DIR [PPFWD]" >&2; exit 2; }
B=$(cd "$1" && pwd)
PPFWD=${2:-$B/ppfwd}
SECS=${BENCH_COST_SECS:-2}
BASE=${BENCH_COST_PORT:-28500}
DETAIL=${BENCH_COST_DETAIL:-0}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
TLOAD=$B/bench/bench_tcp_load
TECHO=$B/bench/bench_tcp_echo
ULOAD=$B/bench/bench_udp_load
UECHO=$B/bench/bench_udp_echo
for f in "$PPFWD" "$TLOAD" "$TECHO" "$ULOAD" "$UECHO"; do
    [ -x "$f" ] || { echo "bench/cost.sh: $f is missing (make bench builds the tools)" >&2; exit 2; }
done
have_strace=0
have_cg=0
command -v strace >/dev/null 2>&1 && strace -f -c -o /dev/null true 2>/dev/null && have_strace=1
command -v valgrind >/dev/null 2>&1 && command -v callgrind_control >/dev/null 2>&1 && have_cg=1

ports_free "bench/cost.sh (set BENCH_COST_PORT)" "$BASE" $((BASE + 15))

E_TCP=$BASE
E_TCP_PP=$((BASE + 1))
E_UDP=$((BASE + 2))
E_UDP_PP=$((BASE + 3))
P=$((BASE + 10))

bench_init cost

spawn "$tmp/e1.log" "$TECHO" -p "$E_TCP"
spawn "$tmp/e2.log" "$TECHO" -p "$E_TCP_PP" -P
spawn "$tmp/e3.log" "$UECHO" -p "$E_UDP"
spawn "$tmp/e4.log" "$UECHO" -p "$E_UDP_PP" -P
sleep 0.3

# start [WRAPPER...]: ppfwd with the five routes (as bench/ab.sh), under the
# wrapper if any; sets PP_PID once every route answers.
start() {
    spawn "$tmp/ppfwd.log" "$@" "$PPFWD" -w 2 -l warn \
        "tcp://127.0.0.1:$P/127.0.0.1:$E_TCP" \
        "tcp://127.0.0.1:$((P + 1))/127.0.0.1:$E_TCP_PP?send-proxy=v2" \
        "tcp://127.0.0.1:$((P + 2))/127.0.0.1:$E_TCP?accept-proxy=required" \
        "udp://127.0.0.1:$((P + 3))/127.0.0.1:$E_UDP" \
        "udp://127.0.0.1:$((P + 4))/127.0.0.1:$E_UDP_PP?send-proxy=v2"
    PP_PID=$LAST_PID
    local i=0
    while [ $i -lt 100 ]; do
        "$TLOAD" probe -p "$((P + 1))" >/dev/null 2>&1 && "$ULOAD" -p "$((P + 4))" --probe && return 0
        sleep 0.2
        i=$((i + 1))
    done
    echo "bench/cost.sh: ppfwd did not start: $(tail -n 3 "$tmp/ppfwd.log")" >&2
    exit 2
}

# stop: ends ppfwd; says so when it logged more than the end of a load
# explains (a warning in a benchmark means something failed, and what failed
# is not what is being measured).
stop() {
    kill -TERM "$PP_PID" 2>/dev/null
    wait "$PP_PID" 2>/dev/null
    local n
    n=$(grep -c '"level"' "$tmp/ppfwd.log")
    # The load's clients cut off at its end (64 at most) log their close.
    [ "$n" -le 64 ] || echo "bench/cost.sh: ppfwd logged $n lines, the first: $(grep -m 1 '"level"' "$tmp/ppfwd.log")" >&2
}

# load MODE: runs one mode's load; prints the UDP answers (all=), or 0 for TCP.
load() {
    local line
    case $1 in
    tcp-plain) "$TLOAD" rate -p "$P" -c 64 -t "$SECS" -w 0 >/dev/null; echo 0; return ;;
    tcp-sendv2) "$TLOAD" rate -p "$((P + 1))" -c 64 -t "$SECS" -w 0 >/dev/null; echo 0; return ;;
    tcp-acceptp) "$TLOAD" rate -p "$((P + 2))" -c 64 -t "$SECS" -w 0 -2 >/dev/null; echo 0; return ;;
    udp-64) line=$("$ULOAD" -p "$((P + 3))" -s 64 -t "$SECS") ;;
    udp-1400) line=$("$ULOAD" -p "$((P + 3))" -s 1400 -t "$SECS") ;;
    udp-v2-64) line=$("$ULOAD" -p "$((P + 4))" -s 64 -t "$SECS") ;;
    esac
    echo "$line" | sed -n 's/.* all=\([0-9]*\).*/\1/p'
}

MODES=${BENCH_COST_MODES:-tcp-plain tcp-sendv2 tcp-acceptp udp-64 udp-1400 udp-v2-64}
: >"$tmp/results"

if [ $have_strace = 1 ]; then
    echo "bench cost: strace -c" >&2
    start
    for m in $MODES; do
        strace -f -c -o "$tmp/st.$m" -p "$PP_PID" 2>/dev/null & # -p: every thread
        st=$!
        sleep 0.5
        units=$(load "$m")
        kill -INT "$st"
        wait "$st" 2>/dev/null
        # strace -c's table: % time, seconds, usecs/call, calls, [errors,] syscall.
        awk -v m="$m" -v u="$units" '
            $NF == "total" { tot = $4 }
            NF >= 5 && $1 ~ /^[0-9.]+$/ && $NF != "total" { n[$NF] = $4 }
            END {
                if (m ~ /^tcp/) u = n["socket"]
                if (u <= 0) exit
                printf "%s syscalls %.2f %d\n", m, tot / u, u
                for (s in n) printf "%s detail %s %.2f\n", m, s, n[s] / u
            }' "$tmp/st.$m" >>"$tmp/results"
    done
    stop
fi

if [ $have_cg = 1 ]; then
    for m in $MODES; do
        echo "bench cost: callgrind $m" >&2
        start valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$m"
        callgrind_control --zero "$PP_PID" >/dev/null 2>&1
        units=$(load "$m")
        callgrind_control --dump "$PP_PID" >/dev/null 2>&1
        stop
        f=$(ls "$tmp/cg.$m".* 2>/dev/null | head -n 1)
        [ -n "$f" ] || continue
        # Ir over the dump; TCP units are the calls to socket (names are
        # compressed: "cfn=(id) name" once, "cfn=(id)" after).
        awk -v m="$m" -v u="$units" '
            /^c?fn=\([0-9]+\) / { id = $1; sub(/^c?fn=/, "", id); name[id] = $2 }
            /^cfn=/ { id = $1; sub(/^cfn=/, "", id); cur = id; next }
            /^calls=/ { split($1, a, "="); if (name[cur] == "socket") c += a[2] }
            /^summary:/ { ir = $2 }
            END {
                if (m ~ /^tcp/) u = c
                if (u > 0) printf "%s instr %.0f %d\n", m, ir / u, u
            }' "$f" >>"$tmp/results"
    done
fi

awk -v detail="$DETAIL" -v ms="$MODES" -v hs="$have_strace" -v hc="$have_cg" '
{ if ($2 == "detail") d[$1, $3] = $4; else { v[$1, $2] = $3; u[$1, $2] = $4 } }
END {
    print "cost model: per proxied TCP connection (connect + 64-byte echo + close) or UDP"
    print "datagram (one request and its reply), ppfwd -w 2, under load"
    printf "%-12s | %12s %8s | %14s %8s\n", "mode", "syscalls", "(units)", "instructions", "(units)"
    n = split(ms, m, " ")
    for (i = 1; i <= n; i++) {
        s = ((m[i], "syscalls") in v) ? sprintf("%.2f", v[m[i], "syscalls"]) : "n/a"
        c = ((m[i], "instr") in v) ? sprintf("%.0f", v[m[i], "instr"]) : "n/a"
        printf "%-12s | %12s %8s | %14s %8s\n", m[i], s, u[m[i], "syscalls"], c, u[m[i], "instr"]
    }
    if (!hs) print "syscalls: n/a, strace is missing or cannot trace here"
    if (!hc) print "instructions: n/a, valgrind (callgrind) is missing"
    print "syscalls: strace -f -c over every thread, divided by the upstream sockets (TCP)"
    print "or the answers (UDP); instructions: callgrind, user space only."
    if (detail == 1)
        for (i = 1; i <= n; i++) {
            line = ""
            for (k in d) { split(k, kk, SUBSEP); if (kk[1] == m[i] && d[k] >= 0.01) line = line sprintf(" %s=%.2f", kk[2], d[k]) }
            print m[i] ":" line
        }
}' "$tmp/results"

if [ "${BENCH_COST_KERNEL:-1}" != 0 ] && [ -x "$B/bench/bench_kernel" ]; then
    echo
    echo "the kernel's price list (bench_kernel):"
    "$B/bench/bench_kernel" -n 100000 || echo "bench_kernel failed"
fi
