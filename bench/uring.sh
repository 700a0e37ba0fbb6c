#!/bin/bash
# bench/uring.sh BUILD_DIR - what io_uring saves one side of the work: the
# echo backends with their epoll loop and with their io_uring loop (-u:
# multishot accept and recv into provided buffers, one io_uring_submit_and_wait
# per loop), under the same load, straight from the load generator (no proxy).
# An upper bound for what an io_uring loop could save ppfwd per connection and
# per datagram: the backends do the least work a side can do.
#
# Workloads: TCP connections (bench_tcp_load rate: 64 clients, connect, a
# 64-byte echo, close) against bench_tcp_echo; UDP datagrams of 64 and 1,400
# bytes (bench_udp_load: window 32 over 4 sockets) against bench_udp_echo.
# Each round runs every workload on both loops back to back, each on a fresh
# backend process, the loop that goes first alternating from round to round
# (the load generator and the backend share the machine's 2 cores). Per run
# it records the rate and the backend's CPU per unit: user + system ticks
# from /proc/PID/stat over the run, divided by the units of the whole run
# (TCP: connections at the measured rate times the run's length, warm-up
# included; UDP: every answer, all=). It prints the medians over the rounds
# and the medians of the per-round ratios io_uring/epoll. Then, when perf can
# count the raw_syscalls:sys_enter tracepoint, one untimed run per workload
# and loop counts the backend's system calls per unit (a separate run:
# counting slows every system call on the machine a little).
#
# Knobs: BENCH_URING_ROUNDS (5), BENCH_URING_SECS (3), BENCH_URING_PORT (28300:
# uses 28300-28320, which must be free), BENCH_URING_SYSCALLS=0 skips the
# system call count. When the echo tools were built without liburing, or the
# kernel refuses io_uring (/proc/sys/kernel/io_uring_disabled, a seccomp
# filter), it says so and exits 0. Exit status 2 when it could not run.
set -u

[ $# -eq 1 ] || { echo "usage: bench/uring.sh BUILD_DIR" >&2; exit 2; }
B=$(cd "$1" && pwd)
ROUNDS=${BENCH_URING_ROUNDS:-5}
SECS=${BENCH_URING_SECS:-3}
BASE=${BENCH_URING_PORT:-28300}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
TLOAD=$B/bench/bench_tcp_load
TECHO=$B/bench/bench_tcp_echo
ULOAD=$B/bench/bench_udp_load
UECHO=$B/bench/bench_udp_echo
for f in "$TLOAD" "$TECHO" "$ULOAD" "$UECHO"; do
    [ -x "$f" ] || { echo "bench/uring.sh: $f is missing (make bench builds the tools)" >&2; exit 2; }
done
log() { echo "bench uring: $*" >&2; }
skip() {
    echo "io_uring vs epoll in the echo backends: skipped: $*"
    exit 0
}

[ "$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)" = 2 ] &&
    skip "io_uring is disabled (/proc/sys/kernel/io_uring_disabled = 2)"
ports_free "bench/uring.sh (set BENCH_URING_PORT)" "$BASE" $((BASE + 20))
bench_init uring
HZ=$(getconf CLK_TCK)

# Ports: UDP backends BASE+16 (epoll) and BASE+17 (io_uring). TCP backends
# take BASE..BASE+15 in turn, a new port each run: a run leaves some 28,000
# client sockets in TIME_WAIT (all the local ports there are), which would
# make the next run's connects to the same port hunt for a free one (the
# first runs here fell to a few hundred connections/s); to another port
# their 4-tuples are new. Within a run, 64 clients at full rate still come
# back to ports closed a second before (tcp_tw_reuse), equally for both loops.
TCP_RUN=0
next_port() {
    case $1 in
    tcp) BE_PORT=$((BASE + TCP_RUN % 16)); TCP_RUN=$((TCP_RUN + 1)) ;;
    *) BE_PORT=$((BASE + 16)); [ "$2" = uring ] && BE_PORT=$((BASE + 17)) ;;
    esac
}

