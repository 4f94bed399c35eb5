#!/usr/bin/env bash
# Install the Debian 12 packages stitch needs to build and test on all three
# architectures.  Only what is missing is installed; safe to run repeatedly.
set -euo pipefail

packages=(
  gcc g++ clang lld cmake ninja-build make pkg-config
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu g++-aarch64-linux-gnu
  gcc-riscv64-linux-gnu libc6-dev-riscv64-cross binutils-riscv64-linux-gnu g++-riscv64-linux-gnu
  qemu-user binutils valgrind spin libclang-rt-14-dev
  liburcu-dev
  python3 uftrace
  cppcheck clang-tidy jq
  gdb
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo=sudo; else
    echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
