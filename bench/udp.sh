#!/bin/bash
# bench/udp.sh BUILD_DIR - UDP proxy benchmark: ppfwd beside nginx and socat.
#
# Every target relays to the same backend, BUILD_DIR/bench/bench_udp_echo on
# 127.0.0.1 (a second one with -P, which strips the PROXY v2 header a
# send-proxy=v2 route puts in every datagram). Targets: direct (no proxy),
# nginx stream (udp, 2 workers, reuseport), socat (UDP4-LISTEN with fork:
# one child per client address), ppfwd -w 2 plain and ppfwd -w 2
# send-proxy=v2, and relay (bench_udp_relay -j 2: the floor of a UDP proxy,
# the same socket calls as ppfwd without any policy). Each round starts every target afresh, in an order rotated
# by one from the round before (load generator, proxy and backend share the
# machine's 2 cores), and measures datagrams/s with bench_udp_load: a window
# of 32 datagrams in flight over 4 client sockets, 64-byte and 1,400-byte
# payloads, BENCH_UDP_SECS each. It prints the medians over the rounds, the
# ratios to nginx and to direct, the CPU per datagram of the proxy, the
# backend and the load generator (from /proc and time(1)), and whether ppfwd
# meets issue 4's targets (>= 2x nginx at 64 bytes; send-proxy=v2 at most 10%
# slower than plain) and issue 14's (>= 0.6x direct; proxy CPU per datagram
# <= 0.5x nginx's), each judged on the median of its per-round ratios, and
# what the machine allows: how many cores were busy, and the CPU per datagram
# a proxy could spend at 0.6x direct, after the backend and load generator.
#
# Knobs: BENCH_UDP_ROUNDS (5), BENCH_UDP_SECS (3), BENCH_UDP_PORT (28100: uses
# 28100-28160), BENCH_UDP_TARGETS (all: "direct nginx socat ppfwd ppfwd-v2
# relay"), PPFWD (BUILD_DIR/ppfwd). A missing peer is skipped with a note. Exit status
# 0 unless the benchmark itself could not run (2).
set -u
# cpu_ticks (threads and child processes included) comes from bench/lib.sh;
# what this script defines itself after this line is its own.
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || { echo "usage: bench/udp.sh BUILD_DIR" >&2; exit 2; }
B=$(cd "$1" && pwd)
ROUNDS=${BENCH_UDP_ROUNDS:-5}
SECS=${BENCH_UDP_SECS:-3}
BASE=${BENCH_UDP_PORT:-28100}
TARGETS=${BENCH_UDP_TARGETS:-direct nginx socat ppfwd ppfwd-v2 relay}
PPFWD=${PPFWD:-$B/ppfwd}
ECHO_BIN=$B/bench/bench_udp_echo
LOAD=$B/bench/bench_udp_load
RELAY=$B/bench/bench_udp_relay
NGINX_STREAM=/usr/lib/nginx/modules/ngx_stream_module.so

for f in "$ECHO_BIN" "$LOAD"; do
    [ -x "$f" ] || { echo "bench/udp.sh: $f is missing; run 'make bench'" >&2; exit 2; }
done

log() { echo "bench udp: $*" >&2; }

E_PLAIN=$BASE
E_PP=$((BASE + 1))
tport() {
    case $1 in
    direct) echo "$E_PLAIN" ;; nginx) echo $((BASE + 10)) ;; socat) echo $((BASE + 20)) ;;
    ppfwd) echo $((BASE + 30)) ;; ppfwd-v2) echo $((BASE + 31)) ;;
    relay) echo $((BASE + 40)) ;;
    esac
}

tmp=$(mktemp -d /tmp/ppfwd-bench-udp.XXXXXX)
PIDS=""
TARGET_PIDS=""

stop_pids() {
    local p i
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
    local keep=""
    for p in $PIDS; do
        case " $* " in *" $p "*) ;; *) keep="$keep $p" ;; esac
    done
    PIDS=$keep
}

