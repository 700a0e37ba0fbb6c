#!/bin/bash
# bench/tcp.sh BUILD_DIR - TCP proxy benchmark: ppfwd beside HAProxy, nginx and socat.
#
# Every target relays to the same backends on 127.0.0.1:
#   - BUILD_DIR/bench/bench_tcp_echo, one epoll thread (twice: one plain, one
#     with -P, which skips the PROXY header a send-proxy route writes first);
#   - one iperf3 server.
# Targets: direct (no proxy), HAProxy 2.6 (mode tcp, nbthread 2) without and
# with "option splice-auto", nginx stream (2 workers), socat (fork per
# connection) and ppfwd -w 2 (when BUILD_DIR/ppfwd relays; else it is left
# out and the reason printed). Each round starts every target afresh (idle
# targets cost nothing), then takes each kind of measurement over all of them
# in turn, in an order rotated by one from the round before: client, proxy and
# backend share the machine's cores, and so may other work, so the figures
# compared are taken seconds apart and a slow spell spreads over all targets.
# The measurements:
#   - one iperf3 stream through it (-t BENCH_TCP_IPERF_SECS);
#   - new connections/s and p50/p99 latency with bench_tcp_load rate: 64
#     clients, each connect + 64-byte echo + close, for BENCH_TCP_SECS, plain,
#     through a send-proxy=v2 route and into an accept-proxy=required route
#     (the client sends a v2 header) where the target has them;
#   - RSS per connection: bench_tcp_load hold opens BENCH_TCP_HOLD connections
#     through the target, the script waits until the backend holds them all,
#     reads the proxy's VmRSS (summed over nginx's workers), makes one echo on
#     each and reads it again: (RSS - RSS before) / connections.
# It prints the median of the rounds of each figure and its ratio to HAProxy
# (the better of its two modes) and to direct, the CPU per connection of the
# proxy, the backend and the load generator in each mode, and whether ppfwd
# meets the targets of issue 3 and of issue 14 (proxy CPU <= backend + load;
# conn/s >= 1.0x and p99 <= the better HAProxy mode, in every mode).
#
# Knobs: BENCH_TCP_ROUNDS (3), BENCH_TCP_SECS (3, of which 0.5 warm-up),
# BENCH_TCP_IPERF_SECS (5), BENCH_TCP_HOLD (9000), BENCH_TCP_CLIENT_THREADS (1:
# threads of bench_tcp_load rate), BENCH_TCP_PORT (27100:
# uses 27100-27169), BENCH_TCP_TARGETS (all: "direct haproxy haproxy-splice
# nginx socat ppfwd"), PPFWD (BUILD_DIR/ppfwd). A missing peer (haproxy,
# nginx, socat, iperf3) is skipped with a note. Exit status 0 unless the
# benchmark itself could not run.
set -u
# cpu_ticks (threads and child processes included) comes from bench/lib.sh;
# what this script defines itself after this line is its own.
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || { echo "usage: bench/tcp.sh BUILD_DIR" >&2; exit 2; }
B=$(cd "$1" && pwd)
ROUNDS=${BENCH_TCP_ROUNDS:-3}
SECS=${BENCH_TCP_SECS:-3}
IPERF_SECS=${BENCH_TCP_IPERF_SECS:-5}
HOLD=${BENCH_TCP_HOLD:-9000}
CLIENT_THREADS=${BENCH_TCP_CLIENT_THREADS:-1}
BASE=${BENCH_TCP_PORT:-27100}
TARGETS=${BENCH_TCP_TARGETS:-direct haproxy haproxy-splice nginx socat ppfwd}
PPFWD=${PPFWD:-$B/ppfwd}
ECHO_BIN=$B/bench/bench_tcp_echo
LOAD=$B/bench/bench_tcp_load
NGINX_STREAM=/usr/lib/nginx/modules/ngx_stream_module.so

for f in "$ECHO_BIN" "$LOAD"; do
    [ -x "$f" ] || { echo "bench/tcp.sh: $f is missing; run 'make bench'" >&2; exit 2; }
done

log() { echo "bench tcp: $*" >&2; }

# One process may hold at most (hard RLIMIT_NOFILE) files, and a proxy holds
# two per relayed connection (client and upstream), plus listeners, pipes and
# spares: that bounds the memory test below 10,000 connections.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ $((2 * HOLD + 1000)) -gt "$NOFILE" ]; then
    HOLD=$(((NOFILE - 1000) / 2))
fi

E_PLAIN=$BASE
E_PP=$((BASE + 1))
IPERF_PORT=$((BASE + 2))
# Each target k listens on PB(k)+0 plain, +1 send-proxy v2, +2 accept-proxy
# required, +3 to iperf3.
tport() {
    local k
    case $1 in
    haproxy) k=1 ;; haproxy-splice) k=2 ;; nginx) k=3 ;; socat) k=4 ;; ppfwd) k=5 ;;
    *) k=0 ;;
    esac
    echo $((BASE + 10 * k + $2))
}

tmp=$(mktemp -d /tmp/ppfwd-bench-tcp.XXXXXX)
PIDS=""        # every process this script started and has not reaped yet
TARGET_PIDS="" # the processes of the target being measured
HZ=$(getconf CLK_TCK)

