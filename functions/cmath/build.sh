#!/usr/bin/env bash
# Builds the C guest cmath.wasm from cmath.c with clang and wasm-ld; scripts/c-toolchain.sh
# installs Debian's clang and lld when they are missing (FNHOST_CC names another clang).
#
#   functions/cmath/build.sh [OUT]    # OUT defaults to target/c-guests/cmath.wasm
#
# No libc, no WASI: -ffreestanding -nostdlib, and --no-entry since a guest has no main. The
# exports come from FNHOST_EXPORT (export_name attributes) and the metadata from FNHOST_FUNCTION
# (a custom section), so no --export flags are needed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/scripts/c-toolchain.sh"
out="${1:-$root/target/c-guests/cmath.wasm}"
mkdir -p "$(dirname "$out")"
"$FNHOST_CC" --target=wasm32 -Os -ffreestanding -nostdlib -Wall -Wextra -Werror \
  -Wl,--no-entry -Wl,--strip-all -o "$out" "$here/cmath.c"
echo "$out"