# start WORKLOAD LOOP: a fresh backend in BE_PID, once it answers; returns 1
# (its log in $tmp/be.log) when it does not.
start() {
    local p i=0 flag=""
    next_port "$1" "$2"
    p=$BE_PORT
    [ "$2" = uring ] && flag=-u
    case $1 in
    tcp) spawn "$tmp/be.log" "$TECHO" -p "$p" $flag ;;
    *) spawn "$tmp/be.log" "$UECHO" -p "$p" $flag ;;
    esac
    BE_PID=$LAST_PID
    while [ $i -lt 50 ]; do
        kill -0 "$BE_PID" 2>/dev/null || { wait "$BE_PID" 2>/dev/null; return 1; }
        case $1 in
        tcp) "$TLOAD" probe -p "$p" >/dev/null 2>&1 && return 0 ;;
        *) "$ULOAD" --probe -p "$p" && return 0 ;;
        esac
        sleep 0.1
        i=$((i + 1))
    done
    stop
    return 1
}

# stop: ends the backend (SIGTERM; SIGKILL, said, if it is still there after 3 s).
stop() {
    local i=0
    kill -TERM "$BE_PID" 2>/dev/null
    while kill -0 "$BE_PID" 2>/dev/null && [ $i -lt 30 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$BE_PID" 2>/dev/null; then
        log "backend $BE_PID ignored SIGTERM: killed"
        kill -KILL "$BE_PID" 2>/dev/null
    fi
    wait "$BE_PID" 2>/dev/null
}

# load WORKLOAD SECS: runs the load against the backend started last; prints
# "rate units problems".
load() {
    local p=$BE_PORT out
    case $1 in
    tcp)
        out=$(timeout $((${2%.*} + 20)) "$TLOAD" rate -p "$p" -c 64 -t "$2")
        echo "$out" | awk -v secs="$2" '/^RESULT/ {
            for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            printf "%s %.0f errors+timeouts=%d\n", f["cps"], f["cps"] * secs, f["errors"] + f["timeouts"] }' ;;
    udp64 | udp1400)
        out=$(timeout $((${2%.*} + 20)) "$ULOAD" -p "$p" -s "${1#udp}" -w 32 -c 4 -t "$2")
        echo "$out" | awk '/^RESULT/ {
            for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            printf "%s %s lost=%d\n", f["dps"], f["all"], f["lost"] }' ;;
    esac
}

# Can the io_uring loops run here? Their own words when they cannot.
for w in tcp udp64; do
    if ! start "$w" uring; then
        why=$(tail -n 1 "$tmp/be.log")
        case $why in
        *"without liburing"* | *io_uring_queue_init* | *io_uring_register*) skip "$why" ;;
        esac
        log "the io_uring backend for $w did not start: $why"
        exit 2
    fi
    stop
done

WORKLOADS="tcp udp64 udp1400"
: >"$tmp/results"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for w in $WORKLOADS; do
        order="epoll uring"
        [ $((r % 2)) = 0 ] && order="uring epoll"
        for l in $order; do
            start "$w" "$l" || { log "round $r: $w $l: the backend does not answer: $(tail -n 1 "$tmp/be.log")"; exit 2; }
            t0=$(cpu_ticks "$BE_PID")
            read -r rate units note <<<"$(load "$w" "$SECS")"
            t1=$(cpu_ticks "$BE_PID")
            stop
            if [ -z "${units:-}" ] || [ "${units%.*}" -le 0 ] 2>/dev/null; then
                log "round $r: $w $l: the load failed"
                continue
            fi
            cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$units" 'BEGIN { printf "%.3f", t / hz * 1e6 / n }')
            printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$w" "$l" "$rate" "$cpu" >>"$tmp/results"
            log "round $r/$ROUNDS: $w $l: ${rate}/s, backend ${cpu} us per unit ($units units, $((t1 - t0)) ticks, $note)"
        done
    done
    r=$((r + 1))
done