# Stops the given processes: SIGTERM, up to 3 s, then SIGKILL; reaps them.
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

# Starts a command in the background, output to a log file; sets LAST_PID.
spawn() {
    local logf=$1
    shift
    "$@" >"$logf" 2>&1 &
    LAST_PID=$!
    PIDS="$PIDS $LAST_PID"
}

# Waits (up to 5 s) until PORT relays one echo; -2 sends a PROXY v2 header.
wait_ready() {
    local i=0
    while [ $i -lt 50 ]; do
        timeout 5 "$LOAD" probe "$@" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    timeout 5 "$LOAD" probe "$@" >&2
}

port_busy() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

fd_count() {
    local n
    # shellcheck disable=SC2012
    n=$(ls "/proc/$1/fd" 2>/dev/null | wc -l)
    echo "${n:-0}"
}

rss_kib() {
    local p s=0 v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
        s=$((s + ${v:-0}))
    done
    echo "$s"
}

# Waits up to $2 tenths of a second for a line matching $3 in file $1.
wait_line() {
    local i=0
    while [ $i -lt "$2" ]; do
        grep -q "$3" "$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

record() { printf '%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$2" "$3" >>"$tmp/results.tsv"; }

# ---- the targets ------------------------------------------------------------

haproxy_cfg() {
    local p
    p=$(tport "$1" 0)
    cat <<EOF
global
    nbthread 2
    maxconn 9800
$([ "$1" = haproxy-splice ] && echo "    maxpipes 128")
defaults
    mode tcp
    maxconn 9800
    timeout connect 5s
    timeout client 120s
    timeout server 120s
$([ "$1" = haproxy-splice ] && echo "    option splice-auto")
frontend plain
    bind 127.0.0.1:$p
    default_backend echo
frontend sendproxy
    bind 127.0.0.1:$((p + 1))
    default_backend echo_pp
frontend acceptproxy
    bind 127.0.0.1:$((p + 2)) accept-proxy
    default_backend echo
frontend iperf
    bind 127.0.0.1:$((p + 3))
    default_backend iperf
backend echo
    server s1 127.0.0.1:$E_PLAIN
backend echo_pp
    server s1 127.0.0.1:$E_PP send-proxy-v2
backend iperf
    server s1 127.0.0.1:$IPERF_PORT
EOF
}

nginx_cfg() {
    local p
    p=$(tport nginx 0)
    cat <<EOF
load_module $NGINX_STREAM;
worker_processes 2;
worker_rlimit_nofile $NOFILE;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections $((NOFILE - 100)); }
stream {
    server { listen 127.0.0.1:$p reuseport backlog=4096; proxy_pass 127.0.0.1:$E_PLAIN; }
    server { listen 127.0.0.1:$((p + 3)) reuseport; proxy_pass 127.0.0.1:$IPERF_PORT; }
}
EOF
}

# Why a target cannot be measured here, or nothing.
unavailable() {
    case $1 in
    direct) ;;
    haproxy | haproxy-splice)
        command -v haproxy >/dev/null 2>&1 || echo "haproxy is not installed" ;;
    nginx)
        if ! command -v nginx >/dev/null 2>&1; then
            echo "nginx is not installed"
        elif [ ! -f "$NGINX_STREAM" ]; then
            echo "libnginx-mod-stream is not installed"
        fi ;;
    socat) command -v socat >/dev/null 2>&1 || echo "socat is not installed" ;;
    ppfwd)
        [ -x "$PPFWD" ] || { echo "$PPFWD is missing (make build/ppfwd)"; return; }
        local why
        if ! start_target ppfwd; then
            why=$(tail -n 2 "$tmp/ppfwd.log" 2>/dev/null | tr '\n' ' ')
            echo "it does not relay yet (${why:-no output})"
        elif ! wait_ready -p "$(tport ppfwd 1)" >/dev/null 2>&1 ||
            ! wait_ready -p "$(tport ppfwd 2)" -2 >/dev/null 2>&1; then
            echo "its send-proxy=v2 or accept-proxy=required route does not relay"
        fi
        stop_target ;;
    esac
}

