#!/usr/bin/env bash
# Runs the whole test suite: unit, router, SDK (trybuild) and integration tests against the
# real binary. Installs the wasm target first if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/wasm-target.sh
unset RUST_BACKTRACE
cargo test --workspace "$@"
