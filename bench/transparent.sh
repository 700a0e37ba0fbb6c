#!/bin/bash
# bench/transparent.sh BUILD_DIR - transparent mode (transparent=on) against
# the two-process setup it replaces, and against ppfwd without it.
#
# Clients send a PROXY v2 header (source 198.51.100.7, one port per
# connection or client socket) and the backend is a plain echo server on
# 127.0.0.1 that knows nothing of the PROXY protocol. Targets:
#   TCP  ppfwd        accept-proxy=required (the backend sees ppfwd's address)
#        ppfwd-tp     the same with transparent=on (the backend sees the client)
#        haproxy+mmp  HAProxy (accept-proxy, send-proxy-v2) -> go-mmproxy
#   UDP  ppfwd        accept-proxy=required
#        ppfwd-tp     the same with transparent=on
#        ppfwd+mmp    ppfwd send-proxy=v2 -> go-mmproxy -p udp (HAProxy has
#                     no UDP, so ppfwd stands in front of go-mmproxy here)
# TCP: new connections per second, 64 clients each doing connect, 64-byte
# echo, close (bench_tcp_load rate -2). UDP: datagrams per second of 64 bytes
# with a window of 32 over 4 client sockets (bench_udp_load -2). Beside each
# rate, the CPU time of the proxy processes per connection or datagram (user
# + system, from /proc). Each round starts every target afresh, in an order
# rotated by one from the round before; targets are judged on the median of
# per-round ratios (issue 11: ppfwd-tp >= 1.5x haproxy+mmp on conn/s, >= 2x
# ppfwd+mmp on datagrams/s, and within 10% of ppfwd).
#
# It runs in a network namespace of its own (it re-executes itself under
# `unshare -n`) with the policy routing transparent mode needs for loopback
# upstreams, so it needs root, unshare and ip; go-mmproxy and haproxy for the
# peers. Knobs: BENCH_TP_ROUNDS (5), BENCH_TP_SECS (3), PPFWD (BUILD_DIR/ppfwd).
# Exit status 0 unless the benchmark itself could not run (2).
set -u

[ $# -eq 1 ] || { echo "usage: bench/transparent.sh BUILD_DIR" >&2; exit 2; }
B=$(cd "$1" && pwd)
ROUNDS=${BENCH_TP_ROUNDS:-5}
SECS=${BENCH_TP_SECS:-3}
PPFWD=${PPFWD:-$B/ppfwd}
TLOAD=$B/bench/bench_tcp_load
TECHO=$B/bench/bench_tcp_echo
ULOAD=$B/bench/bench_udp_load
UECHO=$B/bench/bench_udp_echo

log() { echo "bench transparent: $*" >&2; }
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

for f in "$PPFWD" "$TLOAD" "$TECHO" "$ULOAD" "$UECHO"; do
    [ -x "$f" ] || { log "$f is missing; run 'make bench'"; exit 2; }
done

if [ -z "${PPFWD_BENCH_TP_NETNS:-}" ]; then
    why=""
    if [ "$(id -u)" != 0 ]; then
        why="not root (transparent mode needs CAP_NET_ADMIN; the benchmark makes a network namespace)"
    elif ! command -v unshare >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
        why="unshare (util-linux) or ip (iproute2) is missing"
    elif ! unshare -n true 2>/dev/null; then
        why="unshare -n is refused here"
    fi
    if [ -n "$why" ]; then
        echo "Transparent mode benchmark: SKIPPED: $why"
        exit 0
    fi
    PPFWD_BENCH_TP_NETNS=$(readlink /proc/self/ns/net) exec unshare -n "$0" "$@"
fi
# In the namespace of our own: never touch the caller's routing.
[ "$(readlink /proc/self/ns/net)" != "$PPFWD_BENCH_TP_NETNS" ] || { log "still in the caller's netns"; exit 2; }
ip link set lo up
ip -4 rule add from 127.0.0.1/8 iif lo table 123
ip -4 route add local 0.0.0.0/0 dev lo table 123

E_TCP=29200
E_UDP=29201
tport() {
    case $1 in
    tcp-ppfwd) echo 29210 ;; tcp-ppfwd-tp) echo 29211 ;; tcp-haproxy+mmp) echo 29212 ;;
    udp-ppfwd) echo 29220 ;; udp-ppfwd-tp) echo 29221 ;; udp-ppfwd+mmp) echo 29222 ;;
    esac
}
MMP_TCP=29230
MMP_UDP=29231
TRUST="accept-proxy=required&trusted=127.0.0.1/32"

bench_init tp
TARGET_PIDS=""
HZ=$(getconf CLK_TCK)

