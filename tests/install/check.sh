#!/bin/sh
# Install the build into a scratch prefix and build a program against it
# with nothing but `pkg-config --cflags --libs stitch`, then run it.
#   check.sh BUILD_DIR SOURCE_DIR CC
set -eu
build=$1 src=$2 cc=$3
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(find "$prefix" -name stitch.pc)
[ -n "$pc" ] || { echo "install: no stitch.pc"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir stitch)
$cc -O2 -Wall -Werror $(pkg-config --cflags stitch) "$src/examples/keys_demo.c" -o "$prefix/demo" \
    $(pkg-config --libs stitch) -lpthread -Wl,-rpath,"$libdir"
"$prefix/demo" --quiet --rounds 3
echo "install: headers, library and stitch.pc work from $prefix"
