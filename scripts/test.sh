#!/usr/bin/env bash
# Runs the whole test suite: unit, router, SDK (trybuild) and integration tests against the
# real binary. Installs the wasm target, and python3 and curl (real clients the tests drive),
# first if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/wasm-target.sh
source scripts/test-deps.sh
unset RUST_BACKTRACE
cargo test --workspace "$@"
