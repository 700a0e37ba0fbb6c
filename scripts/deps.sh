#!/bin/sh
# Installs the Debian packages a make target needs, if any are missing.
# Usage: scripts/deps.sh build|run|test|bench|fuzz|deb|static|image
# Each package is here for one reason, listed in README.md ("Dependencies").
set -eu

case "${1:-build}" in
build) pkgs="gcc make libc6-dev libyaml-dev libcurl4-openssl-dev libjson-c-dev pkg-config liburing-dev libcmocka-dev" ;;
run) pkgs="gcc make libc6-dev libyaml-dev libcurl4-openssl-dev libjson-c-dev pkg-config liburing-dev" ;;
test) pkgs="gcc make libc6-dev libyaml-dev libcurl4-openssl-dev libjson-c-dev pkg-config liburing-dev libcmocka-dev clang libclang-rt-14-dev python3 haproxy nginx libnginx-mod-stream curl prometheus go-mmproxy iproute2 dpkg-dev debhelper fakeroot lintian linux-libc-dev musl-tools podman python3-kubernetes" ;;
fuzz) pkgs="gcc make libc6-dev clang libclang-rt-14-dev" ;;
bench) pkgs="gcc make libc6-dev libyaml-dev libcurl4-openssl-dev libjson-c-dev golang-go golang-github-pires-go-proxyproto-dev golang-github-armon-go-proxyproto-dev haproxy nginx libnginx-mod-stream socat iperf3 python3 go-mmproxy iproute2 strace valgrind liburing-dev" ;;
deb) pkgs="gcc make libc6-dev libyaml-dev libcurl4-openssl-dev libjson-c-dev pkg-config liburing-dev dpkg-dev debhelper fakeroot lintian" ;;
static) pkgs="gcc make libc6-dev linux-libc-dev musl-tools dpkg-dev" ;;
image) pkgs="gcc make libc6-dev linux-libc-dev musl-tools dpkg-dev podman" ;;
*) echo "deps.sh: unknown target '$1'" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "deps.sh: installing:$missing"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "deps.sh: need root or sudo to install:$missing" >&2
        exit 1
    }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing

# The bench and the integration tests run their own HAProxy and nginx with
# their own configs, and prometheus is there for promtool only: stop the
# services the packages may have started (nginx on port 80), if they did.
case " $missing " in
*" nginx "* | *" haproxy "* | *" prometheus "*)
    for s in nginx haproxy prometheus; do
        if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$s" 2>/dev/null; then
            $sudo systemctl stop "$s" || true
        fi
    done
    if [ -f /run/nginx.pid ]; then
        $sudo nginx -s stop 2>/dev/null || true
    fi
    ;;
esac
