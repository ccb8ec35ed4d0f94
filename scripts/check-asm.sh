#!/usr/bin/env bash
# Proves that the generic kernels are inlined into the `#[target_feature]` entry points
# (DESIGN.md §4: only the entry functions carry #[target_feature]; everything below them
# is #[inline(always)], so each ISA gets its own copy of the kernel).
#
# Builds the lib in release with `--emit asm` into its own target dir (so it never
# blocks or invalidates anyone's `target/`), then for the AVX-512 and AVX2 entry points
# (every function of `arch::x86_64::{avx512_entry,avx2_entry}`: focal, unary, scan,
# softmax, ...) checks:
#   - AVX-512: zmm registers, and vfmadd in `focal`, `unary` and `softmax`;
#   - AVX2:    ymm registers, the same vfmadd, and nothing AVX-512 (no
#              zmm, no mask registers, no ymm16-31: the entry must run on AVX2 CPUs);
#   - a stack frame realigned to 64 bytes (`andq $-64, %rsp`, from arch::align_frame);
#   - no `call` / tail `jmp` to another function, except memcpy-like and panic
#     helpers and the softmax's cold scalar f64 row path (`exact_row::exact_rows`),
#     which are reported as warnings (a call to a kernel or math function means
#     the kernel was not inlined and runs without the entry's features).
# It also prints, per entry, the loops (backward branches) with their instruction,
# vfmadd, division and stack-access counts, so a regression in the hot loop shows.
# The portable and scalar entries are reported for information only.
#
# Usage: bash scripts/check-asm.sh      (exit 0 = all checks passed)
# Env:   CHECK_ASM_TARGET_DIR (default target/check-asm), CHECK_ASM_VERBOSE=1 prints
#        every loop instead of a summary.
set -euo pipefail
cd "$(dirname "$0")/.."

TRIPLE=x86_64-unknown-linux-gnu
TARGET_DIR=${CHECK_ASM_TARGET_DIR:-target/check-asm}
VERBOSE=${CHECK_ASM_VERBOSE:-0}
export CARGO_TERM_COLOR=never

echo "check-asm: building focal (release, --emit asm) into $TARGET_DIR"
# codegen-units and LTO are left at the release defaults: the point is what a normal
# release build gives. debuginfo=0 keeps the .s readable.
cargo rustc --release --lib --target "$TRIPLE" --target-dir "$TARGET_DIR" \
  -- --emit asm -C debuginfo=0

# Newest .s of the crate (cargo keeps an older one when nothing changed).
ASM=$(ls -t "$TARGET_DIR/$TRIPLE"/release/deps/focal-*.s 2>/dev/null | head -n 1 || true)
if [ -z "$ASM" ] || [ ! -s "$ASM" ]; then
  echo "check-asm: FAIL: no assembly file found under $TARGET_DIR/$TRIPLE/release/deps" >&2
  exit 1
fi
echo "check-asm: reading $ASM ($(wc -l <"$ASM") lines)"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Data symbols (statics, tables): a register loaded with one of their addresses holds
# no function, so a later indirect jump through it is a jump table, not a call.
grep -E '^[[:space:]]*\.type[[:space:]]+[^,]+,@object' "$ASM" |
  sed -E 's/^[[:space:]]*\.type[[:space:]]+//; s/,@object.*//' >"$WORK/objects" || true

# Writes the body of the function whose symbol matches the (mangled) pattern $1 to
# stdout: from its label to its .Lfunc_end label. Legacy and v0 mangling both spell
# identifiers as <len><name>, e.g. `12avx512_entry5focal`.
extract() {
  awk -v pat="$1" '
    !infn && /^[A-Za-z0-9_.$]+:$/ && $0 ~ pat { infn = 1; name = $0; print; next }
    infn && /^\.Lfunc_end[0-9]+:/ { exit }
    infn { print }
  ' "$ASM"
}

