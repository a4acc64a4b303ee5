//! HTTP routes: the admin API under `/v1`, JSON-RPC at `/rpc`, and `/healthz`.
//!
//! Bodies are limited per route (module uploads vs. calls). Admin writes need the bearer token,
//! checked before the body is read. Handlers return [`Error`] for failures; a panic anywhere in
//! a handler is caught, counted, and answered as JSON-RPC -32603.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Value, json};
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::LimitOverrides;
use crate::context::{CallContext, Credentials, Peer, Protocol, RequestId, Transport};
use crate::error::{Error, Kind};
use crate::registry::{self, Deployed, Entry, Status};
use crate::{AppState, rpc};

/// The whole HTTP surface.
pub fn router(app: AppState) -> Router {
    let panics = app.panics.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/functions", get(list))
        .route("/v1/functions/{name}", get(show).put(deploy).delete(remove))
        .route("/rpc", post(jsonrpc))
        .route("/RPC2", post(xmlrpc))
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

/// The caller of an RPC request: its peer address (set by the server), its credentials.
fn context(request: &Request, protocol: Protocol) -> CallContext {
    CallContext {
        transport: Transport::Http,
        protocol,
        peer: request.extensions().get::<Peer>().map(|p| p.0),
        request_id: RequestId::generated(),
        credentials: request
            .headers()
            .get(header::AUTHORIZATION)
            .map_or(Credentials::None, |v| {
                Credentials::from_authorization(v.as_bytes())
            }),
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

/// Reads a request's body, at most `limit` bytes. An announced `Content-Length` over the limit
/// is refused before anything is read, so a client streaming a huge upload is told at once;
/// a chunked body is cut off at the limit.
async fn read_body(request: Request, limit: usize, what: &str) -> Result<Bytes, Error> {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(Error::too_large(what, limit));
    }
    read_limited(request.into_body(), limit, what).await
}

/// Reads a body up to `limit` bytes; more is refused once the limit is reached.
async fn read_limited(body: Body, limit: usize, what: &str) -> Result<Bytes, Error> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(Error::too_large(what, limit)),
        Err(e) => Err(Error::new(
            Kind::InvalidRequest,
            format!("cannot read the request body: {e}"),
        )),
    }
}

async fn healthz(State(app): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "modules": app.registry.list().len(),
        "calls_in_flight": app.calls_in_flight(),
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
        .ok_or_else(|| Error::not_found(&name))?;
    Ok(Json(describe(&entry, true)))
}

async fn deploy(
    State(app): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
    query: Result<Query<LimitOverrides>, QueryRejection>,
    request: Request,
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
    let body = read_body(request, app.config.max_module_bytes, "module").await?;
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

/// Usage headers of a single successful call.
static FUEL_USED: HeaderName = HeaderName::from_static("x-fnhost-fuel-used");
static ELAPSED_US: HeaderName = HeaderName::from_static("x-fnhost-elapsed-us");

async fn jsonrpc(State(app): State<AppState>, request: Request) -> Response {
    let ctx = context(&request, Protocol::JsonRpc);
    let body = match read_body(request, app.config.max_request_bytes, "request body").await {
        Ok(body) => body,
        Err(e) => {
            let mut out = Vec::new();
            rpc::jsonrpc::write_error(&mut out, None, &e);
            return json_response(e.kind.status(), out);
        }
    };
    let reply = rpc::handle_jsonrpc(&app, &ctx, &body).await;
    let Some(out) = reply.body else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let mut response = json_response(StatusCode::OK, out);
    if let Some(usage) = reply.usage {
        let headers = response.headers_mut();
        headers.insert(FUEL_USED.clone(), HeaderValue::from(usage.fuel_used));
        headers.insert(
            ELAPSED_US.clone(),
            HeaderValue::from(u64::try_from(usage.elapsed_us).unwrap_or(u64::MAX)),
        );
    }
    response
}

/// XML-RPC: every answer, fault or not (an over-limit body included), is a 200 `text/xml`
/// `methodResponse`, as XML-RPC clients expect. An over-limit body is read up to the limit
/// rather than refused on its announced length: XML-RPC clients send the whole request before
/// reading, and one answered early gets a broken pipe instead of the fault.
async fn xmlrpc(State(app): State<AppState>, request: Request) -> Response {
    let ctx = context(&request, Protocol::XmlRpc);
    let limit = app.config.max_request_bytes;
    let out = match read_limited(request.into_body(), limit, "request body").await {
        Ok(body) => rpc::xmlrpc::handle_xmlrpc(&app, &ctx, &body).await,
        Err(e) => rpc::xmlrpc::fault_response(&e),
    };
    let mut response = Response::new(Body::from(out));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
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
    v["loaded"] = json!(entry.status() == Status::Loaded);
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
