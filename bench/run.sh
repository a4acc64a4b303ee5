#!/usr/bin/env bash
# The HTTP benchmarks (docs/PERFORMANCE.md): builds fnhost, the reference servers and
# the example guests, then starts, one after another on loopback, fnhost (examples deployed),
# a bare wasmtime host running the same guest (bench/src/bin/wasm-ref.rs: the floor of a fresh
# instance per call), bench/src/bin/native-ref.rs and Python's SimpleXMLRPCServer +
# ThreadingMixIn, each pinned to
# CPU 0, and loads each with wrk pinned to CPU 1 (same workloads, same connections, bounded
# time). Prints one table with req/s, p50, p99 and the ratios fnhost/native and fnhost/python,
# then runs `lifecycle` (start-up with 1/100/1000 modules, first calls, deploy).
#
#   bench/run.sh                 full run: release build, BENCH_SECONDS (10) per load, c=32
#   bench/run.sh --smoke         CI smoke: debug build, 1 s loads, c=4, start-up with 1 and 3
#   bench/run.sh --skip-lifecycle  only the HTTP table
#
# Environment: BENCH_SECONDS, BENCH_CONNECTIONS, CARGO_TARGET_DIR (default target),
# BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1), BENCH_PROFILE (cargo profile; release, or debug
# with --smoke). Installs wrk with apt-get when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

smoke=0
lifecycle=1
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1 ;;
    --skip-lifecycle) lifecycle=0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if ((smoke)); then
  seconds=${BENCH_SECONDS:-1}
  conns=${BENCH_CONNECTIONS:-4}
  profile_flag=()
  profile_dir=debug
  counts=1,3
else
  seconds=${BENCH_SECONDS:-10}
  conns=${BENCH_CONNECTIONS:-32}
  profile_flag=(--release)
  profile_dir=release
  counts=1,100,1000
fi
if [ -n "${BENCH_PROFILE:-}" ]; then
  profile_dir=$BENCH_PROFILE
  if [ "$BENCH_PROFILE" = debug ]; then profile_flag=(); else profile_flag=(--profile "$BENCH_PROFILE"); fi
fi
server_cpu=${BENCH_SERVER_CPU:-0}
client_cpu=${BENCH_CLIENT_CPU:-1}
if [ "$(nproc)" -lt 2 ]; then
  echo "only one CPU: server and load generator share it; numbers are not comparable" >&2
  server_cpu=0 client_cpu=0
fi
target_dir=${CARGO_TARGET_DIR:-target}
guest_dir=target/guests/wasm32-unknown-unknown/guest

# --- build -----------------------------------------------------------------------------
scripts/build-guests.sh
cargo build "${profile_flag[@]}" -p fnhost-cli -p fnhost-bench --bins
fnhost_bin=$target_dir/$profile_dir/fnhost
native_bin=$target_dir/$profile_dir/native-ref
wasm_ref_bin=$target_dir/$profile_dir/wasm-ref
lifecycle_bin=$target_dir/$profile_dir/lifecycle

if ! command -v wrk >/dev/null; then
  echo "installing wrk" >&2
  if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get install -y wrk >/dev/null 2>&1 ||
    { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y wrk >/dev/null; }
fi
python=$(command -v python3)

# --- bodies ----------------------------------------------------------------------------
work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$python" - "$work" <<'PY'
import json, sys
d = sys.argv[1]
add = {"jsonrpc": "2.0", "id": 1, "method": "math.add", "params": [2, 3]}
open(f"{d}/add.json", "w").write(json.dumps(add, separators=(",", ":")))
open(f"{d}/watadd.json", "w").write(json.dumps(dict(add, method="wat.add"), separators=(",", ":")))
items, size, i = [], 2, 0
while size < 10 * 1024:
    item = json.dumps({"i": i, "name": f"item number {i}", "tags": ["a", "b"], "v": i + 0.5}, separators=(",", ":"))
    items.append(item); size += len(item) + 1; i += 1
params = "[" + ",".join(items) + "]"
open(f"{d}/echo10k.json", "w").write('{"jsonrpc":"2.0","id":1,"method":"echo.echo","params":' + params + "}")
open(f"{d}/echo10k.expect", "w").write('"result":' + params)
batch = [{"jsonrpc": "2.0", "id": n, "method": "math.add", "params": [n, 1]} for n in range(100)]
open(f"{d}/batch100.json", "w").write(json.dumps(batch, separators=(",", ":")))
open(f"{d}/add.xml", "w").write(
    '<?xml version="1.0"?><methodCall><methodName>add</methodName><params>'
    "<param><value><int>2</int></value></param><param><value><int>3</int></value></param>"
    "</params></methodCall>")
