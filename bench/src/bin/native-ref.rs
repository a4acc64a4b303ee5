//! `native-ref`: the native reference server the HTTP benchmark compares fnhost against.
//!
//! fnhost's JSON-RPC work for two methods without a sandbox ([`fnhost_bench::refserver::serve`]):
//! `math.add` is answered by calling the `math` guest's own Rust function natively (same params
//! decoding, same checked add, same result encoding) and `echo.echo` by the `echo` guest's.
//! Anything else is a -32601 error.
//!
//! Usage: `native-ref [ADDR]` (default `127.0.0.1:7879`); prints `listening on ADDR`.

use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7879".into());
    fnhost_bench::refserver::serve(
        &addr,
        Arc::new(|method: &str, params: &[u8]| match method {
            "math.add" => Some(math::__fnhost_invoke_add(params)),
            "echo.echo" => Some(echo::__fnhost_invoke_echo(params)),
            _ => None,
        }),
    )
    .await?;
    Ok(())
}
