#!/usr/bin/env bash
# Makes sure example guests can be built for wasm32-unknown-unknown; meant to be sourced.
# Tries `rustup target add`; if that fails, sets up the Debian-based toolchain from
# ../shared/toolchain/install-wasm-toolchain.sh and exports FNHOST_GUEST_CARGO to its wrapper.
if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  :
elif timeout 300 rustup target add wasm32-unknown-unknown; then
  :
else
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  installer="$here/../shared/toolchain/install-wasm-toolchain.sh"
  if [ ! -x "$installer" ] && [ ! -f "$installer" ]; then
    echo "cannot install the wasm32-unknown-unknown target: rustup failed and $installer is missing" >&2
    return 1 2>/dev/null || exit 1
  fi
  echo "rustup could not add the wasm target; using $installer" >&2
  bash "$installer" --mode debian
  export FNHOST_GUEST_CARGO=${WASM_TC_PREFIX:-/opt/wasm-toolchain}/bin/cargo-wasm
fi
