//! `AB_CALLS` in-process calls of `math.add` through fnhost's real dispatcher (as
//! `benches/sandbox.rs` makes them), for counting fnhost's own instructions per call under
//! callgrind against `ab_guest`'s bare-wasmtime call (docs/PERFORMANCE.md, *Issue 16*).
//! `FNHOST_BENCH_SLOTS` sets the instance pool's size (2 under valgrind).
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let calls: usize = std::env::var("AB_CALLS")
        .unwrap_or("10000".into())
        .parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let data = tempfile::tempdir()?;
    let mut config = fnhost::Config::new(data.path());
    if let Some(slots) = std::env::var("FNHOST_BENCH_SLOTS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        config.max_concurrent_calls = slots;
    }
    let ctx = fnhost::context::CallContext::in_process();
    rt.block_on(async {
        let app = fnhost::App::start(config).await?;
        let bytes = fnhost_bench::guest_bytes("math")?;
        app.registry
            .deploy(
                "math",
                Arc::from(bytes),
                fnhost::config::LimitOverrides::default(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for _ in 0..calls {
            let out = fnhost::rpc::dispatch(&app, &ctx, "math.add", b"[2,3]")
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            assert_eq!(out.result.get(), "5");
        }
        anyhow::Ok(())
    })
}