# Starts target $1; TARGET_PIDS are its processes, RSS_PIDS those whose RSS
# counts. Returns 1 when it does not relay within 5 s.
start_target() {
    local t=$1 p
    p=$(tport "$t" 0)
    TARGET_PIDS=""
    RSS_PIDS=""
    case $t in
    direct) return 0 ;;
    haproxy | haproxy-splice)
        haproxy_cfg "$t" >"$tmp/$t.cfg"
        spawn "$tmp/$t.log" haproxy -db -f "$tmp/$t.cfg"
        TARGET_PIDS=$LAST_PID
        RSS_PIDS=$LAST_PID ;;
    nginx)
        rm -rf "$tmp/nginx" && mkdir -p "$tmp/nginx"
        nginx_cfg >"$tmp/nginx/nginx.conf"
        spawn "$tmp/nginx.log" nginx -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" \
            -e "$tmp/nginx/error.log"
        TARGET_PIDS=$LAST_PID ;;
    socat)
        spawn "$tmp/socat.log" socat "TCP-LISTEN:$p,bind=127.0.0.1,fork,reuseaddr,backlog=4096" \
            "TCP:127.0.0.1:$E_PLAIN"
        TARGET_PIDS=$LAST_PID
        spawn "$tmp/socat-iperf.log" socat \
            "TCP-LISTEN:$((p + 3)),bind=127.0.0.1,fork,reuseaddr,backlog=4096" \
            "TCP:127.0.0.1:$IPERF_PORT"
        TARGET_PIDS="$TARGET_PIDS $LAST_PID" ;;
    ppfwd)
        # -l warn: no line per connection, like the peers, which log nothing here.
        spawn "$tmp/ppfwd.log" "$PPFWD" -w 2 -l warn \
            "tcp://127.0.0.1:$p/127.0.0.1:$E_PLAIN" \
            "tcp://127.0.0.1:$((p + 1))/127.0.0.1:$E_PP?send-proxy=v2" \
            "tcp://127.0.0.1:$((p + 2))/127.0.0.1:$E_PLAIN?accept-proxy=required" \
            "tcp://127.0.0.1:$((p + 3))/127.0.0.1:$IPERF_PORT" \
            "tcp://127.0.0.1:$((p + 4))/127.0.0.1:$E_PP?send-proxy=v2&tlvs=keep:authority&add-tlv=0xe0=zone-a&add-tlv=0xe1=hex:0102030405060708"
        TARGET_PIDS=$LAST_PID
        RSS_PIDS=$LAST_PID ;;
    esac
    wait_ready -p "$p" || return 1
    if [ "$t" = nginx ]; then
        RSS_PIDS=$(pgrep -P "$TARGET_PIDS" | tr '\n' ' ')
    fi
    return 0
}

stop_target() {
    # shellcheck disable=SC2086
    [ -n "$TARGET_PIDS" ] && stop_pids $TARGET_PIDS
    TARGET_PIDS=""
}

# ---- the measurements -------------------------------------------------------

measure_iperf() {
    local t=$1 port out bps
    port=$IPERF_PORT
    [ "$t" = direct ] || port=$(tport "$t" 3)
    out=$tmp/iperf.json
    timeout $((IPERF_SECS + 20)) iperf3 -c 127.0.0.1 -p "$port" -t "$IPERF_SECS" -J >"$out" 2>&1
    bps=$(awk '/"sum_received"/ { f = 1 } f && /"bits_per_second"/ {
        v = $2; gsub(/[^0-9.eE+-]/, "", v); print v; exit }' "$out")
    if [ -z "$bps" ]; then
        log "$t: iperf3 failed: $(grep -m1 '"error"' "$out")"
        return
    fi
    bps=$(awk -v b="$bps" 'BEGIN { printf "%.2f", b / 1e9 }')
    record "$t" iperf "$bps"
    SUMMARY="$SUMMARY iperf3 ${bps} Gbit/s;"
}


# measure_rate TARGET VARIANT PORT [-2]
# It also records the CPU time per connection of the proxy, the backend (both
# echo backends: the one not used idles) and the load generator (µs, user +
# system), for every variant.
measure_rate() {
    local t=$1 v=$2 port=$3 line cps p99 err px0 px1 be0 be1 ld
    shift 3
    px0=$(cpu_ticks $TARGET_PIDS)
    be0=$(cpu_ticks "$ECHO_PID" "$ECHO_PP_PID")
    line=$( { TIMEFORMAT='LOADCPU %U %S'; time timeout $((${SECS%.*} + 20)) "$LOAD" rate -p "$port" -c 64 \
        -j "$CLIENT_THREADS" -t "$SECS" "$@"; } 2>&1 | grep '^RESULT\|^LOADCPU')
    px1=$(cpu_ticks $TARGET_PIDS)
    be1=$(cpu_ticks "$ECHO_PID" "$ECHO_PP_PID")
    ld=$(echo "$line" | awk '/^LOADCPU/ { print $2 + $3 }')
    line=$(echo "$line" | grep '^RESULT')
    cps=$(echo "$line" | sed -n 's/.* cps=\([0-9.]*\).*/\1/p')
    p99=$(echo "$line" | sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p')
    err=$(echo "$line" | sed -n 's/.* errors=\([0-9]*\) timeouts=\([0-9]*\).*/\1+\2/p')
    if [ -z "$cps" ]; then
        log "$t: rate $v on port $port failed"
        return
    fi
    record "$t" "cps_$v" "$cps"
    record "$t" "p99_$v" "$p99"
    if [ -n "$ld" ]; then
        # Connections made over the whole run, warm-up included, at the rate measured.
        awk -v cps="$cps" -v secs="$SECS" -v hz="$HZ" -v px=$((px1 - px0)) -v be=$((be1 - be0)) \
            -v ld="$ld" -v v="$v" -v direct=$([ "$t" = direct ] && echo 1 || echo 0) 'BEGIN {
                n = cps * secs; if (n <= 0) exit
                if (!direct) printf "cpu_px_%s\t%.1f\n", v, px / hz * 1e6 / n
                printf "cpu_be_%s\t%.1f\ncpu_ld_%s\t%.1f\n", v, be / hz * 1e6 / n, v, ld * 1e6 / n
            }' | while IFS=$'\t' read -r k x; do record "$t" "$k" "$x"; done
    fi
    [ "$err" = "0+0" ] || record "$t" "err_$v" "$err"
    [ "$err" = "0+0" ] && err=""
    SUMMARY="$SUMMARY $v ${cps}/s p99 ${p99} ms${err:+ (errors+timeouts $err)};"
}

