#!/usr/bin/env python3
"""Condenses target/accuracy-tables.md (written by `cargo test --test accuracy`) into
the README's accuracy table: max ULP per (function, targets, gamma) and backend, and
writes it into README.md between the accuracy-table markers. No numbers are typed by
hand: run `bash scripts/accuracy-table.sh` to regenerate."""
import re
import sys
from collections import OrderedDict

from readme_section import replace_section

src = sys.argv[1] if len(sys.argv) > 1 else "target/accuracy-tables.md"
readme = sys.argv[2] if len(sys.argv) > 2 else "README.md"
text = open(src).read()

backends = []
rows = OrderedDict()      # (fn, targets, gamma) -> {backend: max}
blocks = OrderedDict()    # fn -> {backend: max}
sums = {}                 # backend -> ulp vs own sum
bad = {}                  # backend -> non-finite + flushed
backend = None
for line in text.splitlines():
    m = re.match(r"## Backend `(\w+)`", line)
    if m:
        backend = m.group(1)
        backends.append(backend)
        bad[backend] = 0
        continue
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if backend is None or len(cells) < 6:
        continue
    if cells[0] in ("loss", "grad") and len(cells) == 9:
        key = (cells[0], cells[1], cells[2])
        rows.setdefault(key, {})[backend] = float(cells[4])
        bad[backend] += int(cells[6]) + int(cells[7])
    elif cells[0] in ("sigmoid", "softplus", "log_sigmoid") and len(cells) == 7:
        blocks.setdefault(cells[0], {})[backend] = float(cells[2])
        bad[backend] += int(cells[4]) + int(cells[5])
    elif re.fullmatch(r"\d+", cells[0]) and len(cells) == 6:
        sums[backend] = (cells[0], float(cells[3]))

header = next((l for l in text.splitlines() if l.startswith("Produced by")), "")
out = []
out.append("Max error in ULP (soft-target gradients: ULP of the cancelling terms' size), "
           "per backend, over the whole sweep. " + header.replace("Produced by", "Condensed from the tables produced by"))
out.append("")
out.append("| function | targets | gamma | " + " | ".join(backends) + " | bar |")
out.append("|---|---|---:|" + "---:|" * len(backends) + "---:|")
for (fn, tg, g), per in rows.items():
    bar = 8 if float(g) <= 3 else 16
    out.append(f"| {fn} | {tg} | {g} | " + " | ".join(f"{per.get(b, float('nan')):.2f}" for b in backends) + f" | {bar} |")
for fn, per in blocks.items():
    out.append(f"| {fn} | | | " + " | ".join(f"{per.get(b, float('nan')):.2f}" for b in backends) + " | |")
out.append("")
out.append("Non-finite outputs for finite input, and normal results flushed to 0: " +
           ", ".join(f"{b} {bad[b]}" for b in backends) + ".")
if sums:
    n = next(iter(sums.values()))[0]
    out.append(f"`loss_reduced(Sum)` of {n} elements vs the exact sum of the elementwise losses: " +
               ", ".join(f"{b} {sums[b][1]:.3f} ULP" for b in backends if b in sums) + ".")
table = "\n".join(out)

replace_section(readme, "accuracy-table", table)
print(table)
