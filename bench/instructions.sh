#!/usr/bin/env bash
# User-space instructions per request, counted by callgrind: a measure that does not drift
# with the load on a shared VM (docs/PERFORMANCE.md, "Instructions per request"). Starts each
# server under `valgrind --tool=callgrind`, one after another, checks its answer with curl,
# warms it up, zeroes the counters, loads it with `wrk -t1 -c1` for BENCH_SECONDS (3), dumps
# and divides by the requests served. Four rows, in one run:
#
#   fnhost          `math.add` (examples deployed)
#   bare Rust       `math.add` on `wasm-ref` (bench/src/bare.rs: the same Rust SDK guest in a
#                   fresh instance on fnhost's engine, nothing of fnhost around it)
#   bare WAT        `wat.add` on `wasm-ref` (a hand-written WAT add, params parsed by the host)
#   native          `math.add` on `native-ref`
#
# then one table: instructions per request, each row's ratio to native, bare Rust ÷ bare WAT
# (target ≤ 1.3: what the Rust guest adds to an instance) and fnhost ÷ bare Rust (what fnhost
# adds to the same guest call). Kernel time (system calls, the network, the memory reset's
# pagemap_scan ioctl) is not counted.
#
#   bench/instructions.sh              the four rows above
#   bench/instructions.sh BODY_FILE    fnhost and native only, each sent BODY_FILE (its answer
#                                      must hold a "result"); wasm-ref answers only math.add and
#                                      wat.add, so the bare rows are left out
#
# Needs valgrind and wrk (installed with apt-get when missing) and a release build
# (`cargo build --release -p fnhost-cli -p fnhost-bench --bins`, which bench/run.sh also does).
# Both wasm hosts run with a 2-slot instance pool — fnhost with --max-concurrent-calls 2,
# wasm-ref with FNHOST_BENCH_SLOTS=2 — because valgrind cannot reserve the address space of the
# default 128-slot pool, and without a pool the engine falls back to on-demand allocation,
# which is not what production runs. A wasm host that logs that fallback, or whose address
# space after the warm-up is under 2 GiB (a pool of 2 slots reserves several), is flagged.
# fnhost's compile workers run under valgrind too (see measure), so their limits are raised
# (--compile-timeout-ms, --compile-memory-mib): a compile is many times slower there and valgrind
# needs address space of its own. They bound compiles at deploy, not calls. Start-up under
# valgrind takes a minute or two (every example guest is compiled).
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
seconds=${BENCH_SECONDS:-3}
slots=2
target_dir=${CARGO_TARGET_DIR:-target}
guest_dir=target/guests/wasm32-unknown-unknown/guest
custom_body=${1:-}
if [ -n "$custom_body" ] && [ ! -f "$custom_body" ]; then
  echo "no such body file: $custom_body" >&2
  exit 2
fi
for tool in valgrind wrk; do
  if ! command -v "$tool" >/dev/null; then
    if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
    "${sudo[@]}" apt-get install -y "$tool" >/dev/null 2>&1 ||
      { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y "$tool" >/dev/null; }
  fi
done
for bin in fnhost native-ref wasm-ref; do
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
trap 'exit 130' INT TERM
printf '{"jsonrpc":"2.0","id":1,"method":"math.add","params":[2,3]}' >"$work/add.json"
printf '{"jsonrpc":"2.0","id":1,"method":"wat.add","params":[2,3]}' >"$work/watadd.json"
if [ -n "$custom_body" ]; then
  body=$custom_body expect='"result"' request=$(basename "$custom_body")
else
  body=$work/add.json expect='"result":5' request=math.add
fi
results=$work/results.tsv
: >"$results"

