//! `wasm-ref`: the HTTP benchmark's bare-wasmtime reference: what a fresh wasmtime instance per
//! call costs over HTTP with nothing of fnhost around it.
//!
//! The same server as `native-ref` ([`fnhost_bench::refserver::serve`]) answering `math.add`
//! (the `math` guest through the guest ABI) and `wat.add` (a hand-written `add`) with
//! [`fnhost_bench::bare::Bare`]: see there for what it does and does not do.
//!
//! Usage: `wasm-ref [ADDR]` (default `127.0.0.1:7880`); the guest comes from
//! `FNHOST_GUEST_DIR` or `target/guests/wasm32-unknown-unknown/guest`.

use std::sync::Arc;

use fnhost_bench::bare::Bare;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7880".into());
    let bare = Bare::new()?;
    fnhost_bench::refserver::serve(
        &addr,
        Arc::new(move |method: &str, params: &[u8]| {
            let output = bare.answer(method, params)?;
            // A failed call answers with a guest-error status byte (the server makes it -32010).
            Some(output.unwrap_or_else(|e| {
                eprintln!("{method} failed: {e:#}");
                vec![1]
            }))
        }),
    )
    .await?;
    Ok(())
}
