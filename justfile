# Recipes a contributor needs. The README's two commands (scripts/serve.sh, scripts/test.sh)
# work without `just`; these are shortcuts around the same steps.

set shell := ["bash", "-euo", "pipefail", "-c"]

guest_dir := "target/guests/wasm32-unknown-unknown/guest"

# Build the example guests for wasm32-unknown-unknown.
guests:
    scripts/build-guests.sh

# Build the example guest written in C (functions/cmath); installs clang and lld when missing.
c-guest:
    functions/cmath/build.sh

# Serve on 127.0.0.1:7878 with the examples deployed.
serve *ARGS:
    scripts/serve.sh {{ARGS}}

# The whole test suite.
test *ARGS:
    scripts/test.sh {{ARGS}}

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

fmt:
    cargo fmt --all

# The full benchmark suite (docs/PERFORMANCE.md): HTTP vs native and Python, start-up,
# deploy and batch (bench/run.sh, release build, all servers up at once and loaded in rounds:
# BENCH_ROUNDS (5) × BENCH_ROUND_SECONDS (2) per row, medians and per-round ratios), then the
# in-process criterion benchmark. Run it on an idle machine.
bench:
    bench/run.sh
    cargo bench -p fnhost-bench --bench sandbox

# User-space instructions per add request under callgrind: fnhost, bare wasmtime with the Rust
# guest and with the WAT add, native; with the ratios Rust ÷ WAT and fnhost ÷ bare. A count that
# does not drift with the load on a shared VM (docs/PERFORMANCE.md). ARGS: an optional body file
# (fnhost and native only).
instructions *ARGS:
    bench/instructions.sh {{ARGS}}

# The same benchmarks for a few seconds each, only to keep them working (CI runs this).
bench-smoke:
    cargo test -p fnhost-bench --benches
    bench/run.sh --smoke

# Fuzz one target (jsonrpc_body, xmlrpc_body, params_check, inspect_module) for SECS seconds.
# Needs a nightly toolchain and `cargo install cargo-fuzz`; crashes land in fuzz/artifacts/.
fuzz TARGET SECS="60":
    cd fuzz && cargo +nightly fuzz run {{TARGET}} -- -max_total_time={{SECS}}

# Check deploy/ offline: Kubernetes manifests against the bundled schemas, `nginx -t` on the example.
validate-deploy:
    scripts/validate-deploy.sh

# What CI runs.
ci:
    bash .ci/run