stop_pids() {
    local p i keep=""
    for p in "$@"; do kill -TERM "$p" 2>/dev/null; done
    for p in "$@"; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 30 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    for p in $PIDS; do
        case " $* " in *" $p "*) ;; *) keep="$keep $p" ;; esac
    done
    PIDS=$keep
}

ready() {
    local t=$1 i=0 p
    p=$(tport "$t")
    while [ $i -lt 50 ]; do
        case $t in
        tcp-*) "$TLOAD" probe -p "$p" -2 >/dev/null 2>&1 && return 0 ;;
        udp-*) "$ULOAD" -p "$p" -2 --probe && return 0 ;;
        esac
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

haproxy_cfg() {
    cat <<EOF
global
    nbthread 2
    maxconn 9800
defaults
    mode tcp
    maxconn 9800
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend f
    bind 127.0.0.1:$(tport tcp-haproxy+mmp) accept-proxy
    default_backend mmp
backend mmp
    server s1 127.0.0.1:$MMP_TCP send-proxy-v2
EOF
}

unavailable() {
    case $1 in
    *mmp) command -v go-mmproxy >/dev/null 2>&1 || { echo "go-mmproxy is not installed"; return; } ;;
    esac
    case $1 in
    tcp-haproxy+mmp) command -v haproxy >/dev/null 2>&1 || echo "haproxy is not installed" ;;
    esac
}

start_target() {
    local t=$1 p
    p=$(tport "$t")
    TARGET_PIDS=""
    case $t in
    tcp-ppfwd | tcp-ppfwd-tp | udp-ppfwd | udp-ppfwd-tp)
        local proto=${t%%-*} tp=""
        [ "${t##*-}" = tp ] && tp="&transparent=on"
        local e=$E_TCP
        [ "$proto" = udp ] && e=$E_UDP
        spawn "$tmp/$t.log" "$PPFWD" -w 2 -l warn "$proto://127.0.0.1:$p/127.0.0.1:$e?$TRUST$tp"
        TARGET_PIDS=$LAST_PID ;;
    tcp-haproxy+mmp)
        spawn "$tmp/mmp-tcp.log" go-mmproxy -l "127.0.0.1:$MMP_TCP" -4 "127.0.0.1:$E_TCP" \
            -allowed-subnets "$tmp/allowed" -listeners 2 -v 0
        TARGET_PIDS=$LAST_PID
        haproxy_cfg >"$tmp/haproxy.cfg"
        spawn "$tmp/haproxy.log" haproxy -db -f "$tmp/haproxy.cfg"
        TARGET_PIDS="$TARGET_PIDS $LAST_PID" ;;
    udp-ppfwd+mmp)
        spawn "$tmp/mmp-udp.log" go-mmproxy -p udp -l "127.0.0.1:$MMP_UDP" -4 "127.0.0.1:$E_UDP" \
            -allowed-subnets "$tmp/allowed" -listeners 2 -close-after 10 -v 0
        TARGET_PIDS=$LAST_PID
        spawn "$tmp/$t.log" "$PPFWD" -w 2 -l warn \
            "udp://127.0.0.1:$p/127.0.0.1:$MMP_UDP?$TRUST&send-proxy=v2"
        TARGET_PIDS="$TARGET_PIDS $LAST_PID" ;;
    esac
    ready "$t"
}

stop_target() {
    # shellcheck disable=SC2086
    [ -n "$TARGET_PIDS" ] && stop_pids $TARGET_PIDS
    TARGET_PIDS=""
}

# measure TARGET ROUND: one run; appends "ROUND TARGET RATE CPU_US_PER_UNIT".
measure() {
    local t=$1 r=$2 p line rate c0 c1
    p=$(tport "$t")
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $TARGET_PIDS)
    case $t in
    tcp-*)
        line=$(timeout $((${SECS%.*} + 20)) "$TLOAD" rate -p "$p" -c 64 -t "$SECS" -2 | grep '^RESULT')
        rate=$(echo "$line" | sed -n 's/.* cps=\([0-9.]*\).*/\1/p') ;;
    udp-*)
        line=$(timeout $((${SECS%.*} + 20)) "$ULOAD" -p "$p" -2 -s 64 -t "$SECS" | grep '^RESULT')
        rate=$(echo "$line" | sed -n 's/.*dps=\([0-9.]*\).*/\1/p') ;;
    esac
    # shellcheck disable=SC2086
    c1=$(cpu_ticks $TARGET_PIDS)
    [ -n "$rate" ] || { log "$t: no result ($line)"; return; }
    log "$t: $rate/s, proxy CPU ticks $((c1 - c0)) (pids $TARGET_PIDS)"
    # The load runs 0.5 s of warm-up before its SECS: CPU is charged over
    # all of it, so the per-unit figure is an upper bound, the same for all.
    echo "$r $t $rate $(awk -v c=$((c1 - c0)) -v hz="$HZ" -v n="$rate" -v s="$SECS" \
        'BEGIN { printf "%.2f", (n > 0 ? c / hz * 1e6 / (n * (s + 0.5)) : 0) }')" >>"$tmp/results"
}