open(f"{d}/mathadd.xml", "w").write(open(f"{d}/add.xml").read().replace(">add<", ">math.add<"))
PY

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_ready URL: polls until the URL answers (any status), for up to 120 s.
wait_ready() {
  for _ in $(seq 1200); do
    if curl -s -o /dev/null -m 1 -X POST "$1"; then return 0; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then echo "server exited" >&2; return 1; fi
    sleep 0.1
  done
  echo "server at $1 did not come up" >&2
  return 1
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

results=$work/results.tsv
: >"$results"

# load SERVER WORKLOAD CONNS URL BODY CONTENT_TYPE EXPECT CALLS_PER_REQUEST
load() {
  local server=$1 workload=$2 c=$3 url=$4 body=$5 ctype=$6 expect=$7 calls=$8
  local answer
  answer=$(curl -s -X POST -H "Content-Type: $ctype" --data-binary @"$body" "$url")
  if ! grep -qF -- "$expect" <<<"$answer"; then
    echo "$server $workload: unexpected answer: ${answer:0:300}" >&2
    exit 1
  fi
  local out=$work/wrk-$server-$workload-$c.txt
  BENCH_BODY=$body BENCH_CONTENT_TYPE=$ctype \
    taskset -c "$client_cpu" wrk -t1 -c"$c" -d"${seconds}s" --timeout 5s --latency \
    -s bench/wrk/post.lua "$url" >"$out"
  "$python" - "$out" "$server" "$workload" "$c" "$calls" >>"$results" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def dur(s):
    m = re.match(r"([\d.]+)(us|ms|s)$", s)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = dur(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = dur(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors += int(m.group(1)) if m else 0
server, workload, c, calls = sys.argv[2:6]
print(f"{server}\t{workload}\t{c}\t{rps}\t{p50}\t{p99}\t{errors}\t{calls}")
PY
  tail -n1 "$results" >&2
}

# --- fnhost ----------------------------------------------------------------------------
port=$(free_port)
FNHOST_ADMIN_TOKEN=fnhost-bench-admin-token RUST_LOG=warn taskset -c "$server_cpu" \
  "$fnhost_bin" serve --listen "127.0.0.1:$port" --data-dir "$work/fnhost-data" \
  --deploy-dir "$guest_dir" >"$work/fnhost.log" 2>&1 &
server_pid=$!
wait_ready "http://127.0.0.1:$port/rpc"
url=http://127.0.0.1:$port
load fnhost math.add "$conns" "$url/rpc" "$work/add.json" application/json '"result":5' 1
load fnhost math.add 1 "$url/rpc" "$work/add.json" application/json '"result":5' 1
load fnhost "echo 10KB" "$conns" "$url/rpc" "$work/echo10k.json" application/json "$(cat "$work/echo10k.expect")" 1
load fnhost "batch 100 add" "$conns" "$url/rpc" "$work/batch100.json" application/json '"id":99,"result":100' 100
load fnhost "math.add XML-RPC" "$conns" "$url/RPC2" "$work/mathadd.xml" text/xml '<int>5</int>' 1
stop_server

# --- bare wasmtime (bench/src/bin/wasm-ref.rs): the floor of a fresh instance per call ----
port=$(free_port)
FNHOST_GUEST_DIR=$guest_dir taskset -c "$server_cpu" "$wasm_ref_bin" "127.0.0.1:$port" >"$work/wasm-ref.log" 2>&1 &
server_pid=$!
wait_ready "http://127.0.0.1:$port/rpc"
url=http://127.0.0.1:$port
load bare-wasmtime math.add "$conns" "$url/rpc" "$work/add.json" application/json '"result":5' 1
load bare-wasmtime "add, WAT guest" "$conns" "$url/rpc" "$work/watadd.json" application/json '"result":5' 1
stop_server

# --- native reference ------------------------------------------------------------------
port=$(free_port)
taskset -c "$server_cpu" "$native_bin" "127.0.0.1:$port" >"$work/native.log" 2>&1 &
server_pid=$!
wait_ready "http://127.0.0.1:$port/rpc"
url=http://127.0.0.1:$port
load native math.add "$conns" "$url/rpc" "$work/add.json" application/json '"result":5' 1
load native math.add 1 "$url/rpc" "$work/add.json" application/json '"result":5' 1
load native "echo 10KB" "$conns" "$url/rpc" "$work/echo10k.json" application/json "$(cat "$work/echo10k.expect")" 1
load native "batch 100 add" "$conns" "$url/rpc" "$work/batch100.json" application/json '"id":99,"result":100' 100
stop_server

# --- Python SimpleXMLRPCServer ---------------------------------------------------------
port=$(free_port)
taskset -c "$server_cpu" "$python" bench/python/xmlrpc_server.py "$port" >"$work/python.log" 2>&1 &
server_pid=$!
wait_ready "http://127.0.0.1:$port/RPC2"
load python "math.add XML-RPC" "$conns" "http://127.0.0.1:$port/RPC2" "$work/add.xml" text/xml '<int>5</int>' 1
stop_server

# --- table -----------------------------------------------------------------------------
echo
echo "HTTP, $seconds s per run, wrk -t1 on CPU $client_cpu, server on CPU $server_cpu, $(date -u +%F)"
echo
"$python" - "$results" "$smoke" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
smoke = sys.argv[2] == "1"
res = {}
for server, workload, c, rps, p50, p99, errors, calls in rows:
    res[(server, workload, c)] = dict(rps=float(rps), p50=float(p50), p99=float(p99),
                                      errors=int(errors), calls=int(calls))
py = res.get(("python", "math.add XML-RPC", max(r[2] for r in rows)))
print("| server | workload | conns | req/s | calls/s | p50 (µs) | p99 (µs) | errors | fnhost/native | fnhost/python |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (server, workload, c), r in res.items():
    native = res.get(("native", "math.add" if server == "bare-wasmtime" else workload, c))
    # bare-wasmtime rows show their own ratio to native in that column, for the floor.
    vs_native = f"{r['rps'] / native['rps']:.2f}×" if server in ("fnhost", "bare-wasmtime") and native else "–"
    vs_py = f"{r['rps'] / py['rps']:.1f}×" if server == "fnhost" and py and "add" in workload and "batch" not in workload else "–"
    print(f"| {server} | {workload} | {c} | {r['rps']:,.0f} | {r['rps'] * r['calls']:,.0f} | "
          f"{r['p50']:.0f} | {r['p99']:.0f} | {r['errors']} | {vs_native} | {vs_py} |")
c = max(r[2] for r in rows)
f = lambda w, s="fnhost": res.get((s, w, c))
checks = []
if f("math.add") and f("math.add", "native"):
    checks.append(("math.add ≥ 0.85× native req/s", f("math.add")["rps"] / f("math.add", "native")["rps"], 0.85))
    checks.append(("math.add p99 ≤ 3× p50 (ratio p99/p50, lower is better)", f("math.add")["p99"] / f("math.add")["p50"], -3))
if f("echo 10KB") and f("echo 10KB", "native"):
    checks.append(("echo 10KB ≥ 0.6× native req/s", f("echo 10KB")["rps"] / f("echo 10KB", "native")["rps"], 0.6))
if f("math.add") and py:
    checks.append(("math.add ≥ 20× Python req/s", f("math.add")["rps"] / py["rps"], 20))
if f("batch 100 add") and f("math.add"):
    checks.append(("batch of 100: ≥ 5× the calls/s of single requests", f("batch 100 add")["rps"] * 100 / f("math.add")["rps"], 5))
bare = f("math.add", "bare-wasmtime")
if f("math.add") and bare:
    print()
    print("fnhost math.add / bare wasmtime running the same guest: %.2f×" % (f("math.add")["rps"] / bare["rps"]))
print()
print("targets (c=%s)%s:" % (c, " — smoke run, not comparable" if smoke else ""))
for name, value, target in checks:
    ok = value <= -target if target < 0 else value >= target
    print(f"  {'met   ' if ok else 'MISSED'} {name}: {value:.2f}")
PY

# --- start-up and deploy ---------------------------------------------------------------
if ((lifecycle)); then
  echo
  taskset -c "$client_cpu" "$lifecycle_bin" --fnhost "$fnhost_bin" --counts "$counts" \
    --server-cpu "$server_cpu"
fi
