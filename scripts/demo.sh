#!/bin/bash
# What `make run` shows: a few PROXY headers made with `ppfwd encode` and read
# back with `ppfwd decode`, then ppfwd running live on 127.0.0.1 in front of
# `ppfwd whoami` (a test server that answers with what it saw), reached with
# curl. Each command is printed before its output. Background processes are
# stopped and reaped on exit; every wait is bounded. Exits 0 when every step
# ends as shown, 1 otherwise.
# Usage: scripts/demo.sh PATH/TO/ppfwd
set -u

bin=${1:-}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "usage: scripts/demo.sh PATH/TO/ppfwd (not executable: '$bin')" >&2
    exit 2
fi
case "$bin" in
/*) ;;
*) bin=$PWD/$bin ;;
esac
tmp=$(mktemp -d) || exit 1
pids=""
failed=0

# Stops what we started: SIGTERM, then SIGKILL after 5 s; always reaps.
stop_all() {
    for p in $pids; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in $pids; do
        for _ in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    pids=""
}
trap 'stop_all; rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

# The commands below read as a user would type them.
ppfwd() {
    "$bin" "$@"
}

fail() {
    echo "demo: $*" >&2
    failed=1
}

# step STATUS COMMAND: prints and runs COMMAND, which should exit with STATUS.
# Its output (stderr joined) is also kept in $tmp/out for checks.
step() {
    local want=$1 rc
    shift
    printf '\n$ %s\n' "$*"
    eval "$*" >"$tmp/out" 2>&1
    rc=$?
    cat "$tmp/out"
    [ "$rc" -ne 0 ] && printf '(exit status %d)\n' "$rc"
    [ "$rc" -eq "$want" ] || fail "expected exit status $want"
}

# expect TEXT: the last step's output contains TEXT.
expect() {
    grep -qF -- "$1" "$tmp/out" || fail "expected '$1' in the output above"
}

# port VAR START: sets VAR to a free port from START up: nothing answers a
# connect there, and no other VAR took it. The defaults lie above Linux's
# ephemeral range (32768-60999), where outgoing connections take theirs.
port() {
    local p
    for p in $(seq "$2" $(($2 + 200))); do
        case " $taken " in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            taken="$taken $p"
            printf -v "$1" '%s' "$p"
            return 0
        fi
    done
    return 1
}
taken=""

# bg LOG READY COMMAND: prints COMMAND, runs it in the background with stderr
# to LOG, and waits (5 s at most) for the log line READY. Returns 0 when it
# came, 2 when the port was in use, else 1.
bg() {
    local log=$1 ready=$2 pid
    shift 2
    printf '\n$ %s 2>%s &\n' "$*" "$log"
    # exec: the background job is ppfwd itself, not a subshell around it,
    # so that $! is the process to signal and wait for.
    eval "( exec 2>\"\$tmp/\$log\"; ppfwd() { exec \"\$bin\" \"\$@\"; }; $* ) &"
    pid=$!
    pids="$pids $pid"
    for _ in $(seq 50); do
        if grep -q "$ready" "$tmp/$log" 2>/dev/null; then
            cat "$tmp/$log"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$tmp/$log"
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"
        pids=${pids/ $pid/}
        grep -q "Address already in use" "$tmp/$log" && return 2
    fi
    fail "no '$ready' line from: $*"
    return 1
}

# serve VAR START LOG READY COMMAND: bg COMMAND with @PORT@ replaced by a free
# port from START up, kept in VAR; the next port when that one turns out busy.
serve() {
    local var=$1 start=$2 log=$3 ready=$4 cmd=$5 rc
    for _ in 1 2 3 4 5; do
        port "$var" "$start" || break
        bg "$log" "$ready" "${cmd//@PORT@/${!var}}"
        rc=$?
        [ "$rc" -eq 2 ] || return "$rc"
        echo "(port ${!var} is busy: trying another)"
    done
    fail "no free port found from $start"
    return 1
}

# send_tcp HOST PORT: stdin to a TCP connection, then what comes back until
# the server closes (5 s at most). Plain bash /dev/tcp.
send_tcp() {
    exec 3<>"/dev/tcp/$1/$2" || return 1
    cat >&3
    timeout 5 cat <&3
    local rc=$?
    exec 3>&-
    return $rc
}

echo "== Part 1: PROXY headers, made and read back"
step 0 "ppfwd encode --v1 --src 192.0.2.10:51234 --dst 198.51.100.1:443"
expect "PROXY TCP4 192.0.2.10 198.51.100.1 51234 443"
step 0 "ppfwd encode --src 192.0.2.10:51234 --dst 198.51.100.1:443 --tlv authority=example.com --crc32c | ppfwd decode"
expect '"value":"example.com"'
step 2 "ppfwd encode --src 192.0.2.10:51234 --dst 198.51.100.1:443 | head -c 20 | ppfwd decode"

echo
echo "== Part 2: ppfwd live, on 127.0.0.1, with examples/demo.yaml"
src=$PWD
cd "$tmp" || exit 1
have_curl=0
command -v curl >/dev/null 2>&1 && have_curl=1
[ "$have_curl" -eq 1 ] || echo "(curl is not installed: the demo talks through bash's /dev/tcp instead)"

echo
echo "-- A test server that insists on a PROXY header"
serve W 9000 whoami.log whoami_listen "ppfwd whoami --accept-proxy=required 127.0.0.1:@PORT@" || exit 1

# demo_config: examples/demo.yaml with its ports (8000, 8001, upstream 9000)
# moved to free ones where those are taken; returns bg's status.
demo_config() {
    port F 8000 && port R 8001 || return 1
    sed -e 's/127\.0\.0\.1:8000$/127.0.0.1:@F@/' -e 's/127\.0\.0\.1:8001$/127.0.0.1:@R@/' \
        -e 's/127\.0\.0\.1:9000$/127.0.0.1:@W@/' "$src/examples/demo.yaml" |
        sed -e "s/@F@/$F/" -e "s/@R@/$R/" -e "s/@W@/$W/" >demo.yaml
    echo
    echo "-- examples/demo.yaml (without its comments; ports: front $F, relay $R, whoami $W):"
    echo "-- route 'front' sends a v2 header with an AUTHORITY TLV for every client;"
    echo "-- route 'relay' itself requires a header (from 127.0.0.1 only) and passes on"
    echo "-- the client it names"
    step 0 "sed -e '/^ *#/d' -e 's/ *#.*//' -e '/^\$/d' demo.yaml"
    step 0 "ppfwd check -c demo.yaml"
    bg ppfwd.log "route_start route=relay" "ppfwd -c demo.yaml"
}
for _ in 1 2 3 4 5; do
    demo_config
    rc=$?
    [ "$rc" -eq 2 ] || break
    echo "(a port is busy: trying others)"
