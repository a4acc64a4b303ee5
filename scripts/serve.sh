#!/usr/bin/env bash
# Builds fnhost and the example guests, then serves on 127.0.0.1:7878 (or FNHOST_LISTEN) with
# the embedded store in ./fnhost-data (or FNHOST_DATA_DIR) and every example deployed.
# Extra arguments go to `fnhost serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
guest_dir=target/guests/wasm32-unknown-unknown/guest
scripts/build-guests.sh
cargo build --release -p fnhost-cli
exec target/release/fnhost serve --deploy-dir "$guest_dir" "$@"
