#!/usr/bin/env bash
# PostgreSQL for the store's tests (tests/tests/postgres_store.rs) and for trying
# `fnhost serve --store postgres://…` by hand.
#
# Sourced (scripts/test.sh does): installs Debian's `postgresql` when initdb/pg_ctl are
# missing, without letting the package create and start a cluster of its own, and exports
# FNHOST_PG_BIN (the directory of initdb, pg_ctl, postgres) for the tests, which start
# private servers themselves (tests/src/pg.rs).
#
# Run: a private cluster for a person, under target/postgres (data, unix socket, log), on
# 127.0.0.1 only, trust auth for the user `fnhost`:
#   scripts/postgres.sh start [PORT]   (default 55432) prints the store URL
#   scripts/postgres.sh url | status | stop
# As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).

pg_find_bin() {
  if [ -n "${FNHOST_PG_BIN:-}" ] && [ -x "$FNHOST_PG_BIN/initdb" ]; then
    echo "$FNHOST_PG_BIN"
    return 0
  fi
  local dir
  dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
    echo "$dir"
    return 0
  fi
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return 0
  fi
  return 1
}

pg_install() {
  if pg_find_bin >/dev/null; then
    return 0
  fi
  echo "installing postgresql for the store tests" >&2
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  # The package would create and start a cluster on port 5432; the tests start their own.
  # (postgresql-common reads this file at install; an existing one keeps its other settings.)
  local conf=/etc/postgresql-common/createcluster.conf
  if ! grep -qs '^ *create_main_cluster *= *false' "$conf"; then
    "${sudo[@]}" mkdir -p "$(dirname "$conf")"
    echo "create_main_cluster = false" | "${sudo[@]}" tee -a "$conf" >/dev/null
  fi
  { "${sudo[@]}" apt-get update >/dev/null &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends \
      -o Dpkg::Options::=--force-confold postgresql >/dev/null; } ||
    { echo "cannot install postgresql: install it (initdb, pg_ctl) and run again" >&2; return 1; }
  pg_find_bin >/dev/null || { echo "postgresql installed, but no initdb found" >&2; return 1; }
}

# Runs a PostgreSQL program as a user it accepts.
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_cluster() {
  local root bin port
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/postgres"
  bin=$(pg_find_bin) || { echo "no PostgreSQL: run with a package manager reachable" >&2; exit 1; }
  port=$(cat "$root/port" 2>/dev/null || echo "${2:-55432}")
  case "${1:-}" in
    start)
      mkdir -p "$root/socket"
      if [ ! -f "$root/data/PG_VERSION" ]; then
        [ "$(id -u)" = 0 ] && chown -R postgres "$root"
        pg_as_owner "$bin/initdb" -D "$root/data" -U fnhost -A trust -E UTF8 --no-sync >/dev/null
      fi
      echo "$port" >"$root/port"
      [ "$(id -u)" = 0 ] && chown -R postgres "$root"
      pg_as_owner "$bin/pg_ctl" -D "$root/data" -l "$root/log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $root/socket" start >/dev/null
      pg_as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U fnhost fnhost 2>/dev/null || true
      echo "postgres://fnhost@127.0.0.1:$port/fnhost"
      ;;
    url) echo "postgres://fnhost@127.0.0.1:$port/fnhost" ;;
    status) pg_as_owner "$bin/pg_ctl" -D "$root/data" status ;;
    stop) pg_as_owner "$bin/pg_ctl" -D "$root/data" -m fast -w -t 30 stop ;;
    *)
      echo "usage: $0 start [PORT] | url | status | stop" >&2
      exit 2
      ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  pg_install
  pg_cluster "$@"
else
  pg_install || return 1
  FNHOST_PG_BIN=$(pg_find_bin)
  export FNHOST_PG_BIN
fi
