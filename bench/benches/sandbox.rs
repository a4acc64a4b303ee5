//! In-process benchmark: one call through fnhost's real dispatcher and sandbox (fresh wasmtime
//! instance per call) against the same Rust function called natively.
//!
//! "Native" is the guest crate's own generated entry point (`math::__fnhost_invoke_add`,
//! `echo::__fnhost_invoke_echo`) linked into this binary: the same params decoding, the same
//! function, the same result encoding, minus the sandbox. "fnhost" is
//! `fnhost::rpc::dispatch(app, ctx, method, params)` on an `App` with the example guests deployed:
//! method lookup, params check, concurrency slots, a fresh instance with fuel and a deadline,
//! copying params in and the result out, usage accounting. No HTTP. Between the two,
//! "bare-wasmtime" ([`fnhost_bench::bare`]) makes the same guest call in a fresh instance from
//! fnhost's own engine, with no fnhost code, and calls a hand-written WAT `add`
//! the same way: the floor a fresh instance per call sets, with and without the Rust guest.
//!
//! Criterion reports means; after it, a timed loop of single calls prints p50/p99 per call and
//! the overhead over native. `cargo bench -p fnhost-bench --bench sandbox` for numbers;
//! without `--bench` (e.g. `cargo test -p fnhost-bench --benches`) every case runs a few
//! times only, as a smoke test.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use fnhost::config::{Config, LimitOverrides};
use fnhost::context::CallContext;
use fnhost::{App, AppState};
use fnhost_bench::bare::Bare;
use fnhost_bench::{Percentiles, guest_bytes, us};

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: AppState,
    /// The caller of every in-process call, as a front end would build it once per request.
    ctx: CallContext,
    bare: Bare,
    echo_params: Vec<u8>,
    /// Counters like those every call records into (what `/metrics` costs the hot path).
    stats: fnhost::metrics::FunctionStats,
    _data: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let data = tempfile::tempdir().expect("a temp dir");
        let mut config = Config::new(data.path());
        config.admin_token = Some("bench".into());
        let app = rt.block_on(async {
            let app = App::start(config).await.expect("fnhost starts");
            for name in ["math", "echo"] {
                let bytes = guest_bytes(name).unwrap_or_else(|e| panic!("{e}"));
                app.registry
                    .deploy(name, Arc::from(bytes), LimitOverrides::default())
                    .await
                    .unwrap_or_else(|e| panic!("deploying {name}: {e:?}"));
            }
            app
        });
        let fixture = Fixture {
            rt,
            app,
            ctx: CallContext::in_process(),
            bare: Bare::new().unwrap_or_else(|e| panic!("the bare wasmtime host: {e:#}")),
            echo_params: echo_params(10 * 1024),
            stats: fnhost::metrics::FunctionStats::default(),
            _data: data,
        };
        // Both paths must give the same answer, or the comparison means nothing.
        assert_eq!(fixture.fnhost("math.add", b"[2,3]"), b"5");
        assert_eq!(&math::__fnhost_invoke_add(b"[2,3]")[..], b"\x005");
        for method in ["math.add", "wat.add"] {
            let out = fixture
                .bare
                .answer(method, b"[2,3]")
                .expect("a bare method");
            assert_eq!(out.unwrap_or_else(|e| panic!("{method}: {e:#}")), b"\x005");
        }
        let echoed = fixture.fnhost("echo.echo", &fixture.echo_params);
        assert_eq!(echoed, fixture.echo_params);
        fixture
    }

    fn fnhost(&self, method: &str, params: &[u8]) -> Vec<u8> {
        let out = self
            .rt
            .block_on(fnhost::rpc::dispatch(&self.app, &self.ctx, method, params))
            .unwrap_or_else(|e| panic!("{method}: {e:?}"));
        out.result.get().as_bytes().to_vec()
    }
}

