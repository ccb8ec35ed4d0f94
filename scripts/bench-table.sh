#!/usr/bin/env bash
# Runs `cargo bench -p focal-benches --bench sigmoid` and writes its results as the
# README's speed table (between <!-- speed-table:start --> and <!-- speed-table:end -->)
# and to target/speed-table.md. Every number in the table comes from this one run: the
# criterion output goes to a fresh directory (target/speed-table-criterion), so the
# ratios to the naive port and to the stream floor compare measurements of the same run.
# With --softmax, the same for `cargo bench -p focal-benches --bench softmax`: results in
# target/speed-table-criterion-softmax, the table (written by scripts/softmax-table.py)
# between <!-- softmax-speed-table:start --> and <!-- softmax-speed-table:end --> and in
# target/softmax-speed-table.md.
#
#   scripts/bench-table.sh              full run (about ten minutes), then the table
#   scripts/bench-table.sh FILTER...    only the benches matching criterion's filter
#   scripts/bench-table.sh --no-run     rebuild the table from the last run's results
#   scripts/bench-table.sh --softmax [--no-run | FILTER...]
#                                       the softmax table (a full run takes a few minutes)
#   SPEED_TABLE_SECTION=NAME scripts/bench-table.sh ...
#                                       the sigmoid table into README's section NAME
#                                       (<!-- NAME:start -->): a second machine's table
#   SOFTMAX_TABLE_SECTION=NAME scripts/bench-table.sh --softmax ...
#                                       the same for the softmax table
#
# Needs bash, cargo and python3 (standard library only).
set -euo pipefail

cd "$(dirname "$0")/.."

bench=sigmoid
if [[ "${1:-}" == "--softmax" ]]; then
    bench=softmax
    shift
fi

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
results="$target_dir/speed-table-criterion"
[[ "$bench" == softmax ]] && results="$results-softmax"

if [[ "${1:-}" == "--no-run" ]]; then
    if [[ ! -f "$results/run-info.json" ]]; then
        echo "no results in $results: run scripts/bench-table.sh without --no-run first" >&2
        exit 1
    fi
else
    rm -rf "$results"
    mkdir -p "$results"
    started=$(date -u '+%Y-%m-%d %H:%M UTC')
    load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
    CRITERION_HOME="$results" cargo bench -p focal-benches --bench "$bench" -- "$@"
    load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
    STARTED="$started" LOAD_BEFORE="$load_before" LOAD_AFTER="$load_after" \
        RUSTC="$(rustc --version)" python3 - "$results/run-info.json" <<'EOF'
import json, os, sys
cpu, cores, flags = "unknown CPU", 0, set()
try:
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name":
                cpu = value
                cores += 1
            elif key == "flags" and not flags:
                flags = set(value.split())
except OSError:
    pass
simd = [f for f in ("avx512f", "avx2", "fma") if f in flags]
info = {
    "date": os.environ["STARTED"],
    "cpu": cpu,
    "cores": cores,
    "simd": simd,
    "rustc": os.environ["RUSTC"],
    "load_before": os.environ["LOAD_BEFORE"],
    "load_after": os.environ["LOAD_AFTER"],
}
with open(sys.argv[1], "w") as f:
    json.dump(info, f, indent=1)
EOF
fi

if [[ "$bench" == softmax ]]; then
    exec python3 scripts/softmax-table.py "$results" "$target_dir/softmax-speed-table.md" README.md
fi

python3 - "$results" "$target_dir/speed-table.md" README.md <<'EOF'
import json, os, re, sys

sys.path.insert(0, "scripts")
from readme_section import replace_section

results, table_path, readme_path = sys.argv[1:4]
OPS = ["fused_mean", "mean", "elementwise"]
BACKENDS = ["avx512", "avx2", "portable", "scalar", "naive"]
OP_GROUP = re.compile(r"^(elementwise|mean|fused_mean)/g([0-9.]+)/n([0-9]+)$")
STREAM_GROUP = re.compile(r"^stream/n([0-9]+)$")

with open(os.path.join(results, "run-info.json")) as f:
    info = json.load(f)

# (op, gamma, n, function) -> median ns per call; stream[n] -> median ns per call.
times, stream = {}, {}
for root, _dirs, files in os.walk(results):
    if os.path.basename(root) != "new" or "benchmark.json" not in files:
        continue
    with open(os.path.join(root, "benchmark.json")) as f:
        bench = json.load(f)
    with open(os.path.join(root, "estimates.json")) as f:
        ns = json.load(f)["median"]["point_estimate"]
    group, function = bench["group_id"], bench["function_id"]
    if m := OP_GROUP.match(group):
        times[(m[1], m[2], int(m[3]), function)] = ns
    elif m := STREAM_GROUP.match(group):
        stream[int(m[1])] = ns
if not times:
    sys.exit(f"no benchmark results under {results}")

largest = max(n for (_, _, n, _) in times)


def order(key):
    op, gamma, n, function = key
    rank = BACKENDS.index(function) if function in BACKENDS else len(BACKENDS)
    return (OPS.index(op), -float(gamma), n, rank, function)


HEADER = ("| op | gamma | N | backend | ns/element | Melem/s | vs naive | vs stream floor |\n"
          "|:---|---:|---:|:---|---:|---:|---:|---:|\n")


def row(op, gamma, n, function, ns_call, naive, floor):
    per = ns_call / n
    vs_naive = f"{naive / ns_call:.1f}x" if naive else ""
    vs_floor = f"{ns_call / floor:.2f}x" if floor else ""
    return f"| {op} | {gamma} | {n} | {function} | {per:.3f} | {1e3 / per:.1f} | {vs_naive} | {vs_floor} |\n"


def rows(ops):
    out = ""
    for key in sorted((k for k in times if k[0] in ops), key=order):
        op, gamma, n, function = key
        naive = times.get((op, gamma, n, "naive"))
        floor = stream.get(n) if op == "fused_mean" and n == largest else None
        out += row(op, gamma, n, function, times[key], naive, floor)
    return out


simd = ", ".join(info["simd"]) or "no AVX"
text = (
    f"Measured {info['date']} on {info['cpu']} ({info['cores']} logical cores; {simd}), "
    f"{info['rustc']}; load average before/after the run: {info['load_before']} / "
    f"{info['load_after']} (a shared machine: read the ratios, not the last digit). "
    "Median time per call over criterion's samples, divided by N; "
    "Alpha::Balanced(0.25), hard targets, 1% positives, logits of a trained RetinaNet head. "
    "\"vs naive\": the naive textbook port (`examples/naive`) in the same run; "
    f"\"vs stream floor\": fused time over the time to read x and t and write one f32 "
    f"per element with no math, at N = {largest}. "
    "Generated by `scripts/bench-table.sh`; do not edit by hand.\n\n"
)
text += HEADER + rows({"fused_mean"})
for n in sorted(stream):
    ns_call = stream[n]
    text += f"| stream | | {n} | stream | {ns_call / n:.3f} | {1e3 * n / ns_call:.1f} | | 1.00x |\n"
others = rows({"mean", "elementwise"})
if others:
    text += ("\n<details><summary>Mean loss (<code>loss_reduced</code>) and elementwise loss "
             "(<code>loss</code>)</summary>\n\n" + HEADER + others + "\n</details>\n")

replace_section(readme_path, os.environ.get("SPEED_TABLE_SECTION", "speed-table"), text, table_path)
print(f"wrote {table_path} and the speed table of {readme_path}")
EOF
