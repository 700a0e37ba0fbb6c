#!/bin/bash
# bench/ab.sh BUILD_DIR OLD_PPFWD NEW_PPFWD - two ppfwd binaries side by side:
# is the new one slower anywhere? (A refactor or an optimisation is judged
# against its parent commit this way: build the parent in a worktree and
# pass its build/ppfwd as OLD_PPFWD.)
#
# Each round starts both binaries afresh with the same routes and measures,
# interleaved and in an order that alternates from round to round:
#   TCP conn/s   plain, send-proxy=v2, accept-proxy=required (bench_tcp_load
#                rate, 64 clients, connect + 64-byte echo + close)
#   UDP dgram/s  plain and send-proxy=v2, 64 and 1,400 bytes (bench_udp_load,
#                window 32 over 4 client sockets); udp-gso-*: plain, to a
#                backend that answers each client's batch in one GSO send
#                (bench_udp_echo -g, as QUIC servers do); udp-gso-bulk: the
#                same with 1,200-byte datagrams, 64 in flight per client
#                (a QUIC download's bursts)
# and prints, per measure, the median of the per-round ratios new/old with
# their spread (min-max), and the CPU time of ppfwd per connection or
# datagram for each binary (user + system, from /proc).
#
# Knobs: BENCH_AB_ROUNDS (5), BENCH_AB_SECS (3), BENCH_AB_PORT (29400: uses
# 29400-29430). Exit status 0 unless the benchmark could not run (2).
set -u

[ $# -eq 3 ] || { echo "usage: bench/ab.sh BUILD_DIR OLD_PPFWD NEW_PPFWD" >&2; exit 2; }
B=$(cd "$1" && pwd)
OLD=$2
NEW=$3
ROUNDS=${BENCH_AB_ROUNDS:-5}
SECS=${BENCH_AB_SECS:-3}
BASE=${BENCH_AB_PORT:-29400}
TLOAD=$B/bench/bench_tcp_load
TECHO=$B/bench/bench_tcp_echo
ULOAD=$B/bench/bench_udp_load
UECHO=$B/bench/bench_udp_echo
HZ=$(getconf CLK_TCK)
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

for f in "$OLD" "$NEW" "$TLOAD" "$TECHO" "$ULOAD" "$UECHO"; do
    [ -x "$f" ] || { echo "bench/ab.sh: $f is missing (make bench builds the tools)" >&2; exit 2; }
done

# The tools bind with SO_REUSEPORT: a port some other process holds would be
# shared with it, silently, and part of the load would measure that process.
ports_free "bench/ab.sh (set BENCH_AB_PORT)" "$BASE" $((BASE + 30))

E_TCP=$BASE          # TCP echo
E_TCP_PP=$((BASE + 1)) # TCP echo that skips a PROXY header
E_UDP=$((BASE + 2))
E_UDP_PP=$((BASE + 3))
E_UDP_GSO=$((BASE + 4))
P=$((BASE + 10)) # the routes: P+0..P+5

bench_init ab

spawn "$tmp/e1.log" "$TECHO" -p "$E_TCP"
spawn "$tmp/e2.log" "$TECHO" -p "$E_TCP_PP" -P
spawn "$tmp/e3.log" "$UECHO" -p "$E_UDP"
spawn "$tmp/e4.log" "$UECHO" -p "$E_UDP_PP" -P
spawn "$tmp/e5.log" "$UECHO" -p "$E_UDP_GSO" -g
sleep 0.3

# start BIN: ppfwd with the five routes; sets PPID_T.
start() {
    spawn "$tmp/ppfwd.log" "$1" -w 2 -l warn \
        "tcp://127.0.0.1:$P/127.0.0.1:$E_TCP" \
        "tcp://127.0.0.1:$((P + 1))/127.0.0.1:$E_TCP_PP?send-proxy=v2" \
        "tcp://127.0.0.1:$((P + 2))/127.0.0.1:$E_TCP?accept-proxy=required" \
        "udp://127.0.0.1:$((P + 3))/127.0.0.1:$E_UDP" \
        "udp://127.0.0.1:$((P + 4))/127.0.0.1:$E_UDP_PP?send-proxy=v2" \
        "udp://127.0.0.1:$((P + 5))/127.0.0.1:$E_UDP_GSO"
    PPID_T=$LAST_PID
    local i=0
    while [ $i -lt 50 ]; do
        "$TLOAD" probe -p "$P" >/dev/null 2>&1 && "$ULOAD" -p "$((P + 3))" --probe && return 0
        sleep 0.1
        i=$((i + 1))
    done
    echo "bench/ab.sh: $1 did not start: $(tail -n 3 "$tmp/ppfwd.log")" >&2
    exit 2
}

stop() {
    kill -TERM "$PPID_T" 2>/dev/null
    wait "$PPID_T" 2>/dev/null
}

# measure NAME WHICH ROUND: one figure, appended to results.
measure() {
    local name=$1 which=$2 r=$3 line rate t0 t1
    t0=$(cpu_ticks "$PPID_T")
    case $name in
    tcp-plain) line=$("$TLOAD" rate -p "$P" -c 64 -t "$SECS" | grep '^RESULT') ;;
    tcp-sendv2) line=$("$TLOAD" rate -p "$((P + 1))" -c 64 -t "$SECS" | grep '^RESULT') ;;
    tcp-acceptp) line=$("$TLOAD" rate -p "$((P + 2))" -c 64 -t "$SECS" -2 | grep '^RESULT') ;;
    udp-64) line=$("$ULOAD" -p "$((P + 3))" -s 64 -t "$SECS" | grep '^RESULT') ;;
    udp-1400) line=$("$ULOAD" -p "$((P + 3))" -s 1400 -t "$SECS" | grep '^RESULT') ;;
    udp-v2-64) line=$("$ULOAD" -p "$((P + 4))" -s 64 -t "$SECS" | grep '^RESULT') ;;
    udp-gso-64) line=$("$ULOAD" -p "$((P + 5))" -s 64 -t "$SECS" | grep '^RESULT') ;;
    udp-gso-1400) line=$("$ULOAD" -p "$((P + 5))" -s 1400 -t "$SECS" | grep '^RESULT') ;;
    udp-gso-bulk) line=$("$ULOAD" -p "$((P + 5))" -s 1200 -w 256 -t "$SECS" | grep '^RESULT') ;;
    esac
    t1=$(cpu_ticks "$PPID_T")
    rate=$(echo "$line" | sed -n 's/.* cps=\([0-9.]*\).*/\1/p; s/.*dps=\([0-9.]*\).*/\1/p' | head -n 1)
    [ -n "$rate" ] || { echo "bench/ab.sh: $name ($which) gave no result: $line" >&2; return; }
    echo "$r $name $which $rate $(awk -v c=$((t1 - t0)) -v hz="$HZ" -v n="$rate" -v s="$SECS" \
        'BEGIN { printf "%.2f", (n > 0 ? c / hz * 1e6 / (n * (s + 0.5)) : 0) }')" >>"$tmp/results"
}

