#!/usr/bin/env bash
# The HTTP benchmarks (docs/PERFORMANCE.md): builds fnhost, the reference servers and
# the example guests, then starts all at once on loopback, each on its own port and pinned to
# CPU 0: fnhost (examples deployed), a bare wasmtime host running the same guest
# (bench/src/bin/wasm-ref.rs: the floor of a fresh instance per call),
# bench/src/bin/native-ref.rs and Python's SimpleXMLRPCServer + ThreadingMixIn. A server that
# is not being loaded is idle (only fnhost's and wasm-ref's epoch tickers wake, every 5 ms).
#
# The loads run in rounds: each round loads every row (server, workload, connections) once,
# for BENCH_ROUND_SECONDS, with wrk pinned to CPU 1, always in the same order; rows whose
# ratio is reported are next to each other in that order. So every ratio pairs two loads a few
# seconds apart, not two minutes that this shared VM may run up to 2x apart. The table gives
# each row's median req/s, p50 and p99 across rounds, and each ratio computed per round, then
# its median and spread (min–max) across rounds; the targets are judged on the median. Then
# runs `lifecycle` (start-up with 1/100/1000 modules, first calls, deploy).
#
#   bench/run.sh                   full run: release build, 5 rounds of 2 s per row, c=32
#   bench/run.sh --smoke           CI smoke: debug build, 1 round of 1 s loads, c=4, start-up
#                                  with 1 and 3 modules
#   bench/run.sh --skip-lifecycle  only the HTTP table
#
# Environment: BENCH_ROUNDS (5; 1 with --smoke), BENCH_ROUND_SECONDS (2; 1 with --smoke: whole
# seconds, wrk's unit), BENCH_CONNECTIONS (32; 4 with --smoke), CARGO_TARGET_DIR (default
# target), BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1), BENCH_PROFILE (cargo profile; release,
# or debug with --smoke). BENCH_SECONDS (one 10 s load per row) is gone: it is refused rather
# than ignored. Installs wrk with apt-get when it is missing.
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
if [ -n "${BENCH_SECONDS:-}" ]; then
  echo "BENCH_SECONDS is no longer read: loads run in rounds; set BENCH_ROUNDS and BENCH_ROUND_SECONDS" >&2
  exit 2
fi

if ((smoke)); then
  rounds=${BENCH_ROUNDS:-1}
  seconds=${BENCH_ROUND_SECONDS:-1}
  conns=${BENCH_CONNECTIONS:-4}
  noisy_conns=8
  profile_flag=()
  profile_dir=debug
  counts=1,3
else
  rounds=${BENCH_ROUNDS:-5}
  seconds=${BENCH_ROUND_SECONDS:-2}
  conns=${BENCH_CONNECTIONS:-32}
  noisy_conns=64
  profile_flag=(--release)
  profile_dir=release
  counts=1,100,1000
