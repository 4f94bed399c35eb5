#!/usr/bin/env bash
# Build liburcu's urcu-bp for a cross target, from Debian's own source
# package of the liburcu the host has (Debian 12 ships liburcu for arm64
# but has no riscv64 port, and neither is installable next to the cross
# toolchains without making the machine multiarch).  The result, a static
# position-independent liburcu-bp.a with its headers, lands in
# build/deps/liburcu-ARCH, where scripts/build.sh points the cross build
# (-DSTITCH_URCU_ROOT): the tracing core then uses liburcu on every
# architecture, as on the host, instead of its fallback RCU.
#
#   scripts/cross-urcu.sh ARCH              ARCH: aarch64 riscv64
#   scripts/cross-urcu.sh --cmake-arg ARCH  the same, then print the cmake
#                                           argument a cross build takes:
#                                           -DSTITCH_URCU_ROOT=<prefix>, or
#                                           -DSTITCH_URCU_ROOT= (the fallback,
#                                           said on stderr) if it failed
#
# Nothing on the machine changes: the source is fetched with apt-get under
# a private state directory (deb-src entries made from the host's own
# Debian repositories), and the build is redone only when the host's
# liburcu version changes.  Exit status 1 (with the reason) when it cannot
# be had (with --cmake-arg: the argument that builds with the fallback).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = --cmake-arg ]; then
  arch=${2:?usage: scripts/cross-urcu.sh --cmake-arg aarch64|riscv64}
  if "$0" "$arch" >&2; then
    echo "-DSTITCH_URCU_ROOT=$root/build/deps/liburcu-$arch"
  else
    echo "cross-urcu: the $arch build uses the tracing core's fallback RCU (no liburcu for it)" >&2
    echo "-DSTITCH_URCU_ROOT="
  fi
  exit 0
fi
arch=${1:?usage: scripts/cross-urcu.sh [--cmake-arg] aarch64|riscv64}
case "$arch" in
  aarch64|riscv64) triple=$arch-linux-gnu ;;
  *) echo "cross-urcu: unknown architecture '$arch'" >&2; exit 2 ;;
esac
version=$(dpkg-query -W -f='${Version}' liburcu-dev 2>/dev/null) || {
  echo "cross-urcu: the host has no liburcu-dev (scripts/install-deps.sh installs it)" >&2
  exit 1
}
deps=$root/build/deps
prefix=$deps/liburcu-$arch
if [ -f "$prefix/lib/liburcu-bp.a" ] && [ -f "$prefix/include/urcu/urcu-bp.h" ] && [ "$(cat "$prefix/.version" 2>/dev/null)" = "$version" ]; then
  exit 0
fi

# The source package, through a private apt state (no root needed).
apt_dir=$deps/apt
src_dir=$deps/src
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d" "$src_dir"
apt_opts=(-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
  -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
  -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)")
apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' 2>/dev/null |
  sort -u | awk '{ print "deb-src " $1 " " $2 " " $3 }' >"$apt_dir/sources.list"
if [ ! -s "$apt_dir/sources.list" ]; then
  echo "cross-urcu: no apt repository configured to fetch liburcu's source from" >&2
  exit 1
fi
if ! apt-get "${apt_opts[@]}" -qq update >"$deps/apt.log" 2>&1 ||
  ! (cd "$src_dir" && apt-get "${apt_opts[@]}" -qq source --download-only "liburcu=$version" >>"$deps/apt.log" 2>&1); then
  echo "cross-urcu: could not fetch liburcu $version's source package (see $deps/apt.log)" >&2
  exit 1
fi
upstream=${version%-*}
upstream=${upstream#*:}
orig=$(ls "$src_dir"/liburcu_"$upstream".orig.tar.* | head -n 1)
tree=$src_dir/liburcu-$upstream
rm -rf "$tree" && mkdir -p "$tree"
tar -xf "$orig" -C "$tree" --strip-components=1
# Upstream's source as released: Debian's patches to 0.13.2 add an sh4
# header and trim the regression tests, neither of which concerns urcu-bp
# here, and applying them would make automake regenerate the build files.

# urcu-bp and what it needs, static and PIC: linked into libstitch.so.
build=$deps/build-liburcu-$arch
rm -rf "$build" "$prefix" && mkdir -p "$build"
if ! (
  set -e
  cd "$build"
  "$tree/configure" --host="$triple" --prefix="$prefix" --disable-shared --enable-static --with-pic \
    CFLAGS="-O2 -g" >configure.log 2>&1
  make -j"$(nproc)" -C include >make.log 2>&1
  make -j"$(nproc)" -C src liburcu-common.la liburcu-bp.la >>make.log 2>&1
  make -C include install >>make.log 2>&1
  mkdir -p "$prefix/lib"
  cp src/.libs/liburcu-bp.a src/.libs/liburcu-common.a "$prefix/lib/"
); then
  echo "cross-urcu: building liburcu $version for $arch failed (see $build/*.log)" >&2
  exit 1
fi
echo "$version" >"$prefix/.version"
echo "cross-urcu: liburcu $version (urcu-bp) built for $arch in $prefix"