MEASURES=${BENCH_AB_MEASURES:-tcp-plain tcp-sendv2 tcp-acceptp udp-64 udp-1400 udp-v2-64 udp-gso-64 udp-gso-1400 udp-gso-bulk}
: >"$tmp/results"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
    echo "bench ab: round $r/$ROUNDS ($order)" >&2
    for which in $order; do
        if [ "$which" = old ]; then start "$OLD"; else start "$NEW"; fi
        for m in $MEASURES; do measure "$m" "$which" "$r"; done
        stop
    done
done

awk -v rounds="$ROUNDS" -v secs="$SECS" -v ms="$MEASURES" -v old="$OLD" -v new="$NEW" '
function med(a, n,    i, j, t) {
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ rate[$1, $2, $3] = $4; cpu[$1, $2, $3] = $5 }
END {
    printf "ppfwd A/B: %d rounds x %ss, interleaved (old = %s, new = %s)\n\n", rounds, secs, old, new
    printf "%-12s | %10s %10s | %8s %15s | %9s %9s\n", "measure", "old", "new", "new/old", "per-round range", "old CPU", "new CPU"
    n = split(ms, m, " ")
    for (i = 1; i <= n; i++) {
        k = 0
        for (r = 1; r <= rounds; r++)
            if (((r, m[i], "old") in rate) && ((r, m[i], "new") in rate) && rate[r, m[i], "old"] > 0) {
                k++
                q[k] = rate[r, m[i], "new"] / rate[r, m[i], "old"]
                o[k] = rate[r, m[i], "old"]; w[k] = rate[r, m[i], "new"]
                co[k] = cpu[r, m[i], "old"]; cw[k] = cpu[r, m[i], "new"]
            }
        if (k == 0) { printf "%-12s | n/a\n", m[i]; continue }
        lo = hi = q[1]
        for (j = 2; j <= k; j++) { if (q[j] < lo) lo = q[j]; if (q[j] > hi) hi = q[j] }
        printf "%-12s | %10.0f %10.0f | %7.3fx %7.3f-%-7.3f | %7.2fus %7.2fus\n", m[i], med(o, k), med(w, k), med(q, k), lo, hi, med(co, k), med(cw, k)
    }
    print ""
    print "rates: conn/s (tcp-*) or datagrams/s (udp-*); new/old: the median of the per-round"
    print "ratios, each taken seconds apart; CPU: ppfwd user + system per connection or datagram."
}' "$tmp/results"
