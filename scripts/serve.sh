#!/usr/bin/env bash
# Builds fnhost and the example guests, then serves on 127.0.0.1:7878 (or FNHOST_LISTEN) with
# the embedded store in ./fnhost-data (or FNHOST_DATA_DIR) and every example deployed.
# Extra arguments go to `fnhost serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/wasm-target.sh
guest_dir=target/guests/wasm32-unknown-unknown/guest
"${FNHOST_GUEST_CARGO:-cargo}" build --profile guest --target wasm32-unknown-unknown \
  --target-dir target/guests -p math -p echo -p directory -p burn -p counter -p hello
cargo build --release -p fnhost
exec target/release/fnhost serve --deploy-dir "$guest_dir" "$@"