# Analyses one function body (file $1). Prints one KEY=VALUE line with totals, then a
# LOOP line per loop and a CALL line per call out of the function.
#
# Loops are found on the control-flow graph, not by eye: basic blocks (split at labels
# and after branches), edges (fall-through and `.L` branch targets; jump tables only
# lead from the gamma/target-kind dispatch into the kernels, so they close no cycle and
# are left out), then strongly connected components (iterative Tarjan). Each
# component with a cycle is one outermost loop, with its inner loops folded in; for
# the kernels that is the vector loop of one (gamma kind, target kind, mode)
# instance.
analyse() {
  awk -v objects="$WORK/objects" '
    function is_insn(l) { return l ~ /^[ \t]+[a-z]/ && l !~ /^[ \t]+\./ }
    function new_block() { nb++; ins[nb] = 0; fm[nb] = 0; dv[nb] = 0; st[nb] = 0; vc[nb] = 0; term[nb] = 0 }
    BEGIN { nb = 0; new_block(); while ((getline o < objects) > 0) isobj[o] = 1 }
    /^\.?[A-Za-z0-9_$]+:/ {
      lab = $0; sub(/:.*/, "", lab)
      if (ins[nb] > 0) new_block()
      labblock[lab] = nb
      next
    }
    {
      if (!is_insn($0)) next
      if (term[nb]) new_block()
      insn++; ins[nb]++
      m = $1
      if ($0 ~ /%zmm/) zmm++
      if ($0 ~ /%ymm/) ymm++
      if ($0 ~ /%[yz]mm/) vc[nb]++
      if ($0 ~ /%[xyz]mm(1[6-9]|2[0-9]|3[01])([^0-9]|$)/) hi++
      if ($0 ~ /%k[0-7]([^0-9]|$)/) kreg++
      if (m ~ /^vf(n)?m(add|sub)/) { fma++; fm[nb]++ }
      if (m ~ /^vdivp/) { div++; dv[nb]++ }
      if ($0 ~ /\(%rsp\)/) st[nb]++
      # Remember which function address a register holds, to name `call *%reg`
      # (LLVM hoists the address of a function called repeatedly out of the loop).
      if (m ~ /^(movq|leaq)$/ && $2 ~ /(@GOTPCREL)?\(%rip\),$/ && $3 ~ /^%r/) {
        sym = $2; sub(/(@GOTPCREL)?\(%rip\),$/, "", sym)
        if (sym in isobj) delete held[$3]; else held[$3] = sym
      }
      if (m ~ /^call/ || (m ~ /^jmp/ && $2 !~ /^\.L/)) {
        target = $2
        kind = (m ~ /^jmp/) ? "tail-jmp" : "call"
        if (m ~ /^jmp/) term[nb] = 1
        if (m ~ /^jmp/ && target ~ /^\*/ && target !~ /[A-Za-z_][A-Za-z0-9_$.]*(@|\(%rip\))/) {
          # jmpq *%reg or *N(%rsp): a jump table inside the function (its target may
          # have been spilled), unless the register holds a function address.
          r = substr(target, 2)
          if (!(r in held) || held[r] ~ /^\.L/) next
        }
        if (target ~ /^\*%/ && (substr(target, 2) in held)) target = held[substr(target, 2)] " (via " substr(target, 2) ")"
        sub(/^\*/, "", target); sub(/@GOTPCREL\(%rip\)/, "", target); sub(/@PLT$/, "", target)
        ncall++; call_block[ncall] = nb; call_kind[ncall] = kind; call_target[ncall] = target
        if (target ~ /^(memcpy|memmove|memset|memcmp|bcmp)( |$)/) call_class[ncall] = "warn"
        else if (target ~ /exact_row/) call_class[ncall] = "warn"
        else if (target ~ /panic|unwrap_failed|expect_failed|slice_index|slice_end_index|slice_start_index|index_len_fail|abort/) call_class[ncall] = "warn"
        else call_class[ncall] = "bad"
        if (call_class[ncall] == "warn") warn++; else bad++
        next
      }
      if (m ~ /^j/ && $2 ~ /^\.L/) {
        nref++; ref_from[nref] = nb; ref_to[nref] = $2
        if (m ~ /^jmp/) term[nb] = 1
        else { term[nb] = 1; falls[nb] = 1 }
        next
      }
      if (m ~ /^(ret|ud2|int3|hlt)/) term[nb] = 1
    }
    END {
      printf "insns=%d zmm=%d ymm=%d hiregs=%d kreg=%d fma=%d div=%d bad=%d warn=%d\n",
        insn, zmm, ymm, hi, kreg, fma, div, bad, warn
      # Edges: a block that does not end in an unconditional transfer falls through.
      for (b = 1; b <= nb; b++) {
        ns[b] = 0
        if ((!term[b] || falls[b]) && b < nb) { ns[b]++; sc[b, ns[b]] = b + 1 }
      }
      for (r = 1; r <= nref; r++) {
        if (!(ref_to[r] in labblock)) continue
        b = ref_from[r]; ns[b]++; sc[b, ns[b]] = labblock[ref_to[r]]
      }
      # Tarjan, iteratively (awk has no local arrays for a recursive version).
      counter = 0; sp = 0; ncomp = 0
      for (root = 1; root <= nb; root++) {
        if (root in idx) continue
        top = 1; cv[1] = root; ci[1] = 1
        idx[root] = low[root] = ++counter; stk[++sp] = root; on[root] = 1
        while (top > 0) {
          v = cv[top]
          if (ci[top] <= ns[v]) {
            w = sc[v, ci[top]]; ci[top]++
            if (!(w in idx)) {
              idx[w] = low[w] = ++counter; stk[++sp] = w; on[w] = 1
              top++; cv[top] = w; ci[top] = 1
            } else if (on[w] && idx[w] < low[v]) low[v] = idx[w]
          } else {
            if (low[v] == idx[v]) {
              ncomp++; size = 0
              do { w = stk[sp--]; on[w] = 0; comp[w] = ncomp; size++ } while (w != v)
              csize[ncomp] = size
            }
            top--
            if (top > 0) { u = cv[top]; if (low[v] < low[u]) low[u] = low[v] }
          }
        }
      }
      for (b = 1; b <= nb; b++)
        for (k = 1; k <= ns[b]; k++)
          if (sc[b, k] == b) selfloop[comp[b]] = 1
      for (b = 1; b <= nb; b++) {
        c = comp[b]
        if (csize[c] < 2 && !(c in selfloop)) continue
        if (!(c in lb)) { lb[c] = b; order[++nl] = c }
        li[c] += ins[b]; lf[c] += fm[b]; ld[c] += dv[b]; ls[c] += st[b]; lv[c] += vc[b]; lk[c]++
      }
      for (k = 1; k <= ncall; k++) {
        c = comp[call_block[k]]
        where = (c in lb) ? "in a loop" : "outside loops"
        printf "CALL %s %s %s [%s]\n", call_class[k], call_kind[k], call_target[k], where
      }
      for (j = 1; j <= nl; j++) {
        c = order[j]
        printf "LOOP blocks=%d insns=%d vector=%d fma=%d div=%d stack=%d\n", lk[c], li[c], lv[c], lf[c], ld[c], ls[c]
      }
    }
  ' "$1"
}

