#!/usr/bin/env bash
# Build the native offload addon: BPF objects (clang) -> skeleton headers (bpftool) -> the N-API
# addon (node-gyp, linked against Debian's libbpf: -lbpf, runtime package libbpf1).
# Output: native-offload/build/Release/l7mp_offload.node (git-ignored). Needs clang, bpftool,
# libbpf-dev, make and g++; Node headers come from npm's nodedir (N-API is ABI-stable).
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)
gen=gen
mkdir -p "$gen"
arch_inc=/usr/include/$(gcc -dumpmachine)
for p in offload reuseport; do
  clang -O2 -g -Wall -target bpf -I"$arch_inc" -c "bpf/$p.bpf.c" -o "$gen/$p.bpf.o"
  bpftool gen skeleton "$gen/$p.bpf.o" name "${p}_bpf" > "$gen/$p.skel.h.tmp"
  mv "$gen/$p.skel.h.tmp" "$gen/$p.skel.h"
done
gyp=""
for c in "$root/node_modules/node-gyp/bin/node-gyp.js" /usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js /usr/share/nodejs/node-gyp/bin/node-gyp.js; do
  if [ -f "$c" ]; then gyp=$c; break; fi
done
[ -n "$gyp" ] || { echo "native-offload/build.sh: node-gyp not found" >&2; exit 1; }
# Headers: those of the Node 24 the checkout installs (node@24 ships include/node), else npm's nodedir.
nodedir=""
for d in "$root"/node_modules/node/node_modules/node-linux-*/ "${npm_config_nodedir:-}" /usr; do
  if [ -n "$d" ] && [ -f "$d/include/node/node_api.h" ]; then nodedir=${d%/}; break; fi
done
[ -n "$nodedir" ] || { echo "native-offload/build.sh: no Node headers (include/node/node_api.h)" >&2; exit 1; }
node "$gyp" rebuild --nodedir="$nodedir" --loglevel=warn >/dev/null
echo "native-offload: built $(pwd)/build/Release/l7mp_offload.node"
