#!/usr/bin/env bash
# The first user's path (README, "Your first service"): a fresh crate outside the workspace,
# made of the README's Cargo.toml lines and src/main.rs exactly as a user copies them, with the
# framework's crates patched to this checkout, built (no warning allowed, ours or the crate's)
# and run against the suite's RabbitMQ. It must print the replica with the exact price.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
: "${AMQP_ADDR:?run from scripts/test, which starts RabbitMQ}"
DIR=$ROOT/target/first-service/shop
rm -rf "$DIR/src" "$DIR/Cargo.toml" "$DIR"/shop.sqlite3*
mkdir -p "$DIR/src"

# every block right after a `<!-- first-service: PATH -->` line is written to PATH
python3 - "$ROOT/README.md" "$DIR" <<'PY'
import pathlib, re, sys
readme, out = pathlib.Path(sys.argv[1]).read_text(), pathlib.Path(sys.argv[2])
blocks = re.findall(r"<!-- first-service: (\S+) -->\n```[^\n]*\n(.*?)\n```", readme, re.S)
if {path for path, _ in blocks} != {"Cargo.toml", "src/main.rs"}:
    sys.exit(f"README: expected the Cargo.toml and src/main.rs snippets, found {[p for p, _ in blocks]}")
for path, text in blocks:
    (out / path).write_text(text + "\n")
PY
cat >> "$DIR/Cargo.toml" <<TOML

# added by the test: the unpublished crates from this checkout, and a workspace of its own
[patch.crates-io]
cqrs-core = { path = "$ROOT/cqrs-core" }
cqrs-derive = { path = "$ROOT/cqrs-derive" }
cqrs-rabbit = { path = "$ROOT/cqrs-rabbit" }

[workspace]
TOML
# the versions the workspace is tested with (cargo drops what this crate does not use)
cp "$ROOT/Cargo.lock" "$DIR/Cargo.lock"

export CARGO_TARGET_DIR=$ROOT/target/first-service/target
log=$(mktemp)
(cd "$DIR" && cargo build) >"$log" 2>&1 || {
    cat "$log"; echo "FAIL: the README's first service does not build" >&2; exit 1; }
if grep -qE "^warning" "$log"; then
    cat "$log"; echo "FAIL: the README's first service builds with warnings" >&2; exit 1
fi

out=$(cd "$DIR" && DATABASE_URL=$DIR/shop.sqlite3 CQRS_BROKER_URL=$AMQP_ADDR \
    CQRS_QUEUE=first_service timeout 120 "$CARGO_TARGET_DIR/debug/shop" 2>&1) || {
    echo "$out"; echo "FAIL: the README's first service exited non-zero" >&2; exit 1; }
echo "$out" | grep -q 'replica: 1 "Dune Messiah" 1234567.89 (revision 1' || {
    echo "$out"; echo "FAIL: the replica was not printed with its exact price" >&2; exit 1; }
echo "$out" | grep -E "^published"
echo "first-service suite: ok (built outside the workspace from the README, ran against RabbitMQ)"
rm -f "$log"
