//! HTTP routes: the admin API under `/v1`, JSON-RPC at `/rpc`, and `/healthz`.
//!
//! Bodies are limited per route (module uploads vs. calls). Admin writes need the bearer token,
//! checked before the body is read. Handlers return [`Error`] for failures; a panic anywhere in
//! a handler is caught, counted, and answered as JSON-RPC -32603.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde_json::{Value, json};
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::LimitOverrides;
use crate::error::{Error, Kind};
use crate::registry::{self, Deployed, Entry};
use crate::{AppState, rpc};

/// The whole HTTP surface.
pub fn router(app: AppState) -> Router {
    let panics = app.panics.clone();
    let (module_limit, request_limit) = (app.config.max_module_bytes, app.config.max_request_bytes);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/functions", get(list))
        .route(
            "/v1/functions/{name}",
            get(show)
                .put(deploy)
                .delete(remove)
                .layer(DefaultBodyLimit::max(module_limit))
                .layer(middleware::from_fn_with_state(
                    LengthCheck {
                        limit: module_limit,
                        what: "module",
                        jsonrpc: false,
                    },
                    check_length,
                )),
        )
        .route(
            "/rpc",
            post(jsonrpc)
                .layer(DefaultBodyLimit::max(request_limit))
                .layer(middleware::from_fn_with_state(
                    LengthCheck {
                        limit: request_limit,
                        what: "request body",
                        jsonrpc: true,
                    },
                    check_length,
                )),
        )
        .route(
            "/RPC2",
            post(xmlrpc).layer(DefaultBodyLimit::max(request_limit)),
        )
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

/// Proof of the admin token; extracting it fails with 401 before the body is read.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Error> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        if app.admin.accepts(given) {
            Ok(Admin)
        } else {
            Err(Error::new(
                Kind::Unauthorized,
                "missing or wrong admin token: send `Authorization: Bearer <token>`",
            ))
        }
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// A route's body limit, checked against `Content-Length` before the body is read.
#[derive(Clone, Copy)]
struct LengthCheck {
    limit: usize,
    what: &'static str,
    /// Answer in JSON-RPC form rather than the admin API's.
    jsonrpc: bool,
}

fn too_large(limit: usize, what: &str) -> Error {
    Error::new(
        Kind::PayloadTooLarge,
        format!("the {what} is larger than the limit of {limit} bytes"),
    )
    .with("limit_bytes", limit)
}

/// Refuses an announced body over the limit at once, so a client streaming a huge upload is
/// told before it sends it (the limit while reading still applies to chunked bodies).
async fn check_length(
    State(check): State<LengthCheck>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(len) if len > check.limit as u64 => {
            let e = too_large(check.limit, check.what);
            if check.jsonrpc {
                let mut out = Vec::new();
                rpc::jsonrpc::write_error(&mut out, None, &e);
                json_response(e.kind.status(), out)
            } else {
                e.into_response()
            }
        }
        _ => next.run(request).await,
    }
}

fn body_error(rejection: BytesRejection, limit: usize, what: &str) -> Error {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limit, what)
    } else {
        Error::new(
            Kind::InvalidRequest,
            format!("cannot read the request body: {rejection}"),
        )
    }
}

async fn healthz(State(app): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "modules": app.registry.list().len(),
        "calls_in_flight": app.config.max_concurrent_calls as usize - app.call_slots.available_permits(),
        "panics": app.panics.load(Ordering::Relaxed),
    }))
}

async fn list(State(app): State<AppState>) -> Json<Value> {
    let functions: Vec<Value> = app
        .registry
        .list()
        .iter()
        .map(|e| describe(e, false))
        .collect();
    Json(json!({ "functions": functions }))
}

