#!/usr/bin/env bash
# The whole test suite, on a fresh machine or an old one: installs what the
# tests need when it is missing, then runs formatting, lints and every test.
#
#   scripts/test.sh            # everything
#   scripts/test.sh semantics  # only tests whose name contains "semantics"
#
# Builds go to $CARGO_TARGET_DIR, by default ~/.cache/sluice-target, so a later
# run (or CI on the same machine) reuses them.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

need() { command -v "$1" >/dev/null 2>&1; }

# --- what the tests need -----------------------------------------------------
# Rust (the machine's toolchain, with rustfmt and clippy). TCP peers and HTTP
# clients are in the test binary itself.
need cargo || { echo "cargo is missing: install Rust from https://rustup.rs" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
# A real Kafka-protocol broker (tansu) for the Kafka tests; they start it
# themselves on 127.0.0.1 and stop it at the end.
SLUICE_TANSU="$(scripts/install-broker.sh)"
export SLUICE_TANSU
# Debian packages: a real PostgreSQL server for the PostgreSQL sink tests (they
# start their own cluster on 127.0.0.1 and stop it), and Chromium for the
# dashboard's browser test.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
missing=()
[ -n "$(pg_bin)" ] || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== apt-get install ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
SLUICE_PG_BIN="$(pg_bin)"
export SLUICE_PG_BIN
export SLUICE_CHROMIUM=/usr/bin/chromium
# playwright-core (from the npm registry, pinned by tests/browser/package-lock.json)
# drives that Chromium; it downloads no browser of its own.
need node || { echo "node is missing: install Node.js (Debian: apt-get install nodejs npm)" >&2; exit 1; }
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

# --- checks --------------------------------------------------------------------
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked -- "$@"