# measure NAME REQUEST BODY EXPECT CMD...: runs CMD (which listens on $port) under callgrind,
# checks that its answer to BODY holds EXPECT, loads it with BODY, and appends NAME, REQUEST
# (what BODY is, for the table), requests served, instructions counted, address space and
# allocator to $results.
measure() {
  local name=$1 request=$2 body=$3 expect=$4; shift 4
  local url=http://127.0.0.1:$port/rpc
  echo "$name: starting under callgrind" >&2
  # --trace-children: fnhost compiles each module in a child (`fnhost compile-worker`) that
  # must compute the host's engine key, and the key covers the CPU features the engine
  # detects, which valgrind's CPU hides some of: run natively, the worker refuses the host as
  # "not the same build" and the deploy fails. Children write their own counts (%p).
  valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$work/$name.%p.out" \
    "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 1500); do
    curl -s -o /dev/null -m 1 -X POST "$url" && break
    kill -0 "$pid" 2>/dev/null || { echo "$name exited; its log:" >&2; tail -n 20 "$work/$name.log" >&2; exit 1; }
    sleep 0.2
  done
  local answer
  answer=$(curl -s -m 30 -X POST -H 'Content-Type: application/json' --data-binary @"$body" "$url")
  if ! grep -qF -- "$expect" <<<"$answer"; then
    echo "$name: unexpected answer: ${answer:0:300}" >&2
    exit 1
  fi
  BENCH_BODY=$body wrk -t1 -c1 -d1s -s bench/wrk/post.lua "$url" >/dev/null
  # Address space after the warm-up, no call in flight: a wasm host's pool holds GiBs of it.
  local vm_kib
  vm_kib=$(awk '/^VmSize:/ {print $2}' "/proc/$pid/status")
  callgrind_control -z "$pid" >/dev/null 2>&1
  BENCH_BODY=$body wrk -t1 -c1 -d"${seconds}s" -s bench/wrk/post.lua "$url" >"$work/$name.wrk"
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local requests instructions allocator=
  requests=$(grep -oE '^ +[0-9]+ requests' "$work/$name.wrk" | awk '{print $1}')
  instructions=$(grep -hE '^summary:' "$work/$name.$pid.out.1" | awk '{print $2}')
  pid=
  # fnhost's engine logs this warning when the pool cannot be reserved (host/src/sandbox/engine.rs).
  if grep -q 'pooling allocator unavailable' "$work/$name.log"; then allocator=on-demand; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$request" "$requests" "$instructions" \
    "$vm_kib" "$allocator" >>"$results"
  echo "$name: $requests requests, $((instructions / requests)) instructions per request" >&2
}

new_port() { port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'); }

new_port
FNHOST_ADMIN_TOKEN=fnhost-bench-admin-token RUST_LOG=warn measure fnhost "$request" "$body" "$expect" \
  "$target_dir/release/fnhost" serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
  --deploy-dir "$guest_dir" --max-concurrent-calls "$slots" \
  --compile-timeout-ms 600000 --compile-memory-mib 16384
if [ -z "$custom_body" ]; then
  # FNHOST_BENCH_SLOTS: the pool size wasm-ref should use (see the header); RUST_LOG for its
  # engine's fallback warning, if it logs.
  new_port
  FNHOST_GUEST_DIR=$guest_dir FNHOST_BENCH_SLOTS=$slots RUST_LOG=warn measure "bare Rust" math.add \
    "$work/add.json" '"result":5' "$target_dir/release/wasm-ref" "127.0.0.1:$port"
  new_port
  FNHOST_GUEST_DIR=$guest_dir FNHOST_BENCH_SLOTS=$slots RUST_LOG=warn measure "bare WAT" wat.add \
    "$work/watadd.json" '"result":5' "$target_dir/release/wasm-ref" "127.0.0.1:$port"
fi
new_port
measure native "$request" "$body" "$expect" "$target_dir/release/native-ref" "127.0.0.1:$port"

echo
echo "Instructions per request (callgrind, user space), wrk -t1 -c1, $seconds s after a 1 s warm-up, $(date -u +%F)"
echo
python3 - "$results" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
per = {r[0]: int(r[3]) / int(r[2]) for r in rows}
what = {"bare Rust": "bare wasmtime, Rust guest", "bare WAT": "bare wasmtime, WAT guest"}
native = per.get("native")
print("| server | request | requests | instructions per request | ÷ native | address space |")
print("|---|---|---|---|---|---|")
for name, request, reqs, _, vm_kib, _ in rows:
    ratio = f"{per[name] / native:.2f}×" if native else "–"
    print(f"| {what.get(name, name)} | {request} | {int(reqs):,} | {per[name]:,.0f} | {ratio} | "
          f"{int(vm_kib) / 2**20:.1f} GiB |")
print()
if "bare Rust" in per and "bare WAT" in per:
    r = per["bare Rust"] / per["bare WAT"]
    print(f"{'met   ' if r <= 1.3 else 'MISSED'} bare Rust ÷ bare WAT instructions ≤ 1.3: {r:.2f}")
if "fnhost" in per and "bare Rust" in per:
    print(f"       fnhost ÷ bare Rust instructions: {per['fnhost'] / per['bare Rust']:.2f}")
# A pool of even 2 slots reserves several GiB up front; a wasm host well under that is running
# with on-demand allocation, whether or not it logged the fallback.
for name, _, _, _, vm_kib, allocator in rows:
    if name != "native" and (allocator == "on-demand" or int(vm_kib) < 2 * 2**20):
        how = "logged" if allocator else f"only {int(vm_kib) / 2**20:.1f} GiB reserved"
        print(f"WARNING: {name} ran without its instance pool (on-demand allocation, {how}): "
              "not what production runs, its count is not comparable")
PY
