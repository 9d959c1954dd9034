#!/usr/bin/env bash
# scripts/demo, non-interactive: it must end with the replica equal to the master, and it
# must exit non-zero when replication cannot happen.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp)
if ! scripts/demo >"$out" 2>&1; then
    cat "$out"; echo "FAIL: scripts/demo exited non-zero" >&2; exit 1
fi
grep -q "the replica equals the master" "$out" || { cat "$out"; echo "FAIL: no final equality line" >&2; exit 1; }
for line in "reads come from the replica" "read-your-writes: the booking is in the replica" "the demo steps passed"; do
    grep -q "$line" "$out" || { cat "$out"; echo "FAIL: the parking scenario did not show: $line" >&2; exit 1; }
done
grep -E "replicated in|in the replica after|\\$ " "$out" | head -30
if DEMO_NO_CONSUMER=1 DEMO_TIMEOUT_SECS=3 scripts/demo >"$out" 2>&1; then
    cat "$out"; echo "FAIL: scripts/demo succeeded without a consumer" >&2; exit 1
fi
grep -q "the replica still differs from the master" "$out" || { cat "$out"; exit 1; }
echo "demo suite: ok (passes when replicating, fails when not)"
rm -f "$out"