cleanup() {
    trap - EXIT INT TERM
    # shellcheck disable=SC2086
    [ -n "$PIDS" ] && stop_pids $PIDS
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

spawn() {
    local logf=$1
    shift
    "$@" >"$logf" 2>&1 &
    LAST_PID=$!
    PIDS="$PIDS $LAST_PID"
}

HZ=$(getconf CLK_TCK)


# Waits (up to 5 s) until PORT answers a datagram.
wait_ready() {
    local i=0
    while [ $i -lt 50 ]; do
        "$LOAD" --probe -p "$1" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# No proxy_responses: a client's session then lives for proxy_timeout, as
# ppfwd's does; "proxy_responses 1" closes it after each answer and measured
# half the rate here, so nginx gets its faster setting.
nginx_cfg() {
    cat <<EOF2
load_module $NGINX_STREAM;
worker_processes 2;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
stream {
    server {
        listen 127.0.0.1:$(tport nginx) udp reuseport;
        proxy_pass 127.0.0.1:$E_PLAIN;
        proxy_timeout 10s;
    }
}
EOF2
}

unavailable() {
    case $1 in
    nginx)
        if ! command -v nginx >/dev/null 2>&1; then
            echo "nginx is not installed"
        elif [ ! -f "$NGINX_STREAM" ]; then
            echo "libnginx-mod-stream is not installed"
        fi ;;
    socat) command -v socat >/dev/null 2>&1 || echo "socat is not installed" ;;
    ppfwd | ppfwd-v2) [ -x "$PPFWD" ] || echo "$PPFWD is missing (make build/ppfwd)" ;;
    relay) [ -x "$RELAY" ] || echo "$RELAY is missing (make bench)" ;;
    esac
}

start_target() {
    local t=$1 p
    p=$(tport "$t")
    TARGET_PIDS=""
    case $t in
    direct) return 0 ;;
    nginx)
        rm -rf "$tmp/nginx" && mkdir -p "$tmp/nginx"
        nginx_cfg >"$tmp/nginx/nginx.conf"
        spawn "$tmp/nginx.log" nginx -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" \
            -e "$tmp/nginx/error.log" ;;
    socat)
        spawn "$tmp/socat.log" socat "UDP4-LISTEN:$p,bind=127.0.0.1,fork,reuseaddr" \
            "UDP4:127.0.0.1:$E_PLAIN" ;;
    ppfwd)
        # -l warn: no line per session, like the peers.
        spawn "$tmp/ppfwd.log" "$PPFWD" -w 2 -l warn "udp://127.0.0.1:$p/127.0.0.1:$E_PLAIN" ;;
    ppfwd-v2)
        spawn "$tmp/ppfwd-v2.log" "$PPFWD" -w 2 -l warn \
            "udp://127.0.0.1:$p/127.0.0.1:$E_PP?send-proxy=v2" ;;
    relay)
        spawn "$tmp/relay.log" "$RELAY" -p "$p" -u "$E_PLAIN" -j 2 ;;
    esac
    TARGET_PIDS=$LAST_PID
    wait_ready "$p"
}

stop_target() {
    local kids p
    # socat's children (one per client) would outlive their parent.
    kids=$(for p in $TARGET_PIDS; do pgrep -P "$p"; done | tr '\n' ' ')
    # shellcheck disable=SC2086
    [ -n "$TARGET_PIDS" ] && stop_pids $TARGET_PIDS
    # shellcheck disable=SC2086
    [ -n "$kids" ] && kill -TERM $kids 2>/dev/null
    TARGET_PIDS=""
}

spawn "$tmp/echo.log" "$ECHO_BIN" -p "$E_PLAIN"
ECHO_PID=$LAST_PID
spawn "$tmp/echo-pp.log" "$ECHO_BIN" -p "$E_PP" -P
ECHO_PP_PID=$LAST_PID
wait_ready "$E_PLAIN" || { log "the echo backend does not answer"; exit 2; }

avail=""
for t in $TARGETS; do
    why=$(unavailable "$t")
    if [ -n "$why" ]; then
        log "$t left out: $why"
        echo "$t	$why" >>"$tmp/skipped.tsv"
    else
        avail="$avail $t"
    fi
done
read -r -a order <<<"$avail"

