#!/usr/bin/env bash
# Builds every example guest in functions/ (each directory with a Cargo.toml is one) for
# wasm32-unknown-unknown with the `guest` profile, into target/guests/wasm32-unknown-unknown/guest.
# tests/build.rs derives the same list the same way; nothing else names the examples.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/wasm-target.sh
packages=()
for manifest in functions/*/Cargo.toml; do
  packages+=(-p "$(basename "$(dirname "$manifest")")")
done
"${FNHOST_GUEST_CARGO:-cargo}" build --profile guest --target wasm32-unknown-unknown \
  --target-dir target/guests "${packages[@]}"
