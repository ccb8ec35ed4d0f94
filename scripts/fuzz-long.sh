#!/usr/bin/env bash
# Long fuzzing for users and release checks: every target (or the ones named) for
# FUZZ_SECONDS each (default 600 = 10 minutes) on FUZZ_JOBS parallel processes
# (default: all cores), continuing past findings (libFuzzer -fork, -ignore_crashes),
# then a summary per target: executions, exec/s, coverage (edges, features), corpus
# size and findings, each finding with its reproducer command and its case as Rust.
#
# Usage: scripts/fuzz-long.sh [TARGET...]
# Env:   FUZZ_SECONDS (600), FUZZ_JOBS (nproc), FUZZ_TIMEOUT (10 s per input)
#        FUZZ_COVERAGE=1  also writes a line-coverage report per target
#                         (fuzz/coverage/<target>/, needs llvm-tools-preview)
#
# The corpus grows in fuzz/corpus-run/<target> (git-ignored) and is kept between runs,
# so a second run continues where the first stopped; fuzz/corpus/ (the committed
# seeds) is only read. Exit status 1 if anything was found.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

FUZZ_SECONDS=${FUZZ_SECONDS:-600}
FUZZ_JOBS=${FUZZ_JOBS:-$(nproc)}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

ALL_TARGETS=(sigmoid_differential softmax_differential api_misuse math_functions)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

cargo +nightly fuzz build
HOST=$(rustc +nightly -vV | sed -n "s/^host: //p")

artifacts_of() {
  find "artifacts/$1" -maxdepth 1 -type f 2>/dev/null | sort || true
}

ROWS=()
FOUND=()
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus-run/$t"
  before=$(artifacts_of "$t")
  log="fuzz-long-$t.log"
  echo "=== $t: ${FUZZ_SECONDS}s on $FUZZ_JOBS process(es), log fuzz/$log"
  start=$SECONDS
  set +e
  cargo +nightly fuzz run "$t" "corpus-run/$t" "corpus/$t" -- \
    -fork="$FUZZ_JOBS" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" >"$log" 2>&1
  set -e
  secs=$((SECONDS - start))
  # Fork mode's status lines: "#EXECS: cov: C ft: F corp: N exec/s: R oom/timeout/crash: a/b/c ..."
  last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
  execs=$(sed -nE 's/^#([0-9]+):.*/\1/p' <<<"$last")
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(find "corpus-run/$t" -type f | wc -l)
  crashes=$(sed -nE 's#.*oom/timeout/crash: ([0-9]+/[0-9]+/[0-9]+).*#\1#p' <<<"$last")
  new=()
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    grep -qxF "$f" <<<"$before" || new+=("$f")
  done <<<"$(artifacts_of "$t")"
  # libFuzzer's own clock (excludes the build and cargo-fuzz's post-run formatting).
  fsecs=$(sed -nE 's/.* time: ([0-9]+)s.*/\1/p' <<<"$last")
  fsecs=${fsecs:-$secs}
  rate=$(( ${execs:-0} / (fsecs > 0 ? fsecs : 1) ))
  ROWS+=("$(printf '| %-21s | %6ss | %12s | %8s | %6s | %7s | %7s | %14s | %8s |' \
    "$t" "$fsecs" "${execs:--}" "$rate" "${cov:--}" "${ft:--}" "$corp" "${crashes:-0/0/0}" "${#new[@]}")")
  for f in "${new[@]}"; do FOUND+=("$t $f"); done
  if [ "${FUZZ_COVERAGE:-0}" = 1 ]; then
    rustup component list --toolchain nightly --installed | grep -q '^llvm-tools' ||
      rustup component add --toolchain nightly llvm-tools-preview
    cargo +nightly fuzz coverage "$t" "corpus-run/$t" "corpus/$t" >/dev/null 2>&1 &&
      echo "    line coverage data: fuzz/coverage/$t/coverage.profdata" ||
      echo "    (cargo fuzz coverage failed for $t)"
  fi
done

echo
echo "=== fuzz-long summary: ${FUZZ_SECONDS}s per target, $FUZZ_JOBS process(es)"
echo
echo "| target                |   time |   executions |   exec/s |    cov |      ft |  corpus | oom/tmout/crash | findings |"
echo "|-----------------------|--------|--------------|----------|--------|---------|---------|-----------------|----------|"
for r in "${ROWS[@]}"; do echo "$r"; done
echo
echo "cov = code edges reached, ft = libFuzzer features; corpus = fuzz/corpus-run/<target>."
if [ "${#FOUND[@]}" -eq 0 ]; then
  echo "No findings."
  exit 0
fi
echo
echo "=== ${#FOUND[@]} finding(s):"
for tf in "${FOUND[@]}"; do
  t=${tf%% *}
  f=${tf#* }
  echo
  echo "--- $t: fuzz/$f"
  echo "    reproduce: (cd fuzz && cargo +nightly fuzz run $t $f)"
  echo "    minimize:  (cd fuzz && cargo +nightly fuzz tmin $t $f)"
  # The oracle's verdict (first lines), then the case as Rust.
  "target/$HOST/release/$t" "$f" 2>&1 | grep -E '^\[|^[A-Za-z]+::|got |want ' | head -8 | sed 's/^/    /' || true
  cargo +nightly fuzz fmt "$t" "$f" 2>&1 | sed 's/^/    /' || true
done
exit 1
