#!/usr/bin/env bash
# Formatting, lints, rustdoc and the feature matrix a user can pick. clippy::all and
# clippy::pedantic are errors here (each allowed finding carries its reason in the code), and
# so is every rustdoc warning.
set -euo pipefail
source "$(dirname "$0")/../lib/services.sh"
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all -- --check || die "cargo fmt: run 'cargo fmt --all'"
else
    log "rustfmt is not installed: skipping the format check"
fi
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings \
        || die "clippy found errors or pedantic warnings (fix them, or allow one with a reason)"
    echo "clippy: no errors, no pedantic warnings"
else
    log "clippy is not installed: skipping lints"
fi

log "rustdoc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features --quiet \
    -p cqrs-core -p cqrs-derive -p cqrs-rabbit || die "rustdoc found broken links or other warnings"

# The builds a user can pick, each on its own: a mistaken #[cfg] survives while every build
# turns on every feature. Checked with warnings denied, so that dead code behind a feature
# shows too.
log "feature matrix"
matrix=(
    "cqrs-core --no-default-features"
    "cqrs-core --no-default-features --features sqlite"
    "cqrs-core --no-default-features --features postgres"
    "cqrs-core --features sqlite"
    "cqrs-core --features sqlite,events"
    "cqrs-rabbit --no-default-features"
    "cqrs-rabbit --no-default-features --features sqlite"
    "cqrs-rabbit --no-default-features --features postgres"
    "cqrs-rabbit --no-default-features --features sqlite,events"
    "cqrs-rabbit --features sqlite"
)
for entry in "${matrix[@]}"; do
    read -r crate flags <<<"$entry"
    # shellcheck disable=SC2086
    RUSTFLAGS="-D warnings" cargo check --quiet -p "$crate" $flags --target-dir target/matrix \
        || die "cargo check -p $crate $flags failed"
    echo "feature matrix: $crate $flags: ok"
done
