#!/bin/sh
# What `make run` shows until the daemon lands: PROXY headers made with
# `ppfwd encode` and read back with `ppfwd decode`, each command printed
# before its output. Exits 0 when every step ends as shown, 1 otherwise.
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
trap 'rm -rf "$tmp"' EXIT
failed=0

# The commands below read as a user would type them.
ppfwd() {
    "$bin" "$@"
}

# step STATUS COMMAND: prints and runs COMMAND, which should exit with STATUS.
step() {
    want=$1
    shift
    printf '\n$ %s\n' "$*"
    # stderr joins stdout so that messages stay next to their command.
    eval "$*" 2>&1
    rc=$?
    [ "$rc" -ne 0 ] && printf '(exit status %d)\n' "$rc"
    if [ "$rc" -ne "$want" ]; then
        echo "demo: expected exit status $want" >&2
        failed=1
    fi
}

echo "== PROXY v1: one text line"
step 0 "ppfwd encode --v1 --src 192.0.2.10:51234 --dst 198.51.100.1:443"
step 0 "ppfwd encode --v1 --src 192.0.2.10:51234 --dst 198.51.100.1:443 | ppfwd decode"

echo
echo "== PROXY v2 (the default) with an AUTHORITY TLV and a CRC32C over the header"
step 0 "ppfwd encode --src 192.0.2.10:51234 --dst 198.51.100.1:443 --tlv authority=example.com --crc32c | od -An -tx1"
step 0 "ppfwd encode --src 192.0.2.10:51234 --dst 198.51.100.1:443 --tlv authority=example.com --crc32c | ppfwd decode"

echo
echo "== UDP over IPv6 (v2 only: v1 cannot express UDP)"
step 0 "ppfwd encode --udp --src '[2001:db8::1]:5353' --dst '[2001:db8::2]:53' | ppfwd decode"
step 1 "ppfwd encode --v1 --udp --src '[2001:db8::1]:5353' --dst '[2001:db8::2]:53'"

echo
echo "== LOCAL: a health check from the proxy itself, no addresses"
step 0 "ppfwd encode --local | ppfwd decode"
step 0 "ppfwd encode --v1 --local | ppfwd decode"

echo
echo "== Tampering: rewrite the source address 192.0.2.10 -> 192.0.2.11 in a header"
echo "== that carries a CRC32C; the receiver refuses it"
cd "$tmp" || exit 1
step 0 "ppfwd encode --src 192.0.2.10:51234 --dst 198.51.100.1:443 --crc32c > hdr.bin"
step 0 "printf '\\013' | dd of=hdr.bin bs=1 seek=19 conv=notrunc 2>/dev/null"
step 1 "ppfwd decode hdr.bin"
step 0 "ppfwd decode --no-crc hdr.bin"
cd - >/dev/null || exit 1

echo
echo "== A header cut short is incomplete (exit 2), not invalid"
step 2 "ppfwd encode --src 192.0.2.10:51234 --dst 198.51.100.1:443 | head -c 20 | ppfwd decode"

echo
if [ "$failed" -ne 0 ]; then
    echo "demo: some steps did not end as expected" >&2
    exit 1
fi
echo "All steps ended as expected. The proxy daemon itself (ppfwd ROUTE..., -c FILE,"
echo "check, whoami) is not implemented yet; see ppfwd --help."