measure_mem() {
    local t=$1 port before idle after opened bfd0 bfd want i hp echoed
    port=$(tport "$t" 0)
    # shellcheck disable=SC2086
    before=$(rss_kib $RSS_PIDS)
    bfd0=$(fd_count "$ECHO_PID")
    : >"$tmp/hold.out"
    spawn "$tmp/hold.out" "$LOAD" hold -p "$port" -n "$HOLD" -t 200
    hp=$LAST_PID
    if ! wait_line "$tmp/hold.out" 600 '^OPEN'; then
        log "$t: memory: the connections did not open within 60 s"
        stop_pids "$hp"
        return
    fi
    opened=$(sed -n 's/^OPEN opened=\([0-9]*\).*/\1/p' "$tmp/hold.out")
    # The proxy may still be connecting upstream: wait until the backend holds
    # every connection (up to 15 s), so that each is fully set up.
    want=$((bfd0 + opened))
    i=0
    bfd=$(fd_count "$ECHO_PID")
    while [ "$bfd" -lt "$want" ] && [ $i -lt 150 ]; do
        sleep 0.1
        i=$((i + 1))
        bfd=$(fd_count "$ECHO_PID")
    done
    sleep 0.5
    # shellcheck disable=SC2086
    idle=$(rss_kib $RSS_PIDS)
    kill -USR1 "$hp"
    if ! wait_line "$tmp/hold.out" 700 '^ECHO'; then
        log "$t: memory: the echo on every connection did not finish"
        stop_pids "$hp"
        return
    fi
    echoed=$(sed -n 's/^ECHO echoed=\([0-9]*\).*/\1/p' "$tmp/hold.out")
    sleep 0.5
    # shellcheck disable=SC2086
    after=$(rss_kib $RSS_PIDS)
    stop_pids "$hp"
    # Let the connections drain before the next measurement (up to 15 s).
    i=0
    while [ "$(fd_count "$ECHO_PID")" -gt $((bfd0 + 10)) ] && [ $i -lt 150 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if [ "${opened:-0}" -lt 1 ]; then
        log "$t: memory: no connection opened"
        return
    fi
    record "$t" kib_idle "$(awk -v a="$idle" -v b="$before" -v n="$opened" \
        'BEGIN { printf "%.2f", (a - b) / n }')"
    record "$t" kib_echo "$(awk -v a="$after" -v b="$before" -v n="$opened" \
        'BEGIN { printf "%.2f", (a - b) / n }')"
    record "$t" mem_conns "$opened/$((bfd - bfd0))/$echoed"
    SUMMARY="$SUMMARY RSS ${before} KiB, ${idle} with $opened idle (backend holds $((bfd - bfd0))), ${after} after $echoed echoes;"
}

# The rate measurements of target $1, one "VARIANT PORT [-2]" per line.
rate_jobs() {
    local p
    p=$(tport "$1" 0)
    case $1 in
    direct)
        echo "plain $E_PLAIN"
        # A v2 header straight into the backend that skips it: the cost of the
        # header alone, for reference.
        echo "ap $E_PP -2" ;;
    haproxy | haproxy-splice)
        echo "plain $p"
        echo "sp $((p + 1))"
        echo "ap $((p + 2)) -2" ;;
    ppfwd)
        echo "plain $p"
        echo "sp $((p + 1))"
        # send-proxy=v2 with a TLV policy (issue 12): kept and added TLVs.
        echo "tlv $((p + 4))"
        echo "ap $((p + 2)) -2" ;;
    nginx | socat) echo "plain $p" ;;
    esac
}

# One round: every target is started (they idle while others are measured),
# then each kind of measurement runs over all targets in turn, so that the
# figures compared with each other are taken seconds apart, not minutes.
declare -A TP RP SUM
run_round() {
    local live=() t k v job
    for ((k = 0; k < n; k++)); do
        t=${order[$(((k + ROUND - 1) % n))]}
        SUM[$t]=""
        if start_target "$t"; then
            TP[$t]=$TARGET_PIDS
            RP[$t]=$RSS_PIDS
            live+=("$t")
        else
            log "round $ROUND: $t: did not start or relay; skipped this round"
            stop_target
        fi
    done
    if [ -n "$HAVE_IPERF" ]; then
        for t in "${live[@]}"; do
            SUMMARY=""
            measure_iperf "$t"
            SUM[$t]+=$SUMMARY
        done
    fi
    for v in plain sp tlv ap; do
        for t in "${live[@]}"; do
            job=$(rate_jobs "$t" | awk -v v="$v" '$1 == v')
            [ -n "$job" ] || continue
            SUMMARY=""
            TARGET_PIDS=${TP[$t]}
            # shellcheck disable=SC2086
            measure_rate "$t" $job
            SUM[$t]+=$SUMMARY
        done
    done
    for t in "${live[@]}"; do
        # socat forks a process per connection: 9,000 held connections would
        # be 9,000 processes, so no memory figure.
        case $t in direct | socat) continue ;; esac
        RSS_PIDS=${RP[$t]}
        SUMMARY=""
        measure_mem "$t"
        SUM[$t]+=$SUMMARY
    done
    for t in "${live[@]}"; do
        TARGET_PIDS=${TP[$t]}
        stop_target
        log "round $ROUND: $t:${SUM[$t]}"
    done
}