done
[ "$rc" -eq 0 ] || exit 1

echo
echo "-- whoami answers with what it saw: 'peer' is ppfwd's socket, 'client' the real"
echo "-- client (this curl), carried in the header"
if [ "$have_curl" -eq 1 ]; then
    step 0 "curl -s --max-time 3 --http0.9 http://127.0.0.1:$F/"
else
    step 0 "printf '' | send_tcp 127.0.0.1 $F"
fi
expect '"local":"127.0.0.1:'"$W"'"'
expect '"dst":"127.0.0.1:'"$F"'"'
expect '"value":"demo.example"'
peer=$(sed -n 's/.*"peer":"\([^"]*\)".*/\1/p' out)
client=$(sed -n 's/.*"client":"\([^"]*\)".*/\1/p' out)
if [ -z "$client" ] || [ "$client" = "$peer" ]; then
    fail "'client' should name curl, not ppfwd's socket"
fi
step 0 "grep 'conn_close route=front' ppfwd.log"
expect "client=$client"

echo
echo "-- Route 'relay' requires a header: curl sends one, naming itself"
if [ "$have_curl" -eq 1 ]; then
    step 0 "curl -s --max-time 3 --http0.9 --haproxy-protocol http://127.0.0.1:$R/"
    expect '"dst":"127.0.0.1:'"$R"'"'
fi
echo
echo "-- A made-up client, in a header written by 'ppfwd encode'"
echo "-- (send_tcp: this script's helper, stdin to a TCP connection with bash's /dev/tcp)"
step 0 "ppfwd encode --v1 --src 192.0.2.10:51234 --dst 198.51.100.1:443 | send_tcp 127.0.0.1 $R"
expect '"client":"192.0.2.10:51234"'
expect '"dst":"198.51.100.1:443"'
echo
echo "-- Without a header the connection is refused (closed, nothing relayed)"
if [ "$have_curl" -eq 1 ]; then
    step 52 "curl -s --max-time 3 --http0.9 http://127.0.0.1:$R/"
else
    step 0 "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | send_tcp 127.0.0.1 $R"
    [ -s out ] && fail "expected no answer"
fi
step 0 "grep -E '(conn_close|proxy_header_refused) route=relay' ppfwd.log"
expect "client=192.0.2.10:51234"
expect 'reason="no PROXY header"'

echo
echo "-- SIGTERM: ppfwd stops accepting, lets open connections finish, exits 0"
for p in $pids; do
    kill -TERM "$p" 2>/dev/null
done
for p in $pids; do
    rc=124
    for _ in $(seq 120); do
        if ! kill -0 "$p" 2>/dev/null; then
            wait "$p"
            rc=$?
            break
        fi
        sleep 0.1
    done
    [ "$rc" -eq 0 ] || fail "process $p: exit status $rc after SIGTERM"
done
pids=""
step 0 "tail -n 2 ppfwd.log"
expect "route_stop"
cd - >/dev/null || exit 1

echo
if [ "$failed" -ne 0 ]; then
    echo "demo: some steps did not end as expected" >&2
    exit 1
fi
echo "All steps ended as expected. To try it yourself:"
echo
echo "  build/ppfwd whoami --accept-proxy=required 127.0.0.1:9000 &"
echo "  build/ppfwd -c examples/demo.yaml &"
echo "  curl -s --http0.9 http://127.0.0.1:8000/                      # route 'front'"
echo "  curl -s --http0.9 --haproxy-protocol http://127.0.0.1:8001/   # route 'relay'"
echo "  build/ppfwd encode --v1 --src 192.0.2.10:51234 --dst 198.51.100.1:443 |"
echo "      nc -q 2 127.0.0.1 8001                                    # a made-up client"
echo "  kill %1 %2                                                    # SIGTERM: drain, exit 0"
echo
echo "More in examples/ (SSH behind a load balancer, a PROXY-aware backend, UDP DNS,"
echo "a chain of two ppfwd), man docs/ppfwd.1 and man docs/ppfwd.yaml.5."
