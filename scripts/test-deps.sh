#!/usr/bin/env bash
# Makes sure the real clients the integration tests drive are present (python3 for
# `xmlrpc.client`, curl for the README's curl examples); meant to be sourced. Installs them
# with apt-get when missing (as root, or with sudo).
missing=()
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} for the integration tests" >&2
  if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get install -y "${missing[@]}" >/dev/null 2>&1 ||
    { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y "${missing[@]}" >/dev/null; } ||
    { echo "cannot install ${missing[*]}: install them and run again" >&2; return 1 2>/dev/null || exit 1; }
fi
# Python's own Prometheus client parses /metrics in tests/tests/observe.rs, as a scraper would.
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  echo "installing prometheus_client (PyPI) for the metrics tests" >&2
  python3 -m pip install -q prometheus_client 2>/dev/null ||
    python3 -m pip install -q --break-system-packages prometheus_client ||
    { echo "cannot install prometheus_client: pip install it and run again" >&2; return 1 2>/dev/null || exit 1; }
fi
