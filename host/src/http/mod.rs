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
        .route("/v1/keys", get(admin::list_keys).post(admin::create_key))
        .route("/v1/keys/{id}", axum::routing::delete(admin::revoke_key))
        .route("/v1/audit", get(admin::audit))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            admin::addresses,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/rpc", post(calls::jsonrpc))
        .route("/RPC2", post(calls::xmlrpc))
        .merge(admin)
        .layer(catch_panics(panics))
        .with_state(app)
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

async fn healthz(State(app): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "status": "ok",
        "modules": app.registry.list().len(),
        "calls_in_flight": app.calls_in_flight(),
        "panics": app.panics.load(Ordering::Relaxed),
    }))
}
