#!/usr/bin/env bash
# Fuzzing step of CI (.ci/run calls it): builds every cargo-fuzz target, replays the
# committed corpus (fuzz/corpus/<target>, -runs=0), then fuzzes each target for
# FUZZ_SECONDS (default 30) starting from that corpus, one job (no -fork) per
# target, FUZZ_JOBS (2) targets at a time. Any finding (panic of an
# oracle, AddressSanitizer report, timeout, OOM) fails the step; the log then shows
# the reproducer's path and the case as Rust source (`cargo fuzz fmt`), ready to
# paste into tests/fuzz_regressions.rs.
#
# Usage: scripts/fuzz-ci.sh [TARGET...]      (default: every target)
# Env:   FUZZ_SECONDS  seconds of fuzzing per target (default 30; 0: replay only)
#        FUZZ_TIMEOUT  seconds one input may take before it counts as a hang (10)
#        FUZZ_JOBS     targets fuzzed at the same time (2)
#        FUZZ_SEED     libFuzzer's -seed (default 1; "random" for a new one each run)
#
# The fixed seed makes a CI run repeatable: from a fresh clone (the committed corpus,
# an empty corpus-run/) a run explores the inputs of the previous one, so a green
# run on one machine is green on another that gets as far in its 30 s, and a
# finding reproduces. Exploring new inputs is the job of scripts/fuzz-long.sh
# (random seeds, many minutes), whose findings become regression tests.
#
# Needs nightly (AddressSanitizer); installs cargo-fuzz if it is missing. The grown
# corpus goes to fuzz/corpus-run/ (git-ignored), so fuzz/corpus/ keeps only the
# committed seeds; findings go to fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_JOBS=${FUZZ_JOBS:-2}
FUZZ_SEED=${FUZZ_SEED:-1}
SEED_ARGS=()
[ "$FUZZ_SEED" = random ] || SEED_ARGS=(-seed="$FUZZ_SEED")
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

run() {
  echo "+ $*"
  "$@"
}

if ! rustup toolchain list | grep -q '^nightly'; then
  run rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
  run cargo install cargo-fuzz --locked
fi

ALL_TARGETS=(sigmoid_differential softmax_differential api_misuse math_functions)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

# One build of every target (the runs below then only check freshness).
run cargo +nightly fuzz build

# Artifacts present before a run are not findings of this run.
artifacts_of() {
  find "artifacts/$1" -maxdepth 1 -type f 2>/dev/null | sort || true
}

# report TARGET BEFORE-LIST: prints every new artifact as a reproducer.
report() {
  local t=$1 before=$2 f found=0
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    grep -qxF "$f" <<<"$before" && continue
    found=1
    echo
    echo "=== FINDING of $t: fuzz/$f"
    echo "=== reproduce: (cd fuzz && cargo +nightly fuzz run $t $f)"
    echo "=== minimize:  (cd fuzz && cargo +nightly fuzz tmin $t $f)"
    echo "=== the case as Rust (paste into tests/fuzz_regressions.rs):"
    cargo +nightly fuzz fmt "$t" "$f" 2>&1 || true
    echo "=== bytes (base64): $(base64 -w0 "$f")"
  done <<<"$(artifacts_of "$t")"
  [ "$found" = 1 ]
}

# stat NAME LOG: the value of libFuzzer's final `stat::NAME`.
stat() {
  { grep -m1 "^stat::$1:" "$2" || true; } | awk '{print $2}'
}

# One target: replay, then fuzz. Its output goes to stdout (a log file, below); its
# summary line to $WORK/$t.summary, and "FAILED <why>" there when it fails.
fuzz_target() {
  local t=$1 before log rc execs rate cov
  echo
  echo "=== $t: replay of the committed corpus ($(find "corpus/$t" -type f | wc -l) seeds)"
  before=$(artifacts_of "$t")
  if ! run cargo +nightly fuzz run "$t" "corpus/$t" -- -runs=0 -timeout="$FUZZ_TIMEOUT"; then
    report "$t" "$before" || echo "=== $t: the replay failed without an artifact (build error?)"
    echo "FAILED $t (corpus replay)" >"$WORK/$t.summary"
    return 1
  fi
  [ "$FUZZ_SECONDS" -gt 0 ] || return 0
  echo
  echo "=== $t: fuzzing for ${FUZZ_SECONDS}s"
  mkdir -p "corpus-run/$t"
  log="$WORK/$t.libfuzzer"
  before=$(artifacts_of "$t")
  set +e
  cargo +nightly fuzz run "$t" "corpus-run/$t" "corpus/$t" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" "${SEED_ARGS[@]}" \
    -print_final_stats=1 2>&1 |
    tee "$log" | grep -E --line-buffered -v '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)'
  rc=${PIPESTATUS[0]}
  set -e
  execs=$(stat number_of_executed_units "$log")
  rate=$(stat average_exec_per_sec "$log")
  cov=$({ grep -Eo 'cov: [0-9]+' "$log" || true; } | tail -1 | awk '{print $2}')
  if [ "$rc" -ne 0 ]; then
    report "$t" "$before" || echo "=== $t: the run failed (exit $rc) without an artifact"
    printf 'FAILED %-22s FINDING  execs %-10s exec/s %-7s cov %s\n' "$t" "${execs:--}" "${rate:--}" "${cov:--}" >"$WORK/$t.summary"
    return 1
  fi
  printf '%-22s ok       execs %-10s exec/s %-7s cov %s\n' "$t" "${execs:--}" "${rate:--}" "${cov:--}" >"$WORK/$t.summary"
}

# FUZZ_JOBS targets at a time (each one libFuzzer job on one core: two on a
# two-core machine halve the wall time and keep each target's fuzzing time); the
# logs are printed whole, in target order, once every target has finished.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for t in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$FUZZ_JOBS" ]; do wait -n || true; done
  fuzz_target "$t" >"$WORK/$t.out" 2>&1 &
done
wait || true
FAILED=()
SUMMARY=()
for t in "${TARGETS[@]}"; do
  cat "$WORK/$t.out"
  if [ ! -f "$WORK/$t.summary" ]; then
    FAILED+=("$t (no result)")
  elif grep -q '^FAILED' "$WORK/$t.summary"; then
    FAILED+=("$t")
    SUMMARY+=("$(sed 's/^FAILED //' "$WORK/$t.summary")")
  else
    SUMMARY+=("$(cat "$WORK/$t.summary")")
  fi
done

echo
echo "=== fuzz summary (${FUZZ_SECONDS}s per target)"
for s in "${SUMMARY[@]}"; do echo "  $s"; done
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "=== FAILED: ${FAILED[*]}"
  exit 1
fi
echo "=== no findings"