async fn show(State(app): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, Error> {
    registry::validate_name(&name)?;
    let entry = app
        .registry
        .get(&name)
        .ok_or_else(|| registry::not_found(&name))?;
    Ok(Json(describe(&entry, true)))
}

async fn deploy(
    State(app): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
    query: Result<Query<LimitOverrides>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), Error> {
    registry::validate_name(&name)?;
    let Query(overrides) = query.map_err(|e| {
        Error::new(
            Kind::BadLimits,
            format!(
                "bad limit parameters (fuel, timeout_ms, memory_mib): {}",
                e.body_text()
            ),
        )
    })?;
    let body = body.map_err(|r| body_error(r, app.config.max_module_bytes, "module"))?;
    match app
        .registry
        .deploy(&name, Arc::from(&body[..]), overrides)
        .await?
    {
        Deployed::Created(entry) => Ok((StatusCode::CREATED, Json(describe(&entry, true)))),
        Deployed::Unchanged(entry) => Ok((StatusCode::OK, Json(describe(&entry, true)))),
    }
}

async fn remove(
    State(app): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
) -> Result<Json<Value>, Error> {
    registry::validate_name(&name)?;
    let entry = app.registry.remove(&name).await?;
    Ok(Json(json!({
        "name": &*entry.name,
        "removed": true,
        "versions": entry.record.versions.len(),
    })))
}

async fn jsonrpc(State(app): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let e = body_error(rejection, app.config.max_request_bytes, "request body");
            let mut out = Vec::new();
            rpc::jsonrpc::write_error(&mut out, None, &e);
            return json_response(e.kind.status(), out);
        }
    };
    let reply = rpc::handle_jsonrpc(&app, &body).await;
    let Some(out) = reply.body else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let mut response = json_response(StatusCode::OK, out);
    if let Some(usage) = reply.usage {
        let headers = response.headers_mut();
        headers.insert("x-fnhost-fuel-used", HeaderValue::from(usage.fuel_used));
        if let Ok(v) = HeaderValue::from_str(&usage.elapsed_us.to_string()) {
            headers.insert("x-fnhost-elapsed-us", v);
        }
    }
    response
}

/// XML-RPC: every answer, fault or not (an over-limit body included), is a 200 `text/xml`
/// `methodResponse`, as XML-RPC clients expect.
async fn xmlrpc(State(app): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let out = match body {
        Ok(body) => rpc::xmlrpc::handle_xmlrpc(&app, &body).await,
        Err(rejection) => rpc::xmlrpc::fault_response(&body_error(
            rejection,
            app.config.max_request_bytes,
            "request body",
        )),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"))],
        out,
    )
        .into_response()
}

/// An entry as the admin API shows it; `full` adds params, docs and the version history.
fn describe(entry: &Entry, full: bool) -> Value {
    let current = entry.current();
    let mut v = json!({
        "name": &*entry.name,
        "version": current.version,
        "sha256": current.sha256,
        "size": current.size,
        "deployed_at": current.deployed_at,
    });
    let methods: Vec<Value> = entry
        .functions()
        .iter()
        .map(|f| {
            let method = format!("{}.{}", entry.name, f.name);
            if full {
                json!({
                    "name": method,
                    "function": f.name,
                    "doc": f.doc,
                    "params": f.params,
                    "result": f.result,
                    "raw": f.raw,
                })
            } else {
                Value::String(method)
            }
        })
        .collect();
    match entry.unavailable() {
        Some(reason) => {
            v["status"] = json!("unavailable");
            v["error"] = json!(reason);
        }
        None => v["status"] = json!("ready"),
    }
    v["loaded"] = json!(entry.status() == "loaded");
    v["methods"] = json!(methods);
    if full {
        v["usage"] = entry.usage.to_json();
        v["limits"] = json!(entry.limits);
        let versions: Vec<Value> = entry
            .record
            .versions
            .iter()
            .map(|r| {
                json!({
                    "version": r.version,
                    "sha256": r.sha256,
                    "size": r.size,
                    "deployed_at": r.deployed_at,
                    "limits": r.limits,
                })
            })
            .collect();
        v["versions"] = json!(versions);
    }
    v
}
