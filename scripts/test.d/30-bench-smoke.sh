#!/usr/bin/env bash
# The benchmark cannot rot: a tiny run of every path (no targets checked), then the latency
# part repeated, every run kept, and render reading that run's results back.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/bench --smoke
test -s target/bench/results.json && test -s target/bench/results.svg
test -s target/bench/scale.json && test -s target/bench/scale.svg
if scripts/bench --repeats 0 2>/dev/null; then
    echo "bench smoke: --repeats 0 was accepted" >&2; exit 1
fi
scripts/bench --smoke --parts latency --repeats 2
python3 - target/bench/results.json <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for part in ("latency", "read_your_writes"):
    runs = report[part]
    assert runs, f"no {part} measurements"
    for what, every in runs.items():
        assert len(every) == 2, f"{part} {what}: {len(every)} runs, not 2"
        assert all(r["writes"] > 0 for r in every), f"{part} {what}: a run with no writes"
PY
target/debug/cqrs-bench render --out target/bench
grep -q '| run | writes |' target/bench/results.md
echo "bench smoke: ok"
