#!/usr/bin/env bash
# The C ABI, end to end: builds libfocal (static and dynamic), checks that
# include/focal.h is what cbindgen generates from capi/src/lib.rs (--write rewrites
# it instead), compiles tests/c/test_focal.c with gcc -Wall -Wextra -Werror against
# the static library and runs it (then again against the shared one), and compiles the
# header as C++. Installs cbindgen (pinned) when missing.
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

run cargo fmt --manifest-path capi/Cargo.toml -- --check
run cargo clippy --release --manifest-path capi/Cargo.toml -- -D warnings
run cargo build --release --manifest-path capi/Cargo.toml
LIB=$ROOT/capi/target/release
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

run cbindgen --quiet --config capi/cbindgen.toml --crate focal-capi --output "$OUT/focal.h" capi
if [ "${1:-}" = --write ]; then
  run cp "$OUT/focal.h" include/focal.h
elif ! diff -u include/focal.h "$OUT/focal.h"; then
  echo "include/focal.h is stale: run bash capi/check.sh --write and commit it" >&2
  exit 1
fi
# Every function in the header has a comment right above its declaration.
undocumented=$(awk '/^[A-Za-z].*\(/ && prev !~ /^ *\/\// { print } { prev = $0 }' include/focal.h)
if [ -n "$undocumented" ]; then
  echo "undocumented in include/focal.h: $undocumented" >&2
  exit 1
fi

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
