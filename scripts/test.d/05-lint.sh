#!/usr/bin/env bash
# Formatting and lints: rustfmt and clippy (clippy::all is denied in Cargo.toml's [workspace.lints]).
set -euo pipefail
source "$(dirname "$0")/../lib/services.sh"
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all -- --check || die "cargo fmt: run 'cargo fmt --all'"
else
    log "rustfmt is not installed: skipping the format check"
fi
if cargo clippy --version >/dev/null 2>&1; then
    # clippy::all is an error; pedantic findings are advice, counted rather than printed
    out=$(mktemp)
    if ! cargo clippy --workspace --all-targets --all-features --quiet >"$out" 2>&1; then
        cat "$out"; rm -f "$out"; die "clippy found errors"
    fi
    echo "clippy: no errors, $(grep -c '^warning:' "$out" || true) pedantic warnings"
    rm -f "$out"
else
    log "clippy is not installed: skipping lints"
fi
