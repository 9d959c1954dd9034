#!/usr/bin/env bash
# The parking page in a real headless browser (Debian's chromium, installed when missing): after
# a slot is created, the page, as the browser renders it, lists the slot from the read model.
# A screenshot is kept at target/parking-page.png for a person to look at.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
source scripts/lib/services.sh
: "${AMQP_ADDR:?run from scripts/test, which starts RabbitMQ}"
apt_install chromium
cargo build -q -p cqrs-examples --bin parking

work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        # `parking` is a function: $! is the subshell running it, the service is its child
        pkill -TERM -P "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
port=$(free_port)
suffix=browser_$$
parking() {
    CQRS_BROKER_URL=$AMQP_ADDR CQRS_EXCHANGE=parking_$suffix RUST_LOG=warn "$ROOT/target/debug/parking" \
        --primary-url "$work/primary.sqlite3" --replica-url "$work/replica.sqlite3" \
        --queue-name "parking_$suffix" "$@"
}
parking migrate
parking serve --port "$port" >"$work/serve.log" 2>&1 &
pid=$!
python3 - "$port" <<'PY' || { cat "$work/serve.log"; echo "FAIL: the parking service did not start" >&2; exit 1; }
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1)
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY

name="Slot seen by a browser $$"
uuid=$(parking create-parking-slot --name "$name" | python3 -c 'import json, sys; print(json.load(sys.stdin)["uuid"])')
# the page renders the read model: wait for the consumer, as a person reloading would
chromium_run() {
    timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$work/profile" "$@" 2>>"$work/chromium.log"
}
for _ in $(seq 1 50); do
    chromium_run --dump-dom "http://127.0.0.1:$port/" >"$work/dom.html" || true
    grep -q "$uuid" "$work/dom.html" && break
    sleep 0.2
done
grep -q "$name" "$work/dom.html" || {
    cat "$work/dom.html" "$work/chromium.log" >&2; echo "FAIL: the rendered page does not list the new slot" >&2; exit 1; }
python3 - "$work/dom.html" "$uuid" <<'PY' || { echo "FAIL: the slot's row is not as expected" >&2; exit 1; }
import re, sys
dom, uuid = open(sys.argv[1]).read(), sys.argv[2]
row = next(r for r in re.findall(r"<tr class=\"slot\">(.*?)</tr>", dom, re.S) if uuid in r)
assert '<td class="status">available</td>' in row, row
assert 'action="/slots/' + uuid + '/book"' in row, row
PY
chromium_run --screenshot="$ROOT/target/parking-page.png" --window-size=1200,700 "http://127.0.0.1:$port/" >/dev/null
[ -s "$ROOT/target/parking-page.png" ] || { cat "$work/chromium.log" >&2; echo "FAIL: no screenshot" >&2; exit 1; }
echo "parking browser suite: ok (chromium rendered the slot from the read model; screenshot in target/parking-page.png)"
