//! The reference servers of the HTTP benchmark (docs/PERFORMANCE.md), minus what they run.
//!
//! [`serve`] is fnhost's JSON-RPC work without fnhost: `POST /rpc` takes the body as bytes,
//! parses it with serde_json (members kept raw, as fnhost does), hands each call's method and
//! raw params to an answer function, and writes the response the way fnhost does
//! (`{"jsonrpc":"2.0","id":..,"result":..}`, `application/json`). Batches are answered too.
//! Same 1 MiB body limit as fnhost. The answer function says what runs the call: natively
//! (`native-ref`), or in a fresh wasmtime instance with nothing of fnhost around it
//! (`wasm-ref`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Answers one call: `(method, raw params)` → the guest glue's output (a status byte, 0 for a
/// result, then JSON: `docs/ABI.md`), or `None` for an unknown method.
pub type Answer = dyn Fn(&str, &[u8]) -> Option<Vec<u8>> + Send + Sync;

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
fn one(answer: &Answer, raw: &RawValue, out: &mut Vec<u8>) {
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
    let Some(output) = answer(method, params) else {
        return write_error(out, req.id, -32601, "method not found");
    };
    let Some(id) = req.id else { return };
    match output.split_first() {
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

async fn rpc(State(answer): State<Arc<Answer>>, body: Bytes) -> Response {
    let mut out = Vec::with_capacity(128);
    match serde_json::from_slice::<&RawValue>(&body) {
        Err(_) => write_error(&mut out, None, -32700, "parse error"),
        Ok(raw) if raw.get().starts_with('[') => {
            match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
                Ok(items) if !items.is_empty() => {
                    for item in items {
                        let mut item_out = Vec::new();
                        one(&*answer, item, &mut item_out);
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
        Ok(raw) => one(&*answer, raw, &mut out),
    }
    if out.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

/// `POST /rpc` answered by `answer`, and `GET /healthz`.
pub fn router(answer: Arc<Answer>) -> Router {
    Router::new()
        .route("/rpc", post(rpc).layer(DefaultBodyLimit::max(1 << 20)))
        .route("/healthz", get(|| async { "{\"status\":\"ok\"}" }))
        .with_state(answer)
}

/// Serves [`router`] on `addr` until the process is killed; prints `listening on ADDR` once
/// bound.
pub async fn serve(addr: &str, answer: Arc<Answer>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, router(answer)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use tower::ServiceExt;

    /// `add` answers like the guest glue: status byte 0, then the sum as JSON.
    fn app() -> Router {
        router(Arc::new(|method: &str, params: &[u8]| {
            (method == "t.add").then(|| {
                let (x, y): (i64, i64) = serde_json::from_slice(params).unwrap();
                let mut out = vec![0];
                serde_json::to_writer(&mut out, &(x + y)).unwrap();
                out
            })
        }))
    }

    async fn post_rpc(body: &str) -> (StatusCode, String) {
        let request = HttpRequest::post("/rpc")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn answers_a_call_as_fnhost_does() {
        let (status, body) =
            post_rpc(r#"{"jsonrpc":"2.0","id":7,"method":"t.add","params":[2,3]}"#).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, r#"{"jsonrpc":"2.0","id":7,"result":5}"#);
    }

    #[tokio::test]
    async fn answers_batches_and_skips_notifications() {
        let (_, body) = post_rpc(
            r#"[{"jsonrpc":"2.0","id":1,"method":"t.add","params":[1,1]},
                {"jsonrpc":"2.0","method":"t.add","params":[5,5]},
                {"jsonrpc":"2.0","id":2,"method":"t.add","params":[2,2]}]"#,
        )
        .await;
        assert_eq!(
            body,
            r#"[{"jsonrpc":"2.0","id":1,"result":2},{"jsonrpc":"2.0","id":2,"result":4}]"#
        );
        let (status, body) = post_rpc(r#"{"jsonrpc":"2.0","method":"t.add","params":[1,1]}"#).await;
        assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
    }

    #[tokio::test]
    async fn errors_name_the_cause() {
        let (_, body) = post_rpc(r#"{"jsonrpc":"2.0","id":1,"method":"t.nope"}"#).await;
        assert!(body.contains("-32601"), "{body}");
        let (_, body) = post_rpc(r#"{"jsonrpc":"1.0","id":1,"method":"t.add"}"#).await;
        assert!(body.contains("-32600"), "{body}");
        let (_, body) = post_rpc("{not json").await;
        assert!(body.contains("-32700"), "{body}");
    }
}