# ---- main -------------------------------------------------------------------

for i in $(seq 0 69); do
    if port_busy $((BASE + i)); then
        echo "bench/tcp.sh: port $((BASE + i)) is in use; set BENCH_TCP_PORT to a free range of 70" >&2
        exit 2
    fi
done

spawn "$tmp/echo.log" "$ECHO_BIN" -p "$E_PLAIN"
ECHO_PID=$LAST_PID
spawn "$tmp/echo-pp.log" "$ECHO_BIN" -p "$E_PP" -P
ECHO_PP_PID=$LAST_PID
if ! wait_ready -p "$E_PLAIN" || ! wait_ready -p "$E_PP" -2; then
    echo "bench/tcp.sh: the echo backends did not start" >&2
    exit 2
fi
HAVE_IPERF=""
if command -v iperf3 >/dev/null 2>&1; then
    spawn "$tmp/iperf3-server.log" iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT"
    HAVE_IPERF=1
    sleep 0.3
else
    log "iperf3 is not installed: no throughput figures"
fi

run=""
notes=""
for t in $TARGETS; do
    why=$(unavailable "$t")
    if [ -n "$why" ]; then
        log "$t: not measured: $why"
        notes="$notes$t: not measured: $why.\n"
    else
        run="$run $t"
    fi
