#!/usr/bin/env bash
# What the console's browser test (tests/tests/console.rs) needs: Debian's Chromium (the test
# downloads no browser of its own), Node.js with npm, and playwright-core from npm, pinned by
# tests/browser/package-lock.json. Installs what is missing; meant to be sourced.
if [ "$(id -u)" = 0 ]; then fnhost_sudo=(); else fnhost_sudo=(sudo); fi
fnhost_apt() {
  "${fnhost_sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 ||
    { "${fnhost_sudo[@]}" apt-get update >/dev/null && "${fnhost_sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null; }
}
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian) for the console's browser test" >&2
  fnhost_apt chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "installing nodejs and npm (Debian) for the console's browser test" >&2
  fnhost_apt nodejs npm
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
