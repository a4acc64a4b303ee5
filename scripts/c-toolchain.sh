#!/usr/bin/env bash
# Makes sure clang and wasm-ld (lld) are present for building C guests (functions/cmath);
# meant to be sourced, like scripts/test-deps.sh. Installs Debian's `clang` and `lld` with
# apt-get when missing (as root, or with sudo), and exports FNHOST_CC: the clang to use.
#
# Any clang that knows --target=wasm32 and finds a wasm-ld will do; set FNHOST_CC to use
# another one (e.g. wasi-sdk's).
fnhost_c_toolchain_ok() {
  command -v "${FNHOST_CC:-clang}" >/dev/null 2>&1 || return 1
  # clang finds wasm-ld next to itself or on PATH; ask it rather than guessing.
  local ld
  ld="$("${FNHOST_CC:-clang}" --target=wasm32 -print-prog-name=wasm-ld 2>/dev/null)" || return 1
  [ -x "$ld" ] || command -v "$ld" >/dev/null 2>&1
}
if ! fnhost_c_toolchain_ok; then
  echo "installing clang and lld for the C guests" >&2
  if [ "$(id -u)" = 0 ]; then fnhost_sudo=(); else fnhost_sudo=(sudo); fi
  "${fnhost_sudo[@]}" apt-get install -y clang lld >/dev/null 2>&1 ||
    { "${fnhost_sudo[@]}" apt-get update >/dev/null && "${fnhost_sudo[@]}" apt-get install -y clang lld >/dev/null; } ||
    { echo "cannot install clang and lld: install them (or set FNHOST_CC) and run again" >&2; return 1 2>/dev/null || exit 1; }
  unset fnhost_sudo
  fnhost_c_toolchain_ok ||
    { echo "${FNHOST_CC:-clang} does not run, or finds no wasm-ld, even after installing clang and lld" >&2; return 1 2>/dev/null || exit 1; }
fi
export FNHOST_CC="${FNHOST_CC:-clang}"