: >"$tmp/results.tsv"
: >>"$tmp/skipped.tsv"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    n=${#order[@]}
    for ((i = 0; i < n; i++)); do
        t=${order[$(((i + r - 1) % n))]}
        if ! start_target "$t"; then
            log "round $r: $t does not answer: $(tail -n 2 "$tmp/$t.log" 2>/dev/null | tr '\n' ' ')"
            stop_target
            continue
        fi
        line=""
        be=$ECHO_PID
        [ "$t" = ppfwd-v2 ] && be=$ECHO_PP_PID
        for size in 64 1400; do
            px0=$(cpu_ticks $TARGET_PIDS)
            be0=$(cpu_ticks "$be")
            out=$( { TIMEFORMAT='LOADCPU %U %S'; time timeout $((SECS + 20)) "$LOAD" -p "$(tport "$t")" \
                -s "$size" -w 32 -c 4 -t "$SECS"; } 2>&1 | grep '^RESULT\|^LOADCPU')
            px1=$(cpu_ticks $TARGET_PIDS)
            be1=$(cpu_ticks "$be")
            dps=$(echo "$out" | sed -n 's/.*dps=\([0-9]*\).*/\1/p')
            lost=$(echo "$out" | sed -n 's/.*lost=\([0-9]*\).*/\1/p')
            all=$(echo "$out" | sed -n 's/.*all=\([0-9]*\).*/\1/p')
            ld=$(echo "$out" | awk '/^LOADCPU/ { print $2 + $3 }')
            # CPU per answered datagram (user + system, us), over the whole
            # run (warm-up included, as "all" counts): proxy, backend, load.
            # Not socat's: its per-client children escape the count (it gave
            # 2 us, less than one loopback send costs).
            cpu=$(awk -v n="${all:-0}" -v hz="$HZ" -v px=$((px1 - px0)) -v be=$((be1 - be0)) \
                -v ld="${ld:-0}" -v direct=$([ "$t" = direct ] || [ "$t" = socat ] && echo 1 || echo 0) 'BEGIN {
                    if (n <= 0) { print "-\t-\t-"; exit }
                    printf "%s\t%.2f\t%.2f\n", direct ? "-" : sprintf("%.2f", px / hz * 1e6 / n),
                        be / hz * 1e6 / n, ld * 1e6 / n }')
            [ -n "$dps" ] && printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$size" "$dps" "$lost" "$cpu" \
                >>"$tmp/results.tsv"
            line="$line ${size}B ${dps:-?}/s (lost ${lost:-?}; CPU us/dgm proxy/backend/load $(echo "$cpu" | tr '\t' /));"
        done
        log "round $r/$ROUNDS: $t:$line"
        stop_target
    done
    r=$((r + 1))
done

awk -F '\t' -v rounds="$ROUNDS" -v secs="$SECS" -v targets="$TARGETS" -v ncpu="$(nproc)" '
# The median of v[1..n] (sorts v in place; n > 0).
function vmed(v, n,    i, j, t) {
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function median(key,    n, i, v) {
    n = cnt[key]
    for (i = 1; i <= n; i++)
        v[i] = val[key, i]
    return vmed(v, n)
}
function ratio(a, b) {
    return ((a in cnt) && (b in cnt) && median(b) > 0) ? sprintf("%.2fx", median(a) / median(b)) : "n/a"
}
# The median over the rounds of a / b, each pair measured in the same round
# (seconds apart): the machine drifts more from round to round than the
# differences measured.
function pmed(a, b,    r, n, v) {
    n = 0
    for (r = 1; r <= rounds; r++)
        if (((a, r) in rv) && ((b, r) in rv) && rv[b, r] > 0)
            v[++n] = rv[a, r] / rv[b, r]
    if (n == 0)
        return -1
    return vmed(v, n)
}
FILENAME ~ /results/ {
    k = $2 " " $3
    cnt[k]++
    val[k, cnt[k]] = $4
    rv[k, $1] = $4
    lost[k] += $5
    # CPU per datagram: proxy (px), backend (be), load generator (ld).
    split("px be ld", cn, " ")
    for (c = 1; c <= 3; c++)
        if ($(5 + c) != "" && $(5 + c) != "-") {
            kc = $2 " " cn[c] " " $3
            cnt[kc]++
            val[kc, cnt[kc]] = $(5 + c)
            rv[kc, $1] = $(5 + c)
        }
}
FILENAME ~ /skipped/ { skip[$1] = $2 }
END {
    printf "UDP proxy benchmark: datagrams/s, median of %d rounds x %d s, window 32 over 4 clients\n\n", rounds, secs
    printf "%-9s | %10s %8s %9s %6s | %10s %8s %9s %6s\n", "target", "64 B", "vs nginx", "vs direct", "lost", "1400 B", "vs nginx", "vs direct", "lost"
    nt = split(targets, tl, " ")
    for (i = 1; i <= nt; i++) {
        t = tl[i]
        if (t in skip) {
            printf "%-9s | skipped: %s\n", t, skip[t]
            continue
        }
        a = t " 64"; b = t " 1400"
        printf "%-9s | %10s %8s %9s %6s | %10s %8s %9s %6s\n", t,
            (a in cnt) ? sprintf("%.0f", median(a)) : "n/a", ratio(a, "nginx 64"), ratio(a, "direct 64"), lost[a] + 0,
            (b in cnt) ? sprintf("%.0f", median(b)) : "n/a", ratio(b, "nginx 1400"), ratio(b, "direct 1400"), lost[b] + 0
    }
    print ""
    print "CPU per answered datagram (user + system, us; medians; whole run over every answer):"
    printf "%-9s | %7s %7s %7s %7s | %7s %7s %7s %7s\n", "target", "proxy", "backend", "load", "total", "proxy", "backend", "load", "total"
    printf "%-9s | %31s | %31s\n", "", "64 B", "1400 B"
    for (i = 1; i <= nt; i++) {
        t = tl[i]
        if (!((t " be 64") in cnt))
            continue
        line = sprintf("%-9s |", t)
        for (s = 0; s < 2; s++) {
            z = s ? "1400" : "64"
            px = ((t " px " z) in cnt) ? median(t " px " z) : 0
            be = ((t " be " z) in cnt) ? median(t " be " z) : 0
            ld = ((t " ld " z) in cnt) ? median(t " ld " z) : 0
            line = line sprintf(" %7s %7.2f %7.2f %7.2f %s", px > 0 ? sprintf("%.2f", px) : "-", be, ld, px + be + ld, s ? "" : "|")
        }
        print line
    }
    print ""
    print "Targets of issue 14 (median of per-round ratios; the ratio of the medians in brackets):"
    for (s = 0; s < 2; s++) {
        z = s ? "1400" : "64"
        for (v = 0; v < 2; v++) {
            t = v ? "ppfwd-v2" : "ppfwd"
            if ((q = pmed(t " " z, "direct " z)) > 0)
                printf "target %-8s >= 0.6x direct at %4s B: %s (%.2fx; %s)\n", t, z, (q >= 0.6 ? "met" : "NOT met"), q, ratio(t " " z, "direct " z)
            if ((q = pmed(t " px " z, "nginx px " z)) > 0)
                printf "target %-8s CPU/datagram <= 0.5x nginx at %4s B: %s (%.2fx; %.2f vs %.2f us)\n", t, z, (q <= 0.5 ? "met" : "NOT met"), q, median(t " px " z), median("nginx px " z)
        }
    }
    # What the machine allows: load, proxy and backend share ncpu cores, so
    # a rate is at most ncpu / (their CPU per datagram). At 0.6x direct, the
    # proxy may spend what is left of that after the backend and the load
    # generator (as they paid through this proxy). The relay is the floor
    # of a UDP proxy (bench_udp_relay: the same calls as ppfwd, no policy).
    if (("direct 64") in cnt) {
        print ""
        printf "What %d cores allow (rate <= cores / total CPU per datagram; medians):\n", ncpu
        for (i = 1; i <= nt; i++) {
            t = tl[i]
            if (t == "direct" || !((t " px 64") in cnt))
                continue
            line = sprintf("%-9s |", t)
            for (s = 0; s < 2; s++) {
                z = s ? "1400" : "64"
                px = median(t " px " z); bl = median(t " be " z) + median(t " ld " z)
                d = median("direct " z)
                line = line sprintf(" %4s B: cores busy %.2f, proxy budget at 0.6x direct %5.2f us (spends %.2f) |",
                    z, median(t " " z) * (px + bl) / 1e6, ncpu * 1e6 / (0.6 * d) - bl, px)
            }
            print line
        }
        for (s = 0; s < 2; s++) {
            z = s ? "1400" : "64"
            if ((q = pmed("ppfwd " z, "relay " z)) > 0)
                printf "ppfwd against the floor relay at %4s B: %.2fx the rate, %.2fx the CPU per datagram\n", z, q, pmed("ppfwd px " z, "relay px " z)
        }
    }
    print ""
    print "Targets, each as the median of the per-round ratios (the two figures of a ratio are"
    print "measured seconds apart in the same round; the ratio of the medians is in brackets):"
    if ((q = pmed("ppfwd 64", "nginx 64")) > 0)
        printf "target ppfwd >= 2x nginx at 64 B: %s (%.2fx; %s)\n", (q >= 2 ? "met" : "NOT met"), q, ratio("ppfwd 64", "nginx 64")
    for (s = 0; s < 2; s++) {
        z = s ? "1400" : "64"
        if ((q = pmed("ppfwd-v2 " z, "ppfwd " z)) > 0)
            printf "target send-proxy=v2 <= 10%% slower than plain at %s B: %s (%.1f%% slower; %.1f%%)\n", z, (q >= 0.9 ? "met" : "NOT met"), 100 * (1 - q), 100 * (1 - median("ppfwd-v2 " z) / median("ppfwd " z))
    }
    print "lost: datagrams given up after 200 ms without an answer, summed over the rounds."
    print "socat: UDP4-LISTEN with fork, one child per client; nginx: stream, udp, reuseport, proxy_timeout 10s."
}' "$tmp/results.tsv" "$tmp/skipped.tsv" || true
exit 0
