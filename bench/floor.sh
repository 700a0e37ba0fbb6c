#!/bin/bash
# bench/floor.sh BUILD_DIR - ppfwd's TCP relay against the floor of a TCP
# proxy: BUILD_DIR/bench/bench_tcp_relay, a relay that does nothing but
# accept, connect, copy both ways and pass the half-close on, with the same
# epoll calls as ppfwd (relay-lt: level-triggered, 4 epoll_ctl per
# connection), edge-triggered (relay-et, -e: each socket registered once, 2
# epoll_ctl), and with io_uring for the accept, connect and close but
# readiness for the data (relay-ring, -r: issue 14's candidate; multishot
# accept, the connect and both closes through the ring, a multishot poll per
# socket, plain read/send/shutdown: no accept4, connect, epoll_ctl or close
# calls). relay-ring-s (-r -s) also sends the shutdown through the ring,
# where the kernel runs it in an io-wq worker thread. Two designs for an
# io_uring backend under a level-triggered loop: relay-ring-lt (-r -l), as
# relay-ring but each socket's read poll one-shot and re-armed after every
# completion (epoll's level-triggered semantics over the ring), and
# relay-hybrid (-H), epoll for the data (the level-triggered relay's
# epoll_ctl) with the accept, connect and closes through a ring the thread
# sleeps in, the epoll fd watched by a one-shot poll in it. These three are
# not in the default targets.
#
# Each round starts every target afresh, in an order rotated by one from the
# round before, and runs bench_tcp_load rate (64 clients, connect + 64-byte
# echo + close, BENCH_FLOOR_SECS) through it to bench_tcp_echo. It prints the
# medians of conn/s and of the CPU per connection (user + system, from /proc
# and time) of the proxy, the backend and the load generator, the proxy's
# CPU over the backend's plus the load generator's (issue 14's floor: a proxy
# does one side of each of two connections), and the per-round ratios to the
# level-triggered relay.
#
# Knobs: BENCH_FLOOR_ROUNDS (5), BENCH_FLOOR_SECS (3), BENCH_FLOOR_PORT
# (28600: uses 28600-28610), BENCH_FLOOR_TARGETS ("ppfwd relay-lt relay-et
# relay-ring"; relay-ring-s, relay-ring-lt, relay-hybrid and ppfwd-epoll,
# ppfwd on its epoll loop backend (PPFWD_LOOP=epoll), also known),
# PPFWD (BUILD_DIR/ppfwd). The io_uring targets are dropped, said on stderr,
# when the relay was built without liburing or the kernel refuses io_uring.
# Exit status 2 when the benchmark could not run.
set -u

[ $# -eq 1 ] || { echo "usage: bench/floor.sh BUILD_DIR" >&2; exit 2; }
B=$(cd "$1" && pwd)
ROUNDS=${BENCH_FLOOR_ROUNDS:-5}
SECS=${BENCH_FLOOR_SECS:-3}
BASE=${BENCH_FLOOR_PORT:-28600}
PPFWD=${PPFWD:-$B/ppfwd}
TLOAD=$B/bench/bench_tcp_load
TECHO=$B/bench/bench_tcp_echo
RELAY=$B/bench/bench_tcp_relay
HZ=$(getconf CLK_TCK)
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

for f in "$PPFWD" "$TLOAD" "$TECHO" "$RELAY"; do
    [ -x "$f" ] || { echo "bench/floor.sh: $f is missing (make bench builds the tools)" >&2; exit 2; }
done
ports_free "bench/floor.sh (set BENCH_FLOOR_PORT)" "$BASE" $((BASE + 10))

E=$BASE
P=$((BASE + 5))
TARGETS=${BENCH_FLOOR_TARGETS:-"ppfwd relay-lt relay-et relay-ring"}

bench_init floor
spawn "$tmp/echo.log" "$TECHO" -p "$E"
ECHO_PID=$LAST_PID
sleep 0.3

# start TARGET: a fresh TARGET in T_PID, once it relays; returns 1 (its
# log in $tmp/t.log) when it does not.
start() {
    case $1 in
    ppfwd) spawn "$tmp/t.log" "$PPFWD" -w 2 -l error "tcp://127.0.0.1:$P/127.0.0.1:$E" ;;
    ppfwd-epoll) PPFWD_LOOP=epoll spawn "$tmp/t.log" "$PPFWD" -w 2 -l error \
        "tcp://127.0.0.1:$P/127.0.0.1:$E" ;;
    relay-lt) spawn "$tmp/t.log" "$RELAY" -j 2 -p "$P" -u "$E" ;;
    relay-et) spawn "$tmp/t.log" "$RELAY" -j 2 -e -p "$P" -u "$E" ;;
    relay-ring) spawn "$tmp/t.log" "$RELAY" -j 2 -r -p "$P" -u "$E" ;;
    relay-ring-s) spawn "$tmp/t.log" "$RELAY" -j 2 -r -s -p "$P" -u "$E" ;;
    relay-ring-lt) spawn "$tmp/t.log" "$RELAY" -j 2 -r -l -p "$P" -u "$E" ;;
    relay-hybrid) spawn "$tmp/t.log" "$RELAY" -j 2 -H -p "$P" -u "$E" ;;
    *) echo "bench/floor.sh: unknown target $1" >&2; exit 2 ;;
    esac
    T_PID=$LAST_PID
    local i=0
    while [ $i -lt 50 ]; do
        kill -0 "$T_PID" 2>/dev/null || { wait "$T_PID" 2>/dev/null; return 1; }
        "$TLOAD" probe -p "$P" >/dev/null 2>&1 && return 0
        sleep 0.1
        i=$((i + 1))
    done
    stop
    return 1
}

