#!/bin/sh
# Prepares what `make static` links ppfwd with, under OUT (build/static):
#   OUT/libyaml/lib/libyaml.a, OUT/libyaml/include/yaml.h
#       libyaml compiled with musl-gcc from Debian's own source package
#       (apt-get source libyaml): Debian ships libyaml for glibc only, and a
#       glibc-built libyaml.a (fortified: __memcpy_chk...) does not link with
#       musl. Nothing of it is committed here; it is built at build time.
#   OUT/kernel-include/{linux,asm,asm-generic}
#       the kernel's UAPI headers (linux-libc-dev), which musl-gcc does not
#       search by itself (udp_listen.c needs linux/filter.h).
# Usage: scripts/static-deps.sh OUT
set -eu

out=${1:?usage: scripts/static-deps.sh OUT}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# ---- kernel headers ------------------------------------------------------------
multiarch=$(gcc -print-multiarch)
kh="$out/kernel-include"
mkdir -p "$kh"
for d in linux asm-generic; do
    ln -sfn "/usr/include/$d" "$kh/$d"
done
ln -sfn "/usr/include/$multiarch/asm" "$kh/asm"
[ -f "$kh/linux/filter.h" ] || { echo "static-deps.sh: no kernel headers (linux-libc-dev)" >&2; exit 1; }

# ---- libyaml -------------------------------------------------------------------
y="$out/libyaml"
[ -f "$y/lib/libyaml.a" ] && [ -f "$y/include/yaml.h" ] && exit 0

# A private apt state with the deb-src line of this machine's own Debian
# archive (the system's sources usually have none): same archive, same
# release, same keyring; the system's apt config is left as it is.
apt="$out/apt"
rm -rf "$apt" "$y"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/src" "$y/lib" "$y/include"
. /etc/os-release
codename=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
    2>/dev/null | grep -oE '(https?|file)://[^ ]*/debian/?( |$)' | head -n 1 | tr -d ' ')
[ -n "$uri" ] || { echo "static-deps.sh: no Debian archive in /etc/apt/sources*" >&2; exit 1; }
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $codename main" \
    >"$apt/sources.list"
aptopts="-o Dir::Etc::SourceList=$apt/sources.list -o Dir::Etc::SourceParts=/dev/null
    -o Dir::State::Lists=$apt/lists -o Dir::Cache=$apt/cache -o APT::Sandbox::User=root"
# shellcheck disable=SC2086
apt-get -qq $aptopts update
# shellcheck disable=SC2086
(cd "$apt/src" && apt-get -qq $aptopts source --download-only libyaml)
dsc=$(ls "$apt"/src/libyaml_*.dsc)
# apt checked the files against the signed Release file already.
dpkg-source --no-check -x "$dsc" "$apt/src/libyaml" >/dev/null
version=$(basename "$dsc" .dsc | sed -e 's/^libyaml_//' -e 's/-[^-]*$//')
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
patch=${rest#*.}

# libyaml's own build (autotools or CMake) only sets these four macros.
cc=${MUSL_CC:-musl-gcc}
for f in "$apt"/src/libyaml/src/*.c; do
    $cc -O2 -DYAML_DECLARE_STATIC -DYAML_VERSION_MAJOR="$major" -DYAML_VERSION_MINOR="$minor" \
        -DYAML_VERSION_PATCH="$patch" -DYAML_VERSION_STRING="\"$version\"" \
        -I"$apt/src/libyaml/include" -c "$f" -o "$y/lib/$(basename "$f" .c).o"
done
ar rcs "$y/lib/libyaml.a" "$y"/lib/*.o
rm -f "$y"/lib/*.o
cp "$apt/src/libyaml/include/yaml.h" "$y/include/"
cp "$apt/src/libyaml/License" "$y/LICENSE"
rm -rf "$apt"
echo "static-deps.sh: libyaml $version built with $cc into $y"