FAILS=()
report_fail() {
  FAILS+=("$*")
  echo "    FAIL: $*"
}

demangle() {
  if command -v c++filt >/dev/null; then c++filt; else cat; fi
}

# For a call target defined in the same assembly file, tells what it is: its size
# and the calls it makes in turn (an intrinsic called out of line means it was
# compiled without the entry's target features).
explain_callee() {
  local sym=$1 body="$WORK/callee.s"
  awk -v sym="$sym:" '
    !infn && $0 == sym { infn = 1; print; next }
    infn && /^\.Lfunc_end[0-9]+:/ { exit }
    infn { print }
  ' "$ASM" >"$body"
  [ -s "$body" ] || return 0
  local n
  n=$(analyse "$body" | grep -c '^CALL' || true)
  printf '        %s: %d lines, %d calls of its own, e.g.\n' \
    "$(echo "$sym" | demangle)" "$(wc -l <"$body")" "$n"
  analyse "$body" | awk '/^CALL/ {print $4}' | sort | uniq -c | sort -rn | head -n 4 |
    demangle | sed 's/^/          /'
}

# check <label> <mangled pattern> <isa: avx512|avx2|info> <needs_fma: 0|1>
check() {
  local label=$1 pat=$2 isa=$3 needs_fma=$4
  local body="$WORK/$label.s" stats="$WORK/$label.stats"
  extract "$pat" >"$body"
  if [ ! -s "$body" ]; then
    if [ "$isa" = info ]; then
      echo "  $label: not found (info only)"
    else
      report_fail "$label: no function matching /$pat/ in the assembly (renamed, or not emitted?)"
    fi
    return 0
  fi
  analyse "$body" >"$stats"
  local insns zmm ymm hiregs kreg fma div bad warn
  eval "$(grep -E '^insns=' "$stats")"
  local loops vloops
  loops=$(grep -c '^LOOP' "$stats" || true)
  vloops=$(grep '^LOOP' "$stats" | grep -cv ' fma=0 ' || true)
  printf '  %s: %d instructions, zmm operands %d, ymm operands %d, vfmadd/vfmsub/vfnmadd %d, vdivps %d, loops %d (%d with FMA), calls out: %d bad, %d tolerated\n' \
    "$label" "$insns" "$zmm" "$ymm" "$fma" "$div" "$loops" "$vloops" "$bad" "$warn"
  if grep -q '^CALL' "$stats"; then
    # "bad" and "tolerated" only mean something for the checked entries.
    grep '^CALL' "$stats" | cut -d' ' -f2- | sort | uniq -c | sort -rn | demangle |
      if [ "$isa" = info ]; then sed -E 's/^( *[0-9]+) (bad|warn) /\1 /'; else sed 's/ warn / tolerated /'; fi |
      sed 's/^/      /'
  fi

  # One loop per (gamma kind, target kind) instance of the kernel: its vector body
  # (with any inner loop, e.g. the powers of q for non-integer gamma) per iteration.
  if [ "$vloops" -gt 0 ]; then
    grep '^LOOP' "$stats" | awk '
      { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
      v["fma"] > 0 {
        n++
        if (n == 1 || v["fma"] < min) { min = v["fma"]; minins = v["insns"] }
        if (v["fma"] > max) { max = v["fma"]; maxins = v["insns"]; maxst = v["stack"] }
        tf += v["fma"]; ti += v["insns"]; ts += v["stack"]
      }
      END {
        if (n) printf "      hot loops: %d with FMA; per iteration: vfmadd %d..%d (mean %.1f), instructions %d..%d (mean %.1f), stack accesses mean %.1f (max-FMA loop: %d)\n",
          n, min, max, tf / n, minins, maxins, ti / n, ts / n, maxst
      }'
    if [ "$VERBOSE" = 1 ]; then
      grep '^LOOP' "$stats" | sed 's/^/        /'
    fi
  fi

  [ "$isa" = info ] && return 0
  if [ "$bad" -gt 0 ]; then
    report_fail "$label makes $bad call(s) to other functions: the kernel is not (fully) inlined into the #[target_feature] entry point, and what is called runs without its features"
    local sym
    grep '^CALL bad' "$stats" | awk '{print $4}' | sort -u | while read -r sym; do
      explain_callee "$sym"
    done
  fi
  # `arch::align_frame`: the frame is realigned to a cache line, so that ymm/zmm
  # spill slots never straddle lines (the AVX2 kernels ran 10-20% slower at half
  # of the caller's stack positions without it).
  grep -qE '^[[:space:]]+andq[[:space:]]+\$-64, %rsp' "$body" ||
    report_fail "$label does not realign its stack frame to 64 bytes (arch::align_frame)"
  if [ "$needs_fma" = 1 ] && [ "$fma" -eq 0 ]; then
    report_fail "$label has no vfmadd/vfmsub/vfnmadd: the FMA feature did not reach the kernel"
  fi
  case $isa in
    avx512)
      [ "$zmm" -gt 0 ] || report_fail "$label has no zmm register: it does not run 16 lanes"
      ;;
    avx2)
      [ "$ymm" -gt 0 ] || report_fail "$label has no ymm register: it does not run 8 lanes"
      [ "$zmm" -eq 0 ] || report_fail "$label uses zmm registers ($zmm): it would SIGILL on AVX2-only CPUs"
      [ "$kreg" -eq 0 ] || report_fail "$label uses AVX-512 mask registers ($kreg)"
      [ "$hiregs" -eq 0 ] || report_fail "$label uses xmm/ymm16-31, which only EVEX (AVX-512) encodes ($hiregs)"
      ;;
  esac
  return 0
}

