#!/usr/bin/env bash
# Finds nginx for the tests and for validate-deploy.sh, and exports its path as FNHOST_NGINX:
# the one on PATH, or Debian's package unpacked into a cache dir (unpacked, not installed: no
# service starts, nothing lands in /etc; the tests run private instances with their own prefix,
# config and port on 127.0.0.1). Meant to be sourced.
fnhost_nginx_cache=${FNHOST_NGINX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fnhost/nginx}
FNHOST_NGINX=$(command -v nginx || true)
if [ -z "$FNHOST_NGINX" ]; then
  FNHOST_NGINX="$fnhost_nginx_cache/nginx-deb/usr/sbin/nginx"
  if [ ! -x "$FNHOST_NGINX" ]; then
    if [ "$(id -u)" = 0 ]; then fnhost_sudo=(); else fnhost_sudo=(sudo); fi
    echo "nginx.sh: unpacking Debian's nginx package into $fnhost_nginx_cache/nginx-deb" >&2
    fnhost_download=$(mktemp -d)
    if ! (cd "$fnhost_download" && apt-get download nginx >/dev/null 2>&1); then
      "${fnhost_sudo[@]}" apt-get update >/dev/null
      (cd "$fnhost_download" && apt-get download nginx >/dev/null)
    fi
    rm -rf "$fnhost_nginx_cache/nginx-deb"
    mkdir -p "$fnhost_nginx_cache"
    dpkg-deb -x "$fnhost_download"/nginx_*.deb "$fnhost_nginx_cache/nginx-deb"
    rm -rf "$fnhost_download"
    # Its shared libraries are in any Debian base system; install them if this one lacks them.
    "$FNHOST_NGINX" -v >/dev/null 2>&1 ||
      "${fnhost_sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libc6 libcrypt1 libpcre2-8-0 libssl3 zlib1g >/dev/null
  fi
fi
export FNHOST_NGINX