# System calls per unit: perf counting raw_syscalls:sys_enter on the backend.
if [ "${BENCH_URING_SYSCALLS:-1}" != 0 ] && command -v perf >/dev/null 2>&1 &&
    perf stat -x, -e raw_syscalls:sys_enter -o /dev/null true 2>/dev/null; then
    for w in $WORKLOADS; do
        for l in epoll uring; do
            start "$w" "$l" || continue
            perf stat -x, -e raw_syscalls:sys_enter -o "$tmp/perf.out" -p "$BE_PID" &
            pf=$!
            sleep 0.3
            read -r rate units note <<<"$(load "$w" 2)"
            kill -INT "$pf"
            wait "$pf" 2>/dev/null
            stop
            n=$(awk -F, '/raw_syscalls:sys_enter/ { print $1 + 0 }' "$tmp/perf.out")
            [ -n "${units:-}" ] && [ -n "$n" ] &&
                awk -v w="$w" -v l="$l" -v n="$n" -v u="$units" \
                    'BEGIN { if (u > 0) printf "sys\t%s\t%s\t%.3f\n", w, l, n / u }' >>"$tmp/results"
        done
    done
else
    echo "nosys" >>"$tmp/results"
fi

awk -F '\t' -v rounds="$ROUNDS" -v secs="$SECS" '
function med(key,    n, i, j, t, v) {
    n = cnt[key]
    if (n == 0) return ""
    for (i = 1; i <= n; i++) v[i] = val[key, i]
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function add(key, x) { cnt[key]++; val[key, cnt[key]] = x }
function f(x, fmt) { return x == "" ? "n/a" : sprintf(fmt, x) }
$1 == "nosys" { nosys = 1; next }
$1 == "sys" { sys[$2, $3] = $4; next }
{
    add($2 " rate " $3, $4); add($2 " cpu " $3, $5)
    rate[$1, $2, $3] = $4; cpu[$1, $2, $3] = $5
}
END {
    for (k in rate) {
        split(k, p, SUBSEP)
        if (p[3] != "uring" || !((p[1], p[2], "epoll") in rate)) continue
        add(p[2] " rratio", rate[k] / rate[p[1], p[2], "epoll"])
        if (cpu[p[1], p[2], "epoll"] > 0) add(p[2] " cratio", cpu[p[1], p[2], "uring"] / cpu[p[1], p[2], "epoll"])
    }
    printf "io_uring vs epoll in the echo backends (one side of the work, no proxy): medians over %d rounds of %s s\n", rounds, secs
    printf "%-11s | %9s %9s %6s | %10s %10s %6s | %9s %9s\n", "workload", "epoll/s", "uring/s", "ratio", "epoll CPU", "uring CPU", "ratio", "epoll", "uring"
    printf "%-11s | %9s %9s %6s | %10s %10s %6s | %9s %9s\n", "", "", "", "", "us/unit", "us/unit", "", "sysc/unit", "sysc/unit"
    n = split("tcp udp64 udp1400", ws, " ")
    split("TCP conn|UDP 64 B|UDP 1400 B", names, "|")
    for (i = 1; i <= n; i++) {
        w = ws[i]
        printf "%-11s | %9s %9s %6s | %10s %10s %6s | %9s %9s\n", names[i],
            f(med(w " rate epoll"), "%.0f"), f(med(w " rate uring"), "%.0f"), f(med(w " rratio"), "%.2fx"),
            f(med(w " cpu epoll"), "%.2f"), f(med(w " cpu uring"), "%.2f"), f(med(w " cratio"), "%.2fx"),
            ((w, "epoll") in sys) ? sprintf("%.2f", sys[w, "epoll"]) : "n/a",
            ((w, "uring") in sys) ? sprintf("%.2f", sys[w, "uring"]) : "n/a"
    }
    print "unit: a TCP connection (connect, 64-byte echo, close; 64 clients) or a UDP datagram answered"
    print "(window 32 over 4 sockets). CPU: the backend process, user + system from /proc/PID/stat over"
    print "the whole run, per unit; ratios: medians of the per-round io_uring/epoll ratios."
    if (nosys) print "sysc/unit: n/a (perf cannot count raw_syscalls:sys_enter here, or BENCH_URING_SYSCALLS=0)"
    else print "sysc/unit: system calls the backend made per unit, perf stat raw_syscalls:sys_enter, one 2 s run."
}' "$tmp/results"
