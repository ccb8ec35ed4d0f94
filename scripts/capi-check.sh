#!/usr/bin/env bash
# The C ABI (feature `capi`, src/capi/), end to end: builds libfocal, static and
# dynamic, from the main crate (`cargo rustc --crate-type staticlib,cdylib`: a
# feature cannot set crate types, so they are given here); checks that
# include/focal.h is what cbindgen generates from src/capi/ (--write rewrites it
# instead) and that every function in it is documented; compiles tests/c/test_focal.c
# with gcc -Wall -Wextra -Werror against the static library and runs it (then again
# against the shared one, and under qemu's Nehalem when there is qemu-x86_64), and
# compiles the header as C++. Installs cbindgen (pinned) when missing. fmt and clippy
# of src/capi/ are .ci/run's steps (clippy with --all-features).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CBINDGEN_VERSION=0.29.4

run() {
  echo "+ $*"
  "$@"
}

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cbindgen --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
  run cargo install cbindgen --locked --version "$CBINDGEN_VERSION"
fi
for tool in gcc g++; do
  command -v "$tool" >/dev/null || {
    echo "$tool is missing (apt-get install gcc g++)" >&2
    exit 1
  }
done

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# src/capi/mod.rs as a single source file (cbindgen follows its submodules): only
# the C ABI's items, none of the Rust API's (see cbindgen.toml).
run cbindgen --quiet --config cbindgen.toml --output "$OUT/focal.h" src/capi/mod.rs
if [ "${1:-}" = --write ]; then
  run cp "$OUT/focal.h" include/focal.h
elif ! diff -u include/focal.h "$OUT/focal.h"; then
  echo "include/focal.h is stale: run bash scripts/capi-check.sh --write and commit it" >&2
  exit 1
fi
# Every function in the header has a comment right above its declaration.
undocumented=$(awk '/^[A-Za-z].*\(/ && prev !~ /^ *\/\// { print } { prev = $0 }' include/focal.h)
if [ -n "$undocumented" ]; then
  echo "undocumented in include/focal.h: $undocumented" >&2
  exit 1
fi

# After the header checks, which take a second, so a stale header fails fast.
# Profile `capi` (Cargo.toml): release with panic = "abort"; libraries in target/capi/.
run cargo rustc --profile capi --features capi --crate-type staticlib,cdylib
LIB=${CARGO_TARGET_DIR:-$ROOT/target}/capi

CFLAGS=(-std=c11 -O1 -Wall -Wextra -Werror -pedantic -Iinclude -Itests/c)
run gcc "${CFLAGS[@]}" tests/c/test_focal.c "$LIB/libfocal.a" -lpthread -ldl -lm -o "$OUT/test_static"
run "$OUT/test_static"
run gcc "${CFLAGS[@]}" tests/c/test_focal.c -L"$LIB" -lfocal -lm -o "$OUT/test_shared"
run env LD_LIBRARY_PATH="$LIB" "$OUT/test_shared" | tail -n 1
echo "shared library: same results"
# On a CPU without AVX (qemu-user's Nehalem), the x86 backends are unavailable: the
# C test then also sees FOCAL_ERR_BACKEND_UNAVAILABLE from pinning and forcing them.
if command -v qemu-x86_64 >/dev/null && [ "$(uname -m)" = x86_64 ]; then
  run qemu-x86_64 -cpu Nehalem "$OUT/test_static" | tail -n 3
fi
run g++ -std=c++11 -Wall -Wextra -Werror -pedantic -Iinclude -fsyntax-only tests/c/header_cpp.cpp
