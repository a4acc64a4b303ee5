//! In-process calls/s through fnhost's real dispatcher on the cores this process may use
//! (`taskset` picks them): the multi-core note of docs/PERFORMANCE.md (*What is shared between
//! cores on the call path*). One runtime worker per usable core, `CORES_TASKS` tasks (default
//! 16) each calling `math.add` in a loop for `CORES_SECONDS` (default 2) per round,
//! `CORES_ROUNDS` rounds (default 3); prints calls/s per round. `CORES_HOST=bare` (or `wat`)
//! makes the same calls on the bare wasmtime host of `bench/src/bare.rs` (the Rust guest, or
//! the WAT `add`) instead: what wasmtime and the kernel scale to without fnhost;
//! `CORES_HOST=native` runs 100 native `add`s (the guest crate's own entry point) per counted
//! call: CPU work sharing nothing, what the machine itself scales to.
//!
//! `for c in 0 0,1 0 0,1; do taskset -c $c target/release/examples/cores; done`
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism()?.get();
    let (tasks, seconds, rounds) = (
        env("CORES_TASKS", 16),
        env("CORES_SECONDS", 2),
        env("CORES_ROUNDS", 3),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()?;
    let host = std::env::var("CORES_HOST").unwrap_or("fnhost".into());
    let bare = Arc::new(fnhost_bench::bare::Bare::new()?);
    let method = if host == "wat" { "wat.add" } else { "math.add" };
    let data = tempfile::tempdir()?;
    let config = fnhost::Config::new(data.path());
    rt.block_on(async {
        let app = fnhost::App::start(config).await?;
        app.registry
            .deploy(
                "math",
                Arc::from(fnhost_bench::guest_bytes("math")?),
                fnhost::config::LimitOverrides::default(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for round in 0..rounds {
            let (calls, stop) = (
                Arc::new(AtomicU64::new(0)),
                Arc::new(AtomicBool::new(false)),
            );
            let workers: Vec<_> = (0..tasks)
                .map(|_| {
                    let (app, calls, stop) = (app.clone(), calls.clone(), stop.clone());
                    let (bare, host) = (bare.clone(), host.clone());
                    tokio::spawn(async move {
                        let ctx = fnhost::context::CallContext::in_process();
                        while !stop.load(Ordering::Relaxed) {
                            if host == "native" {
                                for _ in 0..100 {
                                    let out =
                                        math::__fnhost_invoke_add(std::hint::black_box(b"[2,3]"));
                                    assert_eq!(&out[..], b"\x005");
                                }
                            } else if host == "fnhost" {
                                let out = fnhost::rpc::dispatch(&app, &ctx, method, b"[2,3]")
                                    .await
                                    .expect("math.add answers");
                                assert_eq!(out.result.get(), "5");
                            } else {
                                let out = bare.answer(method, b"[2,3]").expect("a bare method");
                                assert!(out.expect("the bare call answers").ends_with(b"5"));
                            }
                            calls.fetch_add(1, Ordering::Relaxed);
                            // A CPU-bound call never waits: let the other tasks have a turn.
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            stop.store(true, Ordering::Relaxed);
            for w in workers {
                w.await?;
            }
            let rate = calls.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
            println!("{host} cores {cores} tasks {tasks} round {round}: {rate:.0} calls/s");
        }
        anyhow::Ok(())
    })
}