stop() {
    kill -TERM "$T_PID" 2>/dev/null
    wait "$T_PID" 2>/dev/null
}

# The io_uring targets need a relay built with liburing and a kernel that
# lets it open a ring: dropped, said, when it cannot.
kept=""
for t in $TARGETS; do
    case $t in
    relay-ring* | relay-hybrid)
        if ! start "$t"; then
            echo "bench/floor.sh: $t dropped: $(tail -n 1 "$tmp/t.log")" >&2
            continue
        fi
        stop
        ;;
    esac
    kept="$kept $t"
done
TARGETS=${kept# }
[ -n "$TARGETS" ] || { echo "bench/floor.sh: no target left" >&2; exit 2; }

: >"$tmp/results"
read -r -a order <<<"$TARGETS"
for r in $(seq 1 "$ROUNDS"); do
    n=${#order[@]}
    for ((i = 0; i < n; i++)); do
        t=${order[$(((i + r - 1) % n))]}
        start "$t" || { echo "bench/floor.sh: $t did not start: $(tail -n 3 "$tmp/t.log")" >&2; exit 2; }
        px0=$(cpu_ticks "$T_PID")
        be0=$(cpu_ticks "$ECHO_PID")
        out=$( { TIMEFORMAT='LOADCPU %U %S'; time "$TLOAD" rate -p "$P" -c 64 -t "$SECS"; } 2>&1 |
            grep '^RESULT\|^LOADCPU')
        px1=$(cpu_ticks "$T_PID")
        be1=$(cpu_ticks "$ECHO_PID")
        stop
        cps=$(echo "$out" | sed -n 's/.* cps=\([0-9.]*\).*/\1/p')
        p99=$(echo "$out" | sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p')
        ld=$(echo "$out" | awk '/^LOADCPU/ { print $2 + $3 }')
        [ -n "$cps" ] && [ -n "$ld" ] || { echo "bench floor: round $r: $t gave no result" >&2; continue; }
        # Connections over the whole run, warm-up (0.5 s) included.
        awk -v r="$r" -v t="$t" -v cps="$cps" -v p99="$p99" -v s="$SECS" -v hz="$HZ" \
            -v px=$((px1 - px0)) -v be=$((be1 - be0)) -v ld="$ld" 'BEGIN {
                n = cps * (s + 0.5)
                printf "%s %s %s %s %.2f %.2f %.2f\n", r, t, cps, p99, px / hz * 1e6 / n, be / hz * 1e6 / n, ld * 1e6 / n
            }' >>"$tmp/results"
        echo "bench floor: round $r/$ROUNDS: $t: $(tail -n 1 "$tmp/results" | cut -d ' ' -f 3-)" >&2
    done
done

awk -v rounds="$ROUNDS" -v secs="$SECS" -v ts="$TARGETS" '
function med(a, n,    i, j, t) {
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ cps[$1, $2] = $3; p99[$1, $2] = $4; px[$1, $2] = $5; be[$1, $2] = $6; ld[$1, $2] = $7 }
END {
    printf "TCP proxy floor: %d rounds x %s s, 64 clients, connect + 64-byte echo + close; medians\n\n", rounds, secs
    printf "%-13s | %8s %7s | %7s %8s %7s %9s | %9s %9s\n", "target", "conn/s", "p99 ms", "proxy", "backend", "load", "px/(b+l)", "x relay", "CPU x"
    n = split(ts, t, " ")
    for (i = 1; i <= n; i++) {
        k = 0
        for (r = 1; r <= rounds; r++) {
            if (!((r, t[i]) in cps))
                continue
            k++
            a[k] = cps[r, t[i]]; b[k] = p99[r, t[i]]; c[k] = px[r, t[i]]; d[k] = be[r, t[i]]; e[k] = ld[r, t[i]]
            f[k] = px[r, t[i]] / (be[r, t[i]] + ld[r, t[i]])
            g[k] = ((r, "relay-lt") in cps) ? cps[r, t[i]] / cps[r, "relay-lt"] : 0
            h[k] = ((r, "relay-lt") in px) ? px[r, t[i]] / px[r, "relay-lt"] : 0
        }
        if (k == 0) { printf "%-13s | n/a\n", t[i]; continue }
        printf "%-13s | %8.0f %7.2f | %7.1f %8.1f %7.1f %8.2fx | %8.3fx %8.3fx\n", t[i], med(a, k), med(b, k), med(c, k), med(d, k), med(e, k), med(f, k), med(g, k), med(h, k)
    }
    print ""
    print "CPU: µs per connection, user + system; px/(b+l): the proxy over the backend plus the"
    print "load generator (issue 14 wants <= 1.0x); x relay: per-round ratios to relay-lt (rate,"
    print "proxy CPU). relay-lt: bench_tcp_relay, the calls ppfwd makes, nothing else; relay-et:"
    print "the same edge-triggered, 2 epoll_ctl per connection fewer; relay-ring: accept, connect and"
    print "close through io_uring, a multishot poll per socket for the data (-r); relay-ring-s: also"
    print "the shutdown through the ring (an io-wq thread runs it); relay-ring-lt: relay-ring with"
    print "one-shot read polls re-armed after each completion (level-triggered, -r -l); relay-hybrid:"
    print "epoll for the data, the accept, connect and close through a ring that watches the epoll fd (-H)."
}' "$tmp/results"