fi
for n in "$rounds" "$seconds" "$conns"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_ROUNDS, BENCH_ROUND_SECONDS, BENCH_CONNECTIONS: positive integers, not '$n'" >&2; exit 2; }
done
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
server_pids=()
cleanup() {
  local pid
  for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
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
# About 20 M fuel: a few ms of guest code, well within the default budget of 50 M.
open(f"{d}/burn.json", "w").write('{"jsonrpc":"2.0","id":1,"method":"burn.burn","params":[1000000]}')
open(f"{d}/add.xml", "w").write(
    '<?xml version="1.0"?><methodCall><methodName>add</methodName><params>'
    "<param><value><int>2</int></value></param><param><value><int>3</int></value></param>"
    "</params></methodCall>")
open(f"{d}/mathadd.xml", "w").write(open(f"{d}/add.xml").read().replace(">add<", ">math.add<"))
PY

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_ready NAME PID URL: polls until the URL answers (any status), for up to 120 s.
wait_ready() {
  local name=$1 pid=$2 url=$3
  for _ in $(seq 1200); do
    if curl -s -o /dev/null -m 1 -X POST "$url"; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited; its log:" >&2
      tail -n 20 "$work/$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "$name at $url did not come up" >&2
  return 1
}

# start NAME CMD...: starts a server pinned to the server CPU, logging to $work/NAME.log.
start() {
  local name=$1; shift
  taskset -c "$server_cpu" "$@" >"$work/$name.log" 2>&1 &
  server_pids+=("$!")
}

# --- servers: all up for the whole run, idle while another is loaded ------------------
fnhost_url=http://127.0.0.1:$(free_port)
FNHOST_ADMIN_TOKEN=fnhost-bench-admin-token RUST_LOG=warn start fnhost \
  "$fnhost_bin" serve --listen "${fnhost_url#http://}" --data-dir "$work/fnhost-data" \
  --deploy-dir "$guest_dir"
wait_ready fnhost "${server_pids[-1]}" "$fnhost_url/rpc"

# bare wasmtime (bench/src/bin/wasm-ref.rs): the floor of a fresh instance per call
bare_url=http://127.0.0.1:$(free_port)
FNHOST_GUEST_DIR=$guest_dir start wasm-ref "$wasm_ref_bin" "${bare_url#http://}"
wait_ready wasm-ref "${server_pids[-1]}" "$bare_url/rpc"

native_url=http://127.0.0.1:$(free_port)
start native "$native_bin" "${native_url#http://}"
wait_ready native "${server_pids[-1]}" "$native_url/rpc"

python_port=$(free_port)
start python "$python" bench/python/xmlrpc_server.py "$python_port"
python_url=http://127.0.0.1:$python_port
wait_ready python "${server_pids[-1]}" "$python_url/RPC2"

# --- rows ------------------------------------------------------------------------------
# One row is one load: server, workload, connections, URL, body, content type, a string the
# answer must contain, calls per request. Loaded in this order in every round; a ratio's two
# rows sit next to each other where they can (the table groups them by server).
row_server=() row_workload=() row_conns=() row_url=() row_body=() row_ctype=() row_expect=() row_calls=()
row_background=()
# row SERVER WORKLOAD CONNS URL BODY CONTENT_TYPE EXPECT CALLS_PER_REQUEST [BACKGROUND_BODY]
# With BACKGROUND_BODY, a second wrk keeps $noisy_conns connections of that body running on
# the same server while the row is measured (noisy neighbours).
row() {
  row_server+=("$1") row_workload+=("$2") row_conns+=("$3") row_url+=("$4")
  row_body+=("$5") row_ctype+=("$6") row_expect+=("$7") row_calls+=("$8") row_background+=("${9:-}")
}
json=application/json
echo_expect=$(cat "$work/echo10k.expect")
row fnhost math.add "$conns" "$fnhost_url/rpc" "$work/add.json" $json '"result":5' 1
row native math.add "$conns" "$native_url/rpc" "$work/add.json" $json '"result":5' 1
row bare-wasmtime math.add "$conns" "$bare_url/rpc" "$work/add.json" $json '"result":5' 1
row bare-wasmtime "add, WAT guest" "$conns" "$bare_url/rpc" "$work/watadd.json" $json '"result":5' 1
row python "math.add XML-RPC" "$conns" "$python_url/RPC2" "$work/add.xml" text/xml '<int>5</int>' 1
row fnhost "math.add XML-RPC" "$conns" "$fnhost_url/RPC2" "$work/mathadd.xml" text/xml '<int>5</int>' 1
row fnhost "batch 100 add" "$conns" "$fnhost_url/rpc" "$work/batch100.json" $json '"id":99,"result":100' 100
row native "batch 100 add" "$conns" "$native_url/rpc" "$work/batch100.json" $json '"id":99,"result":100' 100
row fnhost "echo 10KB" "$conns" "$fnhost_url/rpc" "$work/echo10k.json" $json "$echo_expect" 1
row native "echo 10KB" "$conns" "$native_url/rpc" "$work/echo10k.json" $json "$echo_expect" 1
row fnhost math.add 1 "$fnhost_url/rpc" "$work/add.json" $json '"result":5' 1
row native math.add 1 "$native_url/rpc" "$work/add.json" $json '"result":5' 1
# Noisy neighbours: math.add from 4 connections while 64 others keep `burn` calls of about
# 20 M fuel (a few ms of guest code each, within the default budget) running on the server.
row fnhost "math.add, 64 long calls beside" 4 "$fnhost_url/rpc" "$work/add.json" $json '"result":5' 1 "$work/burn.json"

# Each answer is checked once with curl before any load.
for i in "${!row_server[@]}"; do
  answer=$(curl -s -X POST -H "Content-Type: ${row_ctype[i]}" --data-binary @"${row_body[i]}" "${row_url[i]}")
  if ! grep -qF -- "${row_expect[i]}" <<<"$answer"; then
    echo "${row_server[i]} ${row_workload[i]}: unexpected answer: ${answer:0:300}" >&2
    exit 1
  fi
done

results=$work/results.tsv
: >"$results"

# load ROUND ROW: loads one row for $seconds and appends its line to $results.
load() {
  local round=$1 i=$2
  local out=$work/wrk.txt background=
  if [ -n "${row_background[i]}" ]; then
    BENCH_BODY=${row_background[i]} BENCH_CONTENT_TYPE=${row_ctype[i]} \
      taskset -c "$client_cpu" wrk -t1 -c"$noisy_conns" -d"$((seconds + 2))s" --timeout 10s \
      -s bench/wrk/post.lua "${row_url[i]}" >"$work/wrk-background.txt" &
    background=$!
    sleep 1 # every background connection has a long call running
  fi
  BENCH_BODY=${row_body[i]} BENCH_CONTENT_TYPE=${row_ctype[i]} \
    taskset -c "$client_cpu" wrk -t1 -c"${row_conns[i]}" -d"${seconds}s" --timeout 5s --latency \
    -s bench/wrk/post.lua "${row_url[i]}" >"$out"
  if [ -n "$background" ]; then
    kill "$background" 2>/dev/null || true
    wait "$background" 2>/dev/null || true
  fi
  "$python" - "$out" "$round" "$i" "${row_server[i]}" "${row_workload[i]}" "${row_conns[i]}" \
    "${row_calls[i]}" >>"$results" <<'PY'
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
print("\t".join(sys.argv[2:7] + [str(rps), str(p50), str(p99), str(errors), sys.argv[7]]))
PY
  tail -n1 "$results" >&2
}

for round in $(seq "$rounds"); do
  echo "round $round of $rounds" >&2
  for i in "${!row_server[@]}"; do load "$round" "$i"; done
done

# --- table -----------------------------------------------------------------------------
echo
echo "HTTP, $rounds round(s) × $seconds s per row, wrk -t1 on CPU $client_cpu, all servers up on CPU $server_cpu, $(date -u +%F)"
echo
"$python" - "$results" "$smoke" "$conns" <<'PY'
import sys
from statistics import median
lines = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
smoke = sys.argv[2] == "1"
c = sys.argv[3]
# res[key][round] = measurements; keys in load order
res, order = {}, {}
for rnd, i, server, workload, conns, rps, p50, p99, errors, calls in lines:
    key = (server, workload, conns)
    order.setdefault(key, int(i))
    res.setdefault(key, {})[int(rnd)] = dict(rps=float(rps), p50=float(p50), p99=float(p99),
                                             errors=int(errors), calls=int(calls))
rounds = sorted({int(l[0]) for l in lines})

def per_round(num, den, f=lambda n, d: n["rps"] / d["rps"]):
    """A ratio computed in each round in which both rows ran."""
    if num not in res or den not in res:
        return []
    return [f(res[num][r], res[den][r]) for r in rounds if r in res[num] and r in res[den]]

def show(values, digits=2):
    if not values:
        return "–"
    m = f"{median(values):.{digits}f}×"
    return m if len(values) == 1 else f"{m} ({min(values):.{digits}f}–{max(values):.{digits}f})"

py = ("python", "math.add XML-RPC", c)
rank = {"fnhost": 0, "bare-wasmtime": 1, "native": 2, "python": 3}
print("| server | workload | conns | req/s | calls/s | p50 (µs) | p99 (µs) | errors | fnhost/native | fnhost/python |")
print("|---|---|---|---|---|---|---|---|---|---|")
for key in sorted(res, key=lambda k: (rank.get(k[0], 9), order[k])):
    server, workload, conns = key
    runs = list(res[key].values())
    rps = median(r["rps"] for r in runs)
    calls = runs[0]["calls"]
    # bare-wasmtime rows show their own ratio to native's math.add in that column, for the floor.
    native = ("native", "math.add" if server == "bare-wasmtime" else workload, conns)
    vs_native = show(per_round(key, native)) if server in ("fnhost", "bare-wasmtime") else "–"
    vs_py = "–"
    if server == "fnhost" and "add" in workload and "batch" not in workload and "beside" not in workload:
        vs_py = show(per_round(key, py), 1)
    print(f"| {server} | {workload} | {conns} | {rps:,.0f} | {rps * calls:,.0f} | "
          f"{median(r['p50'] for r in runs):.0f} | {median(r['p99'] for r in runs):.0f} | "
          f"{sum(r['errors'] for r in runs)} | {vs_native} | {vs_py} |")

f = lambda w, s="fnhost": (s, w, c)
ratios = [
    ("fnhost/native, math.add", per_round(f("math.add"), f("math.add", "native"))),
    ("bare wasmtime/native, math.add", per_round(f("math.add", "bare-wasmtime"), f("math.add", "native"))),
    ("bare wasmtime WAT add/native math.add", per_round(f("add, WAT guest", "bare-wasmtime"), f("math.add", "native"))),
    ("fnhost/bare wasmtime, math.add", per_round(f("math.add"), f("math.add", "bare-wasmtime"))),
    ("fnhost/native, echo 10KB", per_round(f("echo 10KB"), f("echo 10KB", "native"))),
    ("fnhost batch of 100 calls/s ÷ single math.add calls/s",
     per_round(f("batch 100 add"), f("math.add"), lambda b, s: b["rps"] * b["calls"] / s["rps"])),
    ("fnhost math.add ÷ Python XML-RPC add (×Python)", per_round(f("math.add"), py)),
    ("fnhost math.add p99/p50 (lower is better)", per_round(f("math.add"), f("math.add"), lambda a, _: a["p99"] / a["p50"])),
    ("fnhost math.add p99 (ms) with 64 long calls beside",
     per_round(("fnhost", "math.add, 64 long calls beside", "4"), ("fnhost", "math.add, 64 long calls beside", "4"), lambda a, _: a["p99"] / 1000)),
]
print()
print(f"Ratios at c={c}, computed in each round, then median and spread across rounds:")
print()
print("| ratio | median | min–max | per round |")
print("|---|---|---|---|")
for name, values in ratios:
    if values:
        unit = "" if "(ms)" in name else "×"
        print(f"| {name} | {median(values):.2f}{unit} | {min(values):.2f}–{max(values):.2f} | "
              f"{' '.join(f'{v:.2f}' for v in values)} |")
ratio = dict(ratios)

# (name, ratio, target): met when the median is ≥ target, or ≤ -target for a negative target.
checks = [
    ("math.add ≥ 0.85× native req/s", ratio["fnhost/native, math.add"], 0.85),
    ("math.add p99 ≤ 3× p50 (ratio p99/p50, lower is better)", ratio["fnhost math.add p99/p50 (lower is better)"], -3),
    ("echo 10KB ≥ 0.6× native req/s", ratio["fnhost/native, echo 10KB"], 0.6),
    ("math.add ≥ 20× Python req/s", ratio["fnhost math.add ÷ Python XML-RPC add (×Python)"], 20),
    ("batch of 100: ≥ 5× the calls/s of single requests", ratio["fnhost batch of 100 calls/s ÷ single math.add calls/s"], 5),
    ("noisy neighbours: math.add p99 ≤ 5 ms beside 64 long calls (ms, lower is better)", ratio["fnhost math.add p99 (ms) with 64 long calls beside"], -5),
]
print()
print("targets (c=%s, median of %d round(s))%s:" % (c, len(rounds), " — smoke run, not comparable" if smoke else ""))
for name, values, target in checks:
    if not values:
        continue
    value = median(values)
    ok = value <= -target if target < 0 else value >= target
    spread = f" ({min(values):.2f}–{max(values):.2f})" if len(values) > 1 else ""
    print(f"  {'met   ' if ok else 'MISSED'} {name}: {value:.2f}{spread}")
PY

# --- start-up and deploy ---------------------------------------------------------------
if ((lifecycle)); then
  echo
  taskset -c "$client_cpu" "$lifecycle_bin" --fnhost "$fnhost_bin" --counts "$counts" \
    --server-cpu "$server_cpu"
fi