# Every function of the entry modules is checked, so a new entry point is covered the
# day it is added. These must exist, and these must contain FMAs (they evaluate
# exp/log1p polynomials); the others (the target scan) only compare and count.
REQUIRED_ENTRIES="focal scan unary"
FMA_ENTRIES="focal unary softmax"

# Names of the functions in module $1 (e.g. avx512_entry), from the mangled labels.
entries_of() {
  grep -oE "^[A-Za-z0-9_.\$]*[0-9]+$1[0-9]+[a-z_0-9]+(17h[0-9a-f]{16}E)?:" "$ASM" |
    sed -E "s/.*[0-9]+$1[0-9]+([a-z_0-9]+)(17h[0-9a-f]{16}E)?:\$/\1/" | sort -u
}

for isa in avx512 avx2; do
  module=${isa}_entry
  echo "check-asm: ${module} (checked)"
  found=$(entries_of "$module" | tr '\n' ' ')
  for name in $REQUIRED_ENTRIES; do
    [[ " $found " == *" $name "* ]] || report_fail "${module}::$name not found in the assembly (renamed, or not emitted?)"
  done
  for name in $found; do
    fma=0
    [[ " $FMA_ENTRIES " == *" $name "* ]] && fma=1
    check "${module}::$name" "${#module}${module}${#name}${name}" "$isa" "$fma"
  done
done
echo "check-asm: baseline entry points (information only: SSE2 has no FMA, scalar calls libm)"
check portable::entry::focal 'portable5entry5focal' info 0
check portable::entry::unary 'portable5entry5unary' info 0
check scalar::entry::focal 'scalar5entry5focal' info 0

if [ "${#FAILS[@]}" -ne 0 ]; then
  {
    echo "check-asm: FAILED, ${#FAILS[@]} problem(s) (assembly kept in $ASM):"
    printf '  - %s\n' "${FAILS[@]}"
  } >&2
  exit 1
fi
echo "check-asm: OK: the AVX-512 and AVX2 entry points hold the whole kernel (no calls out), with FMA on zmm/ymm registers"
