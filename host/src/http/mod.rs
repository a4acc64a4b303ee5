//! HTTP routes: the admin API under `/v1` ([`admin`]), JSON-RPC at `/rpc` and XML-RPC at
//! `/RPC2` ([`calls`]), and `/healthz`.
//!
//! Bodies are limited per route (module uploads vs. calls) and must arrive within the body
//! timeout ([`body`]). Client addresses are checked per route: `--admin-allow-from` for `/v1`,
//! `--allow-from` for calls. Handlers return [`Error`] for failures; a panic anywhere in a
//! handler is caught, counted, and answered as JSON-RPC -32603.

mod admin;
mod body;
mod calls;
pub mod console;
mod keys;
mod versions;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;

use crate::context::Peer;
use crate::error::Error;
use crate::{AppState, rpc};

pub use admin::{Actor, Admin};

/// The whole HTTP surface.
pub fn router(app: AppState) -> Router {
    let panics = app.panics.clone();
    let admin = Router::new()
        .route("/v1/functions", get(admin::list))
        .route(
            "/v1/functions/{name}",
            get(admin::show).put(admin::deploy).delete(admin::remove),
        )
        .route("/v1/functions/{name}/rollback", post(versions::rollback))
        .route(
            "/v1/functions/{name}/versions/{version}/module",
            get(versions::module),
        )
        .route("/v1/functions/{name}/logs", get(versions::logs))
        .route("/v1/keys", get(keys::list_keys).post(keys::create_key))
        .route("/v1/keys/{id}", axum::routing::delete(keys::revoke_key))
        .route("/v1/audit", get(keys::audit))
        .merge(console::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            admin::addresses,
        ));
    let metrics_here = app.config.metrics_listen.is_none();
    let mut router = Router::new();
    if metrics_here {
        router = router.route("/metrics", get(metrics));
    }
    router
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/rpc", post(calls::jsonrpc))
        .route("/RPC2", post(calls::xmlrpc))
        .merge(admin)
        .layer(axum::middleware::from_fn(request_id))
        .layer(catch_panics(panics))
        .with_state(app)
}

/// The header a request id comes in and goes out with.
pub static REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// Takes the client's `x-request-id` when it is sane (1 to 64 characters of `[A-Za-z0-9._:-]`)
/// or makes one, runs the request inside a span carrying it (so every log line of the request
/// names it), and returns it on the answer.
async fn request_id(mut request: Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    let given = request
        .headers()
        .get(&REQUEST_ID)
        .map(HeaderValue::as_bytes)
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        })
        .and_then(|v| std::str::from_utf8(v).ok());
    let id = match given {
        Some(v) => crate::context::RequestId::Given(std::sync::Arc::from(v)),
        None => crate::context::RequestId::generated(),
    };
    let header = HeaderValue::from_str(&id.to_string()).ok();
    let span = tracing::info_span!("request", request_id = %id);
    request.extensions_mut().insert(id);
    let mut response = next.run(request).instrument(span).await;
    if let Some(h) = header {
        response.headers_mut().insert(REQUEST_ID.clone(), h);
    }
    response
}

/// Answers a panicking handler with JSON-RPC -32603 (HTTP 500) and counts it in `panics`.
pub fn catch_panics(panics: Arc<AtomicU64>) -> CatchPanicLayer<PanicAnswer> {
    CatchPanicLayer::custom(PanicAnswer(panics))
}

/// See [`catch_panics`].
#[derive(Clone)]
pub struct PanicAnswer(Arc<AtomicU64>);

impl tower_http::catch_panic::ResponseForPanic for PanicAnswer {
    type ResponseBody = axum::body::Body;

    fn response_for_panic(
        &mut self,
        _panic: Box<dyn std::any::Any + Send + 'static>,
    ) -> axum::http::Response<Self::ResponseBody> {
        self.0.fetch_add(1, Ordering::Relaxed);
        tracing::error!("a request handler panicked; answered -32603");
        let mut out = Vec::new();
        rpc::jsonrpc::write_error(&mut out, None, &Error::internal());
        json_response(StatusCode::INTERNAL_SERVER_ERROR, out)
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The client address of a request (`crate::net::client_ip`), `None` when it did not come
/// over a socket (router tests).
fn client_ip(app: &AppState, request: &Request) -> Option<std::net::IpAddr> {
    let peer = request.extensions().get::<Peer>()?.0;
    let live = app.live.load();
    Some(crate::net::client_ip(
        peer.ip(),
        request.headers(),
        &live.trusted_proxies,
    ))
}

/// The metrics listener's own router (`--metrics-listen`): `/metrics` only.
pub fn metrics_router(app: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_anywhere))
        .with_state(app)
}

/// `/metrics` on the main listener: for `--metrics-allow-from` only (default loopback).
async fn metrics(State(app): State<AppState>, request: Request) -> Response {
    if let Some(ip) = client_ip(&app, &request)
        && !crate::net::allows_nonempty(&app.live.load().metrics_allow_from, ip)
    {
        return axum::response::IntoResponse::into_response(crate::net::refused(
            ip,
            "read the metrics",
        ));
    }
    metrics_anywhere(State(app)).await
}

async fn metrics_anywhere(State(app): State<AppState>) -> Response {
    let mut response = Response::new(Body::from(crate::metrics::render(&app)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// `/readyz`: 200 when this replica is caught up with its store (always, for a local store),
/// else 503 saying why. A load balancer takes a replica out of rotation on 503.
async fn readyz(State(app): State<AppState>) -> Response {
    use axum::response::IntoResponse;
    let r = app.replica.readiness(app.registry.store().as_ref());
    let status = if r.ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(r.json)).into_response()
}

async fn healthz(State(app): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "status": "ok",
        "modules": app.registry.list().len(),
        "calls_in_flight": app.calls_in_flight(),
        "panics": app.panics.load(Ordering::Relaxed),
        "memory_reset": if crate::sandbox::memory_reset().pagemap_scan {
            "pagemap_scan"
        } else {
            "manual"
        },
    }))
}
