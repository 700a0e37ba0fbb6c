#!/bin/sh
# Builds the container image (Containerfile) with podman.
# Usage: scripts/image.sh IMAGE source|host|auto
#   source  the Containerfile's Debian 12 build stage compiles ppfwd
#   host    the image takes build/static/ppfwd (make static): no pull at all
#   auto    source when the Debian 12 base image is here or can be pulled,
#           else host (say, on a machine that reaches no container registry)
set -eu

image=${1:?usage: scripts/image.sh IMAGE source|host|auto}
bin=${2:-auto}
base=docker.io/library/debian:12

case "$bin" in
source | host) ;;
auto)
    if podman image exists "$base" || timeout 120 podman pull -q "$base" >/dev/null 2>&1; then
        bin=source
    else
        echo "image.sh: cannot pull $base: the image takes the host-built build/static/ppfwd"
        bin=host
    fi
    ;;
*)
    echo "image.sh: BIN must be source, host or auto, not '$bin'" >&2
    exit 2
    ;;
esac
if [ "$bin" = host ] && [ ! -x build/static/ppfwd ]; then
    echo "image.sh: build/static/ppfwd is missing: run make static" >&2
    exit 1
fi
# The build stage's RUN steps in chroot isolation: no OCI runtime, hence no
# cgroup setup (which fails on some build machines: "cgroups in hybrid mode
# not supported"); the build needs none of what a container runtime adds.
podman build -q --isolation="${PODMAN_ISOLATION:-chroot}" --build-arg BIN="$bin" -t "$image" \
    -f Containerfile . >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image.sh: built $image from the $bin binary, $size bytes"
