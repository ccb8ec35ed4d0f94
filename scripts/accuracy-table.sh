#!/usr/bin/env bash
# Runs the accuracy sweep on every backend this CPU has and writes the condensed
# table into README.md (between the accuracy-table markers).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --test accuracy -- --nocapture >/dev/null
python3 scripts/accuracy-table.py target/accuracy-tables.md README.md