echo "127.0.0.1/32" >"$tmp/allowed"
spawn "$tmp/echo-tcp.log" "$TECHO" -p "$E_TCP" -t 1
spawn "$tmp/echo-udp.log" "$UECHO" -p "$E_UDP"
sleep 0.3

TARGETS="tcp-ppfwd tcp-ppfwd-tp tcp-haproxy+mmp udp-ppfwd udp-ppfwd-tp udp-ppfwd+mmp"
avail=""
for t in $TARGETS; do
    why=$(unavailable "$t")
    if [ -n "$why" ]; then
        echo "note: $t skipped: $why"
    else
        avail="$avail $t"
    fi
done
: >"$tmp/results"
for r in $(seq 1 "$ROUNDS"); do
    # shellcheck disable=SC2086
    set -- $avail
    shift $(((r - 1) % $#))
    order="$* $(echo "$avail" | awk -v n=$(((r - 1) % $(echo "$avail" | wc -w))) '{ for (i = 1; i <= n; i++) printf "%s ", $i }')"
    log "round $r/$ROUNDS: $order"
    for t in $order; do
        if ! start_target "$t"; then
            log "$t did not start; log: $(tail -n 3 "$tmp/"*"$t"*.log 2>/dev/null | tr '\n' ' ')"
            stop_target
            continue
        fi
        measure "$t" "$r"
        stop_target
    done
done

awk -v rounds="$ROUNDS" -v secs="$SECS" '
function med(a, n,    i, j, t) {
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function median_of(t, what,    r, n, v) {
    n = 0
    for (r = 1; r <= rounds; r++)
        if ((r, t) in rate)
            v[++n] = what == "rate" ? rate[r, t] : cpu[r, t]
    return n ? med(v, n) : -1
}
function ratio(a, b,    r, n, v) {
    n = 0
    for (r = 1; r <= rounds; r++)
        if (((r, a) in rate) && ((r, b) in rate) && rate[r, b] > 0)
            v[++n] = rate[r, a] / rate[r, b]
    return n ? med(v, n) : -1
}
{ rate[$1, $2] = $3; cpu[$1, $2] = $4 }
END {
    printf "Transparent mode: medians of %d rounds x %ss; clients send PROXY v2, the backend is plain\n\n", rounds, secs
    printf "%-16s | %12s %14s | %s\n", "target", "rate", "proxy CPU us", "per round"
    split("tcp-ppfwd tcp-ppfwd-tp tcp-haproxy+mmp udp-ppfwd udp-ppfwd-tp udp-ppfwd+mmp", ts, " ")
    for (i = 1; i <= 6; i++) {
        t = ts[i]
        if (median_of(t, "rate") < 0) { printf "%-16s | %12s\n", t, "n/a"; continue }
        line = ""
        for (r = 1; r <= rounds; r++)
            if ((r, t) in rate) line = line sprintf(" %.0f", rate[r, t])
        printf "%-16s | %9.0f %-2s %11.2f/%-4s |%s\n", t, median_of(t, "rate"), t ~ /^tcp/ ? "c/s" : "d/s", median_of(t, "cpu"), t ~ /^tcp/ ? "conn" : "dgm", line
    }
    print ""
    a = ratio("tcp-ppfwd-tp", "tcp-haproxy+mmp"); b = ratio("tcp-ppfwd-tp", "tcp-ppfwd")
    c = ratio("udp-ppfwd-tp", "udp-ppfwd+mmp"); d = ratio("udp-ppfwd-tp", "udp-ppfwd")
    printf "TCP conn/s, ppfwd transparent vs HAProxy + go-mmproxy: %.2fx (target >= 1.5x: %s)\n", a, (a >= 1.5 ? "met" : "NOT met")
    printf "TCP conn/s, ppfwd transparent vs ppfwd:                %.2fx (target >= 0.90x: %s)\n", b, (b >= 0.9 ? "met" : "NOT met")
    printf "UDP dgram/s, ppfwd transparent vs ppfwd + go-mmproxy:  %.2fx (target >= 2x: %s)\n", c, (c >= 2 ? "met" : "NOT met")
    printf "UDP dgram/s, ppfwd transparent vs ppfwd:               %.2fx (target >= 0.90x: %s)\n", d, (d >= 0.9 ? "met" : "NOT met")
    print "(ratios: median of the per-round ratios; proxy CPU: user + system of the proxy"
    print " processes per connection or datagram, haproxy + go-mmproxy counted together)"
}' "$tmp/results"
exit 0
