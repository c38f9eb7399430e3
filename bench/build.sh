#!/usr/bin/env bash
# Builds bench/.build/udpbench from bench/udpbench.c when it is missing or older than the source.
# Prints the path of the binary. Usage: bench/build.sh [--force]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src="$here/udpbench.c"
out="$here/.build/udpbench"
if [ "${1:-}" = "--force" ] || [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
  mkdir -p "$here/.build"
  "${CC:-cc}" -std=c11 -O2 -Wall -Wextra -pthread -o "$out.tmp" "$src"
  mv "$out.tmp" "$out"
fi
echo "$out"
