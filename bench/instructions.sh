#!/usr/bin/env bash
# User-space instructions per request, counted by callgrind: a measure that does not drift
# with the load on a shared VM (docs/PERFORMANCE.md, "Instructions per request"). Starts
# `fnhost` (examples deployed) and the native reference server under
# `valgrind --tool=callgrind`, warms each up, zeroes the counters, loads it with
# `wrk -t1 -c1` for BENCH_SECONDS (3), dumps and divides by the requests served. Kernel time
# (system calls, the network, the memory reset's pagemap_scan ioctl) is not counted.
#
#   bench/instructions.sh [BODY_FILE]     default: a math.add request
#
# Needs valgrind and wrk (installed with apt-get when missing) and a release build
# (`cargo build --release -p fnhost-cli -p fnhost-bench --bins`, which bench/run.sh also does).
# fnhost runs with --max-concurrent-calls 2: valgrind cannot reserve the address space of the
# default 128-slot instance pool, and without a pool fnhost would fall back to on-demand
# allocation, which is not what production runs.
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
seconds=${BENCH_SECONDS:-3}
target_dir=${CARGO_TARGET_DIR:-target}
guest_dir=target/guests/wasm32-unknown-unknown/guest
for tool in valgrind wrk; do
  if ! command -v "$tool" >/dev/null; then
    if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
    "${sudo[@]}" apt-get install -y "$tool" >/dev/null 2>&1 ||
      { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y "$tool" >/dev/null; }
  fi
done
for bin in fnhost native-ref; do
  [ -x "$target_dir/release/$bin" ] || { echo "build first: cargo build --release -p fnhost-cli -p fnhost-bench --bins" >&2; exit 1; }
done
[ -f "$guest_dir/math.wasm" ] || { echo "build the example guests first: just guests" >&2; exit 1; }

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
body=${1:-$work/add.json}
[ -n "${1:-}" ] || printf '{"jsonrpc":"2.0","id":1,"method":"math.add","params":[2,3]}' >"$body"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# measure NAME CMD...: prints NAME and instructions per request.
measure() {
  local name=$1; shift
  valgrind --tool=callgrind --callgrind-out-file="$work/$name.out" "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    curl -s -o /dev/null -m 1 -X POST "http://127.0.0.1:$port/rpc" && break
    sleep 0.2
  done
  BENCH_BODY=$body wrk -t1 -c1 -d1s -s bench/wrk/post.lua "http://127.0.0.1:$port/rpc" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  BENCH_BODY=$body wrk -t1 -c1 -d"${seconds}s" -s bench/wrk/post.lua "http://127.0.0.1:$port/rpc" >"$work/$name.wrk"
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
  local requests instructions
  requests=$(grep -oE '^ +[0-9]+ requests' "$work/$name.wrk" | awk '{print $1}')
  instructions=$(grep -hE '^summary:' "$work/$name.out.1" | awk '{print $2}')
  printf '%s\t%s requests\t%s instructions per request\n' "$name" "$requests" "$((instructions / requests))"
}

FNHOST_ADMIN_TOKEN=fnhost-bench-admin-token RUST_LOG=warn measure fnhost \
  "$target_dir/release/fnhost" serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
  --deploy-dir "$guest_dir" --max-concurrent-calls 2
measure native "$target_dir/release/native-ref" "127.0.0.1:$port"
