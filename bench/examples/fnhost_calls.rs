//! `AB_CALLS` in-process calls of `math.add` through fnhost's real dispatcher (as
//! `benches/sandbox.rs` makes them), for counting fnhost's own instructions per call under
//! callgrind against `ab_guest`'s bare-wasmtime call (docs/PERFORMANCE.md, *Issue 16*).
//! `FNHOST_BENCH_SLOTS` sets the instance pool's size (2 under valgrind).
//!
//! `AB_MODE=single` sends each call as a JSON-RPC request body through `handle_jsonrpc`,
//! `AB_MODE=batch` as members of 100-call batch bodies (the bench's `batch 100 add` row, without
//! HTTP); the default calls `dispatch` directly. `AB_TIME=1` prints ns per call instead of
//! running quietly for callgrind.
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
        let mode = std::env::var("AB_MODE").unwrap_or_default();
        let single = br#"{"jsonrpc":"2.0","id":7,"method":"math.add","params":[2,3]}"#;
        let batch = format!(
            "[{}]",
            (0..100)
                .map(|n| format!(
                    r#"{{"jsonrpc":"2.0","id":{n},"method":"math.add","params":[{n},1]}}"#
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        if std::env::var_os("AB_SIZES").is_some() {
            let f = fnhost::rpc::dispatch(&app, &ctx, "math.add", b"[2,3]");
            println!("dispatch future: {} bytes", std::mem::size_of_val(&f));
            drop(f);
            let f = fnhost::rpc::handle_jsonrpc(&app, &ctx, b"[]");
            println!("handle_jsonrpc future: {} bytes", std::mem::size_of_val(&f));
            drop(f);
        }
        let t0 = std::time::Instant::now();
        match mode.as_str() {
            "single" => {
                for _ in 0..calls {
                    let reply = fnhost::rpc::handle_jsonrpc(&app, &ctx, single).await;
                    assert!(reply.body.is_some_and(|b| b.ends_with(b"\"result\":5}")));
                }
            }
            "batch" => {
                for _ in 0..calls.div_ceil(100) {
                    let reply = fnhost::rpc::handle_jsonrpc(&app, &ctx, batch.as_bytes()).await;
                    let body = reply.body.expect("a batch answers");
                    assert!(body.ends_with(br#""id":99,"result":100}]"#));
                }
            }
            _ => {
                for _ in 0..calls {
                    let out = fnhost::rpc::dispatch(&app, &ctx, "math.add", b"[2,3]")
                        .await
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                    assert_eq!(out.result.get(), "5");
                }
            }
        }
        if std::env::var_os("AB_TIME").is_some() {
            let ns = t0.elapsed().as_nanos() as f64 / calls as f64;
            println!(
                "{:6} {ns:.0} ns per call",
                if mode.is_empty() { "direct" } else { &mode }
            );
        }
        anyhow::Ok(())
    })
}
