#!/usr/bin/env bash
# Runs the whole test suite: unit, router, SDK (trybuild) and integration tests against the
# real binary. Installs the wasm target, python3 and curl (real clients the tests drive), and
# clang and lld (tests/tests/c_guest.rs builds a guest written in C), PostgreSQL (the store's
# tests start private servers; scripts/postgres.sh) nginx (the replica tests put one in
# front; scripts/nginx.sh), and Chromium with playwright-core (the console's browser test;
# scripts/browser.sh) first if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/wasm-target.sh
source scripts/test-deps.sh
source scripts/c-toolchain.sh
source scripts/postgres.sh
source scripts/nginx.sh
source scripts/browser.sh
unset RUST_BACKTRACE
cargo test --workspace "$@"
