#!/usr/bin/env bash
# The edge targets of focal, one subcommand each; each installs what it needs
# (idempotently: nothing is fetched when it is already there) and runs its step.
# Recipes: shared/cross-targets.md.
#
# Usage: scripts/edge.sh STEP...
#   embedded       Cortex-M4F: builds embedded/ (thumbv7em-none-eabihf; dev profile:
#                  debug assertions and overflow checks on, and a 35 s cold build) and
#                  runs its firmware on qemu-system-arm -machine mps2-an386 through
#                  semihosting: known answers, edge cases, every error kind; exit
#                  status 0 only if every check passed.
#   embedded-release  the same firmware built as shipped (opt-level s); prints the
#                  stack high-water marks quoted in the README. Slow to build (3-4 min)
#                  while the Portable backend is emulated with arrays on the M4.
#   embedded-size  .text of the sigmoid fused loss + gradient (integer and general
#                  gamma) alone: size_sigmoid_fused minus size_base, LTO, opt-level s,
#                  no float formatting; fails above the 12 KiB budget.
#   wasm           cargo test --target wasm32-wasip1 with +simd128 under Node's WASI
#                  (FOCAL_SWEEP=quick), and the library checked for wasm32-unknown-unknown.
#   capi           the C ABI (feature capi, src/capi/; scripts/capi-check.sh): static and
#                  shared library, include/focal.h up to date, the C test program
#                  (gcc -Wall -Wextra -Werror) and a C++ compile of the header.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

export DEBIAN_FRONTEND=noninteractive
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

THUMB=thumbv7em-none-eabihf
WASI=wasm32-wasip1
WASM=wasm32-unknown-unknown
SIZE_BUDGET=$((12 * 1024))

run() {
  echo "+ $*"
  "$@"
}

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

SUDO=
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo -n"; fi

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

APT_UPDATED=
# apt_install PACKAGE...: installs the missing ones. qemu-system-arm (bookworm's 7.2)
# takes away a preinstalled backported qemu-utils on some images, so an install may
# remove packages; whatever of qemu-utils was there is put back (bookworm's) after.
apt_install() {
  local missing=() p had_utils=0
  for p in "$@"; do
    installed "$p" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  installed qemu-utils && had_utils=1
  if [ -z "$APT_UPDATED" ]; then
    run $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  run $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
  if [ "$had_utils" = 1 ] && ! installed qemu-utils; then
    run $SUDO apt-get install -y -qq --no-install-recommends qemu-utils </dev/null
  fi
}

rustup_target() {
  local t
  for t in "$@"; do
    rustup target list --installed | grep -qx "$t" || run rustup target add "$t"
  done
}

step_embedded() {
  apt_install qemu-system-arm
  rustup_target "$THUMB"
  # The firmware's own workspace and .cargo/config.toml (target and QEMU runner).
  cd "$ROOT/embedded"
  run cargo fmt -- --check
  run cargo run --bin focal-embedded
}

step_embedded_release() {
  apt_install qemu-system-arm
  rustup_target "$THUMB"
  cd "$ROOT/embedded"
  run cargo run --release --bin focal-embedded
}

step_embedded_size() {
  apt_install binutils-arm-none-eabi
  rustup_target "$THUMB"
  cd "$ROOT/embedded"
  run cargo build --profile size --bin size_base --bin size_sigmoid_fused
  local dir=target/$THUMB/size base fused kernels
  run arm-none-eabi-size "$dir/size_base" "$dir/size_sigmoid_fused"
  base=$(arm-none-eabi-size -A "$dir/size_base" | awk '$1 == ".text" { print $2 }')
  fused=$(arm-none-eabi-size -A "$dir/size_sigmoid_fused" | awk '$1 == ".text" { print $2 }')
  kernels=$((fused - base))
  echo "largest functions of size_sigmoid_fused (bytes):"
  arm-none-eabi-nm --size-sort -S -C "$dir/size_sigmoid_fused" | tail -8 |
    while read -r _ size _ name; do printf '  %8d  %s\n' "$((16#$size))" "$name"; done
  echo "sigmoid fused loss + gradient (integer and general gamma), .text alone: $kernels bytes (budget $SIZE_BUDGET)"
  if [ "$kernels" -gt "$SIZE_BUDGET" ]; then
    echo "over the budget of $SIZE_BUDGET bytes" >&2
    return 1
  fi
}

step_wasm() {
  rustup_target "$WASI" "$WASM"
  command -v node >/dev/null || apt_install nodejs
  run node --version
  local wasi=(
    "CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS=-C target-feature=+simd128"
    "CARGO_TARGET_WASM32_WASIP1_RUNNER=node --no-warnings $ROOT/scripts/wasi-run.mjs"
  )
  # Portable is wide's simd128 code there, and the only vector backend.
  run env "${wasi[@]}" FOCAL_EXPECT_BACKEND=portable \
    cargo test --target "$WASI" --test dispatch -- --nocapture
  # Every test target (--tests: the library's unit tests and tests/*.rs, the fuzz
  # regressions and corpus replay included; they read fuzz/corpus/ through the
  # runner's preopened "/").
  run env "${wasi[@]}" FOCAL_EXPECT_BACKEND=portable FOCAL_SWEEP=quick \
    cargo test --target "$WASI" --tests
  run env "${wasi[@]}" cargo test --target "$WASI" --doc
  # wasm32-unknown-unknown: the library (std and no_std), with and without simd128,
  # type-checked for that target (its cfgs: no OS, no threads). The wasm32 code
  # itself is generated and run above (wasip1, simd128) and, without simd128, the
  # scalar kernels that Portable falls back to are built for thumbv7em (step
  # nostd): a full build here was 75 s of CI generating the same code again.
  run cargo check --target "$WASM" --no-default-features
  run env CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128" \
    cargo check --target "$WASM"
}

step_capi() {
  apt_install gcc g++ libc6-dev
  run bash "$ROOT/scripts/capi-check.sh"
}

[ "$#" -gt 0 ] || { sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 2; }
for s in "$@"; do
  case "$s" in
    embedded | embedded-release | embedded-size | wasm | capi) ;;
    *) echo "unknown step '$s' (embedded, embedded-release, embedded-size, wasm, capi)" >&2; exit 2 ;;
  esac
done
for s in "$@"; do
  (set -euo pipefail; cd "$ROOT"; "step_${s//-/_}")
done
