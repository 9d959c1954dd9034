#!/usr/bin/env bash
# The benchmark cannot rot: a tiny run of every path (no targets checked).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/bench --smoke
test -s target/bench/results.json && test -s target/bench/results.svg
test -s target/bench/scale.json && test -s target/bench/scale.svg
echo "bench smoke: ok"
