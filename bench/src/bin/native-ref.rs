//! `native-ref`: the native reference server the HTTP benchmark compares fnhost against.
//!
//! It does fnhost's JSON-RPC work for two methods without a sandbox: `POST /rpc` takes the body
//! as bytes, parses it with serde_json (members kept raw, as fnhost does), answers `math.add`
//! by calling the `math` guest's own Rust function natively (same params decoding, same
//! checked add) and `echo.echo` by returning the params verbatim, and writes the response the
//! way fnhost does (`{"jsonrpc":"2.0","id":..,"result":..}`, `application/json`). Batches are
//! answered too. Anything else is a -32601 error. Same 1 MiB body limit as fnhost.
//!
//! Usage: `native-ref [ADDR]` (default `127.0.0.1:7879`); prints `listening on ADDR`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

fn write_error(out: &mut Vec<u8>, id: Option<&RawValue>, code: i32, message: &str) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.map_or("null", RawValue::get).as_bytes());
    out.extend_from_slice(b",\"error\":");
    let _ = serde_json::to_writer(
        &mut *out,
        &serde_json::json!({"code": code, "message": message}),
    );
    out.push(b'}');
}

/// Answers one request value into `out`.
fn one(raw: &RawValue, out: &mut Vec<u8>) {
    let Ok(req) = serde_json::from_str::<Request<'_>>(raw.get()) else {
        return write_error(out, None, -32600, "invalid request");
    };
    if req.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
        return write_error(out, req.id, -32600, "`jsonrpc` must be \"2.0\"");
    }
    let Some(method) = req
        .method
        .and_then(|m| serde_json::from_str::<&str>(m.get()).ok())
    else {
        return write_error(out, req.id, -32600, "`method` must be a string");
    };
    let params = req.params.map_or(&b""[..], |p| p.get().as_bytes());
    // The guest glue's answer: a tag byte (0 ok, 1 error), then JSON.
    let answer = match method {
        "math.add" => math::__fnhost_invoke_add(params),
        "echo.echo" => echo::__fnhost_invoke_echo(params),
        _ => return write_error(out, req.id, -32601, "method not found"),
    };
    let Some(id) = req.id else { return };
    match answer.split_first() {
        Some((0, result)) => {
            out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
            out.extend_from_slice(id.get().as_bytes());
            out.extend_from_slice(b",\"result\":");
            out.extend_from_slice(result);
            out.push(b'}');
        }
        _ => write_error(out, Some(id), -32010, "guest error"),
    }
}

async fn rpc(body: Bytes) -> Response {
    let mut out = Vec::with_capacity(128);
    match serde_json::from_slice::<&RawValue>(&body) {
        Err(_) => write_error(&mut out, None, -32700, "parse error"),
        Ok(raw) if raw.get().starts_with('[') => {
            match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
                Ok(items) if !items.is_empty() => {
                    for item in items {
                        let mut item_out = Vec::new();
                        one(item, &mut item_out);
                        if !item_out.is_empty() {
                            out.push(if out.is_empty() { b'[' } else { b',' });
                            out.extend_from_slice(&item_out);
                        }
                    }
                    if !out.is_empty() {
                        out.push(b']');
                    }
                }
                _ => write_error(&mut out, None, -32600, "invalid batch"),
            }
        }
        Ok(raw) => one(raw, &mut out),
    }
    if out.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7879".into());
    let app = Router::new()
        .route("/rpc", post(rpc).layer(DefaultBodyLimit::max(1 << 20)))
        .route("/healthz", get(|| async { "{\"status\":\"ok\"}" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