/// A JSON array of objects, `len` bytes long give or take a few: the 10 KB echo payload.
fn echo_params(len: usize) -> Vec<u8> {
    let mut items = Vec::new();
    let mut size = 2;
    let mut i = 0;
    while size < len {
        let item = format!(r#"{{"i":{i},"name":"item number {i}","tags":["a","b"],"v":{i}.5}}"#);
        size += item.len() + 1;
        items.push(item);
        i += 1;
    }
    format!("[{}]", items.join(",")).into_bytes()
}

type Case<'a> = (&'a str, Box<dyn Fn() + 'a>);

fn cases(f: &Fixture) -> Vec<Case<'_>> {
    let echo = f.echo_params.as_slice();
    vec![
        (
            "native/math.add",
            Box::new(|| {
                black_box(math::__fnhost_invoke_add(black_box(b"[2,3]")));
            }),
        ),
        (
            "bare-wasmtime/wat.add",
            Box::new(|| {
                black_box(f.bare.answer("wat.add", black_box(b"[2,3]")));
            }),
        ),
        (
            "bare-wasmtime/math.add",
            Box::new(|| {
                black_box(f.bare.answer("math.add", black_box(b"[2,3]")));
            }),
        ),
        (
            "fnhost/math.add",
            Box::new(|| {
                let out = f.rt.block_on(fnhost::rpc::dispatch(
                    &f.app,
                    &f.ctx,
                    "math.add",
                    black_box(b"[2,3]"),
                ));
                black_box(out.expect("math.add"));
            }),
        ),
        (
            // The metrics' share of one call: the outcome counter, fuel and time totals, and
            // the latency and fuel histograms (relaxed atomic adds, no lock, no allocation).
            "fnhost/metrics record (per call)",
            Box::new(|| {
                f.stats
                    .record(black_box(4_096), black_box(37), black_box(None));
            }),
        ),
        (
            "native/echo.echo 10KB",
            Box::new(move || {
                black_box(echo::__fnhost_invoke_echo(black_box(echo)));
            }),
        ),
        (
            "fnhost/echo.echo 10KB",
            Box::new(move || {
                let out = f.rt.block_on(fnhost::rpc::dispatch(
                    &f.app,
                    &f.ctx,
                    "echo.echo",
                    black_box(echo),
                ));
                black_box(out.expect("echo.echo"));
            }),
        ),
    ]
}

fn percentiles(case: &dyn Fn(), iterations: usize) -> Percentiles {
    for _ in 0..iterations / 10 {
        case();
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        case();
        samples.push(t.elapsed());
    }
    Percentiles::new(samples)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench_mode = args.iter().any(|a| a == "--bench");
    // `cargo bench -p fnhost-bench --bench sandbox -- FILTER` runs `sandbox FILTER --bench`:
    // the timed loop below honours the same filter as criterion (its first positional
    // argument), so one case can be profiled alone.
    let filter = args.get(1).filter(|a| !a.starts_with('-')).cloned();
    let fixture = Fixture::new();
    let mut cases = cases(&fixture);
    if let Some(filter) = &filter {
        cases.retain(|(name, _)| name.contains(filter.as_str()));
    }

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for (name, case) in &cases {
        c.bench_function(name, |b| b.iter(case));
    }
    c.final_summary();

    let iterations = if bench_mode { 20_000 } else { 20 };
    println!(
        "\nper call, {iterations} timed calls each, echo params {} bytes\n",
        fixture.echo_params.len()
    );
    println!(
        "| case | p50 (µs) | p99 (µs) | overhead over native p50 (µs) | overhead p99 (µs) | over bare wasmtime p50 (µs) |"
    );
    println!("|---|---|---|---|---|---|");
    let mut native: Option<Percentiles> = None;
    let mut bare: Option<Percentiles> = None;
    let over = |p: &Percentiles, base: &Option<Percentiles>, at: fn(&Percentiles) -> Duration| {
        base.as_ref()
            .map_or_else(|| "–".into(), |b| us(at(p).saturating_sub(at(b))))
    };
    for (name, case) in &cases {
        let p = percentiles(case, iterations);
        let (over50, over99, over_bare) = if name.starts_with("native/") {
            ("–".into(), "–".into(), "–".into())
        } else {
            let over_bare = if name.starts_with("fnhost/math.add") {
                over(&p, &bare, Percentiles::p50)
            } else {
                "–".into()
            };
            (
                over(&p, &native, Percentiles::p50),
                over(&p, &native, Percentiles::p99),
                over_bare,
            )
        };
        println!(
            "| {name} | {} | {} | {over50} | {over99} | {over_bare} |",
            us(p.p50()),
            us(p.p99())
        );
        if name.starts_with("native/") {
            native = Some(p);
        } else if *name == "bare-wasmtime/math.add" {
            bare = Some(p);
        }
    }
}
