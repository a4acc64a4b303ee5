#!/usr/bin/env bash
# Validates deploy/ without fetching anything while validating:
#  - every Kubernetes manifest in deploy/kubernetes/ (and, where kubectl is installed, what
#    `kubectl kustomize` renders from kustomization.yaml) against the Kubernetes JSON schemas of
#    each version in KUBE_VERSIONS, strictly (unknown fields are errors), with kubernetes-validate,
#    a pinned PyPI package that bundles the schemas (scripts/validate-deploy-requirements.txt);
#  - deploy/nginx/fnhost.conf with `nginx -t`, included in a throwaway nginx.conf whose paths all
#    point into a temporary prefix.
# First run installs what is missing: a venv in the cache dir (python3 and python3-venv from apt
# when needed), and Debian's nginx package unpacked into a cache dir when `nginx` is not on
# PATH (scripts/nginx.sh: unpacked, not installed: no service is started, nothing lands in /etc). Then the
# checks run in a network namespace without network (or, where one cannot be made, with every
# proxy variable pointing at a closed port), so a validator that tried to download a schema
# would fail rather than quietly depend on the network.
# Exits non-zero on any invalid manifest, on a manifest whose kind/apiVersion has no schema,
# and on an nginx error.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

KUBE_VERSIONS=${KUBE_VERSIONS:-1.30.0 1.37.0}
cache=${FNHOST_VALIDATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fnhost/validate-deploy}
requirements=scripts/validate-deploy-requirements.txt
venv="$cache/venv-$(sha256sum "$requirements" | cut -c1-12)"

if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then
    "${sudo[@]}" apt-get update >/dev/null
    apt_updated=1
  fi
  echo "validate-deploy: apt-get install $*" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null
}

# --- The validator: a venv of its own, never the system's Python packages.
# (Reinstalled when incomplete, or when the Python it was made with has gone.)
if [ ! -e "$venv/.complete" ] || ! "$venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
  echo "validate-deploy: installing the validator into $venv" >&2
  command -v python3 >/dev/null || apt_install python3
  rm -rf "$venv"
  mkdir -p "$cache"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt_install python3-venv # Debian's python3 has no ensurepip without it
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements"
  touch "$venv/.complete"
fi

# --- nginx: the one on PATH, or Debian's binary unpacked into a cache (scripts/nginx.sh).
source scripts/nginx.sh
nginx_bin=$FNHOST_NGINX

# --- No network from here on.
offline=()
if unshare --net true 2>/dev/null; then
  offline=(unshare --net)
  isolation="a network namespace without network (unshare --net)"
elif unshare --user --map-root-user --net true 2>/dev/null; then
  offline=(unshare --user --map-root-user --net)
  isolation="a user and network namespace without network (unshare --user --net)"
else
  isolation="proxy variables pointing at a closed port (unshare not permitted here)"
fi
nowhere=http://127.0.0.1:9
offline=(env "HTTP_PROXY=$nowhere" "HTTPS_PROXY=$nowhere" "ALL_PROXY=$nowhere" "http_proxy=$nowhere"
  "https_proxy=$nowhere" "all_proxy=$nowhere" NO_PROXY= no_proxy= "${offline[@]}")
echo "validate-deploy: checking with $isolation"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

# Runs kubernetes-validate on the given files for every version; fails on errors and also on
# warnings, since a kind or apiVersion without a schema (a typo, a removed API) is only a
# warning to kubernetes-validate, with exit status 0.
validate() {
  local version out rc
  for version in $KUBE_VERSIONS; do
    rc=0
    out=$("${offline[@]}" "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$@" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
      printf '%s\n' "$out" >&2
      echo "FAIL kubernetes $version: $*" >&2
      failed=1
    else
      echo "ok   kubernetes $version (strict): $*"
    fi
  done
}

manifests=()
for f in deploy/kubernetes/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
validate "${manifests[@]}"

# kustomization.yaml is kustomize's input, not a Kubernetes object: check that what it lists
# exists, and, where kubectl is installed, validate what it renders (image override included).
if ! "${offline[@]}" "$venv/bin/python" - deploy/kubernetes/kustomization.yaml <<'PY'; then
import os, sys, yaml
path = sys.argv[1]
doc = yaml.safe_load(open(path))
missing = [r for r in doc.get("resources", []) if not os.path.exists(os.path.join(os.path.dirname(path), r))]
if missing:
    sys.exit(f"{path}: lists missing resources: {', '.join(missing)}")
print(f"ok   {path}: its {len(doc['resources'])} resources exist")
PY
  failed=1
fi
if command -v kubectl >/dev/null; then
  if "${offline[@]}" kubectl kustomize deploy/kubernetes >"$work/kustomize-output.yaml" 2>"$work/kustomize.err"; then
    validate "$work/kustomize-output.yaml"
  else
    cat "$work/kustomize.err" >&2
    echo "FAIL kubectl kustomize deploy/kubernetes" >&2
    failed=1
  fi
else
  echo "skip kubectl kustomize (no kubectl)"
fi

# --- nginx -t on the example, inside a throwaway prefix. `user root`: nginx started as root
# (really, or mapped by unshare --user) chowns its temp dirs to `user`, and in a user namespace
# only root is mapped; for a non-root nginx the line is ignored.
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
user root;
pid $work/nginx/nginx.pid;
error_log stderr;
events {}
http {
    access_log off;
    client_body_temp_path $work/nginx/client_body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    include $PWD/deploy/nginx/fnhost.conf;
}
CONF
if "${offline[@]}" "$nginx_bin" -t -q -e stderr -p "$work/nginx/" -c "$work/nginx/nginx.conf"; then
  echo "ok   nginx -t: deploy/nginx/fnhost.conf ($("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //'))"
else
  echo "FAIL nginx -t: deploy/nginx/fnhost.conf" >&2
  failed=1
fi

echo "validate-deploy: $([ "$failed" = 0 ] && echo passed || echo FAILED) in $((SECONDS - start)) s"
exit "$failed"