done
# shellcheck disable=SC2206
order=($run)
n=${#order[@]}
log "targets:$run; $ROUNDS rounds; rate $SECS s, iperf3 $IPERF_SECS s, $HOLD held connections"

: >"$tmp/results.tsv"
LOAD_BEFORE=$(cut -d ' ' -f 1-3 /proc/loadavg)
# How idle the machine is before we start: other work on these 2 CPUs skews
# every figure (and not evenly), so the table says so.
idle_pct() {
    local a b
    a=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
    echo "$a $b" | awk '{ d = $4 - $2; print (d > 0 ? int(100 * ($3 - $1) / d) : 100) }'
}
IDLE_BEFORE=$(idle_pct)
# user + nice + system ticks of the whole machine, and of this script with
# everything it started (reaped children count in cutime/cstime).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 }' /proc/stat; }
our_ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$$/stat"; }
T0_MACHINE=$(machine_ticks)
T0_OURS=$(our_ticks)
T0_UP=$(cut -d ' ' -f 1 /proc/uptime)
[ "$IDLE_BEFORE" -ge 90 ] ||
    log "warning: the CPUs were only $IDLE_BEFORE% idle before the run: other work will skew the figures"
for ROUND in $(seq 1 "$ROUNDS"); do
    run_round
done

LOAD_AFTER=$(cut -d ' ' -f 1-3 /proc/loadavg)
# Stop and reap everything now, so that its CPU time is counted as ours: what
# the machine spent beyond that went to other work, which skews the figures.
# shellcheck disable=SC2086
[ -n "$PIDS" ] && stop_pids $PIDS
OTHER_PCT=$(awk -v m0="$T0_MACHINE" -v m1="$(machine_ticks)" -v o0="$T0_OURS" -v o1="$(our_ticks)" \
    -v u0="$T0_UP" -v u1="$(cut -d ' ' -f 1 /proc/uptime)" -v hz="$(getconf CLK_TCK)" -v ncpu="$(nproc)" \
    'BEGIN { cap = (u1 - u0) * hz * ncpu; x = (m1 - m0) - (o1 - o0); if (x < 0) x = 0
             printf "%d", (cap > 0 ? 100 * x / cap : 0) }')
[ "$OTHER_PCT" -lt 10 ] ||
    log "warning: other work used $OTHER_PCT% of the CPUs during the run: the figures are skewed"
ENVLINE="$(nproc) CPUs, $(uname -r), haproxy $(haproxy -v 2>/dev/null | awk 'NR == 1 { print $3 }'),\
 nginx $(nginx -v 2>&1 | sed 's|.*/||'), socat $(socat -V 2>/dev/null | awk '/socat version/ { print $3; exit }'),\
 iperf3 $(iperf3 -v 2>/dev/null | awk 'NR == 1 { print $2 }')"

awk -F '\t' -v rounds="$ROUNDS" -v secs="$SECS" -v isecs="$IPERF_SECS" -v hold="$HOLD" \
    -v nofile="$NOFILE" -v cthreads="$CLIENT_THREADS" \
    -v idlebefore="$IDLE_BEFORE" -v otherpct="$OTHER_PCT" -v lbefore="$LOAD_BEFORE" -v lafter="$LOAD_AFTER" -v notes="$notes" -v envline="$ENVLINE" -v order="direct haproxy haproxy-splice nginx socat ppfwd" '
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
function has(key) { return key in cnt }
function f(key, fmt) { return has(key) ? sprintf(fmt, median(key)) : "-" }
function r(a, b) { return (b > 0 && a != "") ? sprintf("%.2fx", a / b) : "-" }
# The better of the two HAProxy modes: highest for rates, lowest for the rest.
function hbest(m, high,    a, b) {
    a = has("haproxy " m) ? median("haproxy " m) : ""
    b = has("haproxy-splice " m) ? median("haproxy-splice " m) : ""
    if (a == "") return b
    if (b == "") return a
    return high ? (a > b ? a : b) : (a < b ? a : b)
}
function hbest_p99(v,    a, b) {
    # p99 of the HAProxy mode with the better rate for this variant
    a = has("haproxy cps_" v) ? median("haproxy cps_" v) : -1
    b = has("haproxy-splice cps_" v) ? median("haproxy-splice cps_" v) : -1
    if (a < 0 && b < 0) return ""
    return median((a >= b ? "haproxy" : "haproxy-splice") " p99_" v)
}
function yn(ok) { return ok ? "yes" : "NO" }
# The median over the rounds of ppfwd / the better HAProxy mode for measure
# m, each ratio taken within one round (figures seconds apart): the machine
# drifts more from round to round than the ratios measured. -1: none.
function pbest(m,    rr, n, v, a, b, h) {
    n = 0
    for (rr = 1; rr <= rounds; rr++) {
        if (!(("ppfwd " m, rr) in rv))
            continue
        a = (("haproxy " m, rr) in rv) ? rv["haproxy " m, rr] : 0
        b = (("haproxy-splice " m, rr) in rv) ? rv["haproxy-splice " m, rr] : 0
        h = a > b ? a : b
        if (h > 0)
            v[++n] = rv["ppfwd " m, rr] / h
    }
    if (n == 0)
        return -1
    return vmed(v, n)
}
# The median over the rounds of the ppfwd p99 / the p99 of the HAProxy mode
# with the higher rate in that round, for variant v. -1: none.
function pbest_p99(v,    rr, n, w, a, b, h) {
    n = 0
    for (rr = 1; rr <= rounds; rr++) {
        if (!(("ppfwd p99_" v, rr) in rv))
            continue
        a = (("haproxy cps_" v, rr) in rv) ? rv["haproxy cps_" v, rr] : -1
        b = (("haproxy-splice cps_" v, rr) in rv) ? rv["haproxy-splice cps_" v, rr] : -1
        if (a < 0 && b < 0)
            continue
        h = a >= b ? rv["haproxy p99_" v, rr] : rv["haproxy-splice p99_" v, rr]
        if (h > 0)
            w[++n] = rv["ppfwd p99_" v, rr] / h
    }
    if (n == 0)
        return -1
    return vmed(w, n)
}
{
    key = $2 " " $3
    if ($3 ~ /^(err_|mem_conns)/) { extra[key] = extra[key] " r" $1 ":" $4; next }
    cnt[key]++
    val[key, cnt[key]] = $4
    rv[key, $1] = $4
    seen[$2] = 1
}
END {
    hi = hbest("iperf", 1); hc = hbest("cps_plain", 1); hs = hbest("cps_sp", 1)
    ha = hbest("cps_ap", 1); hmi = hbest("kib_idle", 0); hme = hbest("kib_echo", 0)
    di = has("direct iperf") ? median("direct iperf") : ""
    dc = has("direct cps_plain") ? median("direct cps_plain") : ""
    printf "TCP proxy benchmark: medians over %d rounds (%s)\n", rounds, envline
    printf "CPUs %d%% idle just before the run; other processes used %d%% of the CPUs during it\n", idlebefore, otherpct
    printf "(user+system time not ours); load average before %s, after %s.%s\n", lbefore, lafter, (idlebefore < 90 || otherpct >= 10) ? "\nOTHER WORK WAS RUNNING: the figures are skewed, and not evenly; run again on a quiet machine." : ""
    printf "x hap = ratio to HAProxy, the better of its two modes; x dir = ratio to direct.\n\n"
    printf "%-14s | %6s %6s %6s | %7s %6s %6s %6s | %7s %6s %6s | %7s %6s %6s | %6s %6s %6s %6s\n",
        "", "iperf3", "", "", "conn/s", "p99", "", "", "conn/s", "p99", "", "conn/s", "p99", "", "KiB/", "", "KiB/", ""
    printf "%-14s | %6s %6s %6s | %7s %6s %6s %6s | %7s %6s %6s | %7s %6s %6s | %6s %6s %6s %6s\n",
        "target", "Gbit/s", "x hap", "x dir", "plain", "ms", "x hap", "x dir", "sendpv2", "ms", "x hap", "acceptp", "ms", "x hap", "conn", "x hap", "conn", "x hap"
    printf "%-14s | %6s %6s %6s | %7s %6s %6s %6s | %7s %6s %6s | %7s %6s %6s | %6s %6s %6s %6s\n",
        "", "", "", "", "", "", "", "", "", "", "", "", "", "", "idle", "", "echo", ""
    n = split(order, ts, " ")
    for (i = 1; i <= n; i++) {
        t = ts[i]
        if (!(t in seen)) continue
        printf "%-14s | %6s %6s %6s | %7s %6s %6s %6s | %7s %6s %6s | %7s %6s %6s | %6s %6s %6s %6s\n", t,
            f(t " iperf", "%.2f"), has(t " iperf") ? r(median(t " iperf"), hi) : "-",
            has(t " iperf") ? r(median(t " iperf"), di) : "-",
            f(t " cps_plain", "%.0f"), f(t " p99_plain", "%.2f"),
            has(t " cps_plain") ? r(median(t " cps_plain"), hc) : "-",
            has(t " cps_plain") ? r(median(t " cps_plain"), dc) : "-",
            f(t " cps_sp", "%.0f"), f(t " p99_sp", "%.2f"), has(t " cps_sp") ? r(median(t " cps_sp"), hs) : "-",
            f(t " cps_ap", "%.0f"), f(t " p99_ap", "%.2f"), has(t " cps_ap") ? r(median(t " cps_ap"), ha) : "-",
            f(t " kib_idle", "%.2f"), has(t " kib_idle") ? r(median(t " kib_idle"), hmi) : "-",
            f(t " kib_echo", "%.2f"), has(t " kib_echo") ? r(median(t " kib_echo"), hme) : "-"
    }
    print ""
    print "direct: to the backend itself; its \"acceptp\" column is a v2 header sent straight to the"
    print "backend that skips it (the cost of the header alone). sendpv2: the route sends a PROXY v2"
    print "header to a backend that skips it; acceptp: the client sends one and the route requires it."
    printf "iperf3: one stream, %d s, iperf3 -s as backend. conn/s: 64 concurrent clients, each in a\n", isecs
    printf "loop connect, 64-byte echo, close, for %s s (the first 0.5 s not counted); p99: connect()\n", secs
    printf "to last byte read; bench_tcp_load with %d thread(s). Echo backend: bench_tcp_echo, 1 epoll\n", cthreads
    print "thread, the same for every target."
    printf "KiB/conn: (VmRSS with the connections - VmRSS before) / connections, over %d connections\n", hold
    printf "held open through the proxy, idle, then after one 64-byte echo on each. %d, not 10,000:\n", hold
    printf "a process may hold %s files here and a proxy holds 2 per connection (client +\n", nofile
    print "upstream) plus listeners and spares. RSS is user memory only: kernel socket and pipe"
    print "buffers are not in it. nginx: sum over its 2 workers. socat forks a process per"
    print "connection: no memory figure. HAProxy 2.6: mode tcp, nbthread 2, maxconn 9800, no log"
    print "(splice-auto: maxpipes 128, since its default of maxconn/4 pipes passes the fd limit);"
    print "nginx: stream, 2 workers, reuseport; socat: fork, backlog=4096; ppfwd: -w 2 -l warn."
    for (k in extra)
        if (k ~ / err_/)
            printf "errors+timeouts %s:%s\n", k, extra[k]
    for (k in extra)
        if (k ~ / mem_conns/)
            printf "memory test %s (held/at backend/echoed):%s\n", k, extra[k]
    if (notes != "")
        printf "\n%s", notes
    print ""
    if (has("haproxy cpu_px_plain") || has("ppfwd cpu_px_plain")) {
        print "CPU per connection (conn/s runs, user + system, µs; medians):"
        printf "%-15s| %8s %8s %8s %8s %9s | %8s %8s %8s %9s | %8s %8s %8s %9s\n", "", "plain", "", "", "", "",
            "sendpv2", "", "", "", "acceptp", "", "", ""
        printf "%-15s| %8s %8s %8s %8s %9s | %8s %8s %8s %9s | %8s %8s %8s %9s\n", "target", "proxy", "backend", "load", "total",
            "px/(b+l)", "proxy", "backend", "load", "px/(b+l)", "proxy", "backend", "load", "px/(b+l)"
        n = split(order, ts, " ")
        for (i = 1; i <= n; i++) {
            t = ts[i]
            if (!has(t " cpu_be_plain"))
                continue
            line = sprintf("%-15s|", t)
            split("plain sp ap", ms, " ")
            for (j = 1; j <= 3; j++) {
                m = ms[j]
                if (!has(t " cpu_be_" m)) {
                    line = line sprintf(" %8s %8s %8s %9s", "-", "-", "-", "-") (j == 1 ? sprintf(" %8s |", "-") : (j < 3 ? " |" : ""))
                    continue
                }
                px = has(t " cpu_px_" m) ? median(t " cpu_px_" m) : 0
                be = median(t " cpu_be_" m); ld = median(t " cpu_ld_" m)
                line = line sprintf(" %8s %8.1f %8.1f", px > 0 ? sprintf("%.1f", px) : "-", be, ld)
                if (j == 1)
                    line = line sprintf(" %8.1f", px + be + ld)
                line = line sprintf(" %9s", px > 0 && be + ld > 0 ? sprintf("%.2fx", px / (be + ld)) : "-") (j < 3 ? " |" : "")
            }
            print line
            px = has(t " cpu_px_plain") ? median(t " cpu_px_plain") : 0
            be = median(t " cpu_be_plain"); ld = median(t " cpu_ld_plain")
            if (t != "direct" && t != "socat") { sb += be + ld; nb++ }
        }
        print "px/(b+l): proxy CPU over backend plus load generator CPU, in the same run."
        hx = has("haproxy cpu_px_plain") ? median("haproxy cpu_px_plain") : 0
        if (nb > 0 && hx > 0) {
            sb /= nb
            print "The two cores are saturated through a proxy, so conn/s goes as 1 / total. A proxy"
            print "terminates one connection and opens another: the backend and the load generator,"
            printf "minimal epoll programs doing one side each, cost %.1f us together. A proxy no dearer\n", sb
            printf "than that would reach %.2fx HAProxy (%.1f us) at most in this setup.\n", (sb + hx) / (2 * sb), hx
        }
        print ""
    }
    if (!("ppfwd" in seen)) {
        print "Targets of issue 3: ppfwd not measured."
        exit
    }
    print "Targets of issue 3 (ppfwd against the better HAProxy mode); a ratio is the median of"
    print "the per-round ratios (p99: against the mode with the higher rate that round), then"
    print "the medians and their ratio:"
    v = has("ppfwd iperf") ? median("ppfwd iperf") : 0
    q = pbest("iperf")
    printf "  iperf3 one stream >= 1.2x HAProxy:           %s (%.2fx; %.2f vs %.2f Gbit/s, %s)\n", yn(q >= 1.2), q, v, hi, r(v, hi)
    split("plain sp ap", vs, " ")
    split("plain,send-proxy=v2,accept-proxy=required", names, ",")
    for (j = 1; j <= 3; j++) {
        hv = hbest("cps_" vs[j], 1); hp = hbest_p99(vs[j])
        v = has("ppfwd cps_" vs[j]) ? median("ppfwd cps_" vs[j]) : 0
        p = has("ppfwd p99_" vs[j]) ? median("ppfwd p99_" vs[j]) : 0
        q = pbest("cps_" vs[j]); qp = pbest_p99(vs[j])
        printf "  conn/s %-22s >= 1.3x, p99 <=: %s (%.2fx, p99 %.2fx; %.0f vs %.0f/s, %s; p99 %.2f vs %.2f ms)\n", names[j], yn(q >= 1.3 && qp > 0 && qp <= 1), q, qp, v, hv, r(v, hv), p, hp
    }
    v = has("ppfwd kib_idle") ? median("ppfwd kib_idle") : -1
    printf "  KiB/conn idle <= 0.5x HAProxy:               %s (%.2f vs %.2f KiB)\n", yn(v >= 0 && v <= 0.5 * hmi), v, hmi
    v = has("ppfwd kib_echo") ? median("ppfwd kib_echo") : -1
    printf "  KiB/conn after one echo <= 0.5x HAProxy:     %s (%.2f vs %.2f KiB)\n", yn(v >= 0 && v <= 0.5 * hme), v, hme
    # Issue 12: a TLV policy (tlvs=keep:authority, two add-tlv) against plain
    # send-proxy=v2, both ppfwd, paired within each round.
    n = 0
    for (rr = 1; rr <= rounds; rr++)
        if ((("ppfwd cps_tlv", rr) in rv) && (("ppfwd cps_sp", rr) in rv) && rv["ppfwd cps_sp", rr] > 0)
            w[++n] = rv["ppfwd cps_tlv", rr] / rv["ppfwd cps_sp", rr]
    if (n > 0) {
        q = vmed(w, n)
        printf "  conn/s send-proxy=v2 + TLV policy within 3%% of send-proxy=v2: %s (%.3fx; %s vs %s/s)\n", yn(q >= 0.97), q, f("ppfwd cps_tlv", "%.0f"), f("ppfwd cps_sp", "%.0f")
        print "  (TLV policy: tlvs=keep:authority&add-tlv=0xe0=zone-a&add-tlv=0xe1=hex:0102030405060708)"
    }
    # Issue 14: per mode, the proxy CPU per connection against the backend
    # plus the load generator of the same run (the floor of a proxy doing
    # both sides), and conn/s and p99 against the better HAProxy mode.
    print ""
    print "Targets of issue 14 (medians of per-round ratios; CPU in µs per connection, same run):"
    for (j = 1; j <= 3; j++) {
        m = vs[j]
        n = 0
        for (rr = 1; rr <= rounds; rr++)
            if ((("ppfwd cpu_px_" m, rr) in rv) && (("ppfwd cpu_be_" m, rr) in rv) && (("ppfwd cpu_ld_" m, rr) in rv) &&
                rv["ppfwd cpu_be_" m, rr] + rv["ppfwd cpu_ld_" m, rr] > 0)
                w2[++n] = rv["ppfwd cpu_px_" m, rr] / (rv["ppfwd cpu_be_" m, rr] + rv["ppfwd cpu_ld_" m, rr])
        if (n > 0) {
            q = vmed(w2, n)
            hx = hbest("cpu_px_" m, 0)
            printf "  proxy CPU <= 1.0x backend + load, %-24s %s (%.2fx; ppfwd %s, backend %s, load %s; HAProxy %s)\n", names[j] ":",
                yn(q <= 1.0), q, f("ppfwd cpu_px_" m, "%.1f"), f("ppfwd cpu_be_" m, "%.1f"), f("ppfwd cpu_ld_" m, "%.1f"),
                hx != "" ? sprintf("%.1f", hx) : "-"
        }
        split("", w2)
        q = pbest("cps_" m); qp = pbest_p99(m)
        if (q > 0)
            printf "  conn/s >= 1.0x, p99 <= better HAProxy, %-24s %s (%.2fx, p99 %.2fx)\n", names[j] ":", yn(q >= 1.0 && qp > 0 && qp <= 1), q, qp
    }
}' "$tmp/results.tsv"
