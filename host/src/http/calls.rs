//! The call routes: JSON-RPC 2.0 at `/rpc`, XML-RPC at `/RPC2`. Each builds the request's
//! [`CallContext`] (refusing a client outside `--allow-from`), reads the body within its limit
//! and timeout, and hands it to its front end in [`crate::rpc`].

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::body::{read_body, read_limited};
use super::json_response;
use crate::context::{CallContext, Credentials, Peer, Protocol, RequestId, Transport};
use crate::error::Error;
use crate::{AppState, rpc};

/// Usage headers of a single successful call.
static FUEL_USED: HeaderName = HeaderName::from_static("x-fnhost-fuel-used");
static ELAPSED_US: HeaderName = HeaderName::from_static("x-fnhost-elapsed-us");

/// The caller of an RPC request: peer, client address, credentials; `forbidden` when its
/// address is outside `--allow-from`.
fn context(app: &AppState, request: &Request, protocol: Protocol) -> Result<CallContext, Error> {
    let client = super::client_ip(app, request);
    if let Some(ip) = client
        && !crate::net::allows(&app.live.load().allow_from, ip)
    {
        return Err(crate::net::refused(ip, "call"));
    }
    Ok(CallContext {
        transport: Transport::Http,
        protocol,
        peer: request.extensions().get::<Peer>().map(|p| p.0),
        client,
        request_id: request
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generated),
        credentials: request
            .headers()
            .get(header::AUTHORIZATION)
            .map_or(Credentials::None, |v| {
                Credentials::from_authorization(v.as_bytes())
            }),
    })
}

fn jsonrpc_error(e: &Error) -> Response {
    let mut out = Vec::new();
    rpc::jsonrpc::write_error(&mut out, None, e);
    json_response(e.kind.status(), out)
}

pub(super) async fn jsonrpc(State(app): State<AppState>, request: Request) -> Response {
    let ctx = match context(&app, &request, Protocol::JsonRpc) {
        Ok(ctx) => ctx,
        Err(e) => return jsonrpc_error(&e),
    };
    let timeout = app.live.load().body_timeout;
    let body = match read_body(
        request,
        app.config.max_request_bytes,
        timeout,
        "request body",
    )
    .await
    {
        Ok(body) => body,
        Err(e) => return jsonrpc_error(&e),
    };
    let reply = rpc::handle_jsonrpc(&app, &ctx, &body).await;
    let Some(out) = reply.body else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let status = reply.refused.map_or(StatusCode::OK, |r| r.kind.status());
    let mut response = json_response(status, out);
    if let Some(ms) = reply.refused.and_then(|r| r.retry_after_ms) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(ms.div_ceil(1000)));
    }
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

/// XML-RPC: every answer, fault or not (an over-limit or late body, a refused address
/// included), is a 200 `text/xml` `methodResponse`, as XML-RPC clients expect. An over-limit
/// body is read up to the limit rather than refused on its announced length: XML-RPC clients
/// send the whole request before reading, and one answered early gets a broken pipe instead
/// of the fault.
pub(super) async fn xmlrpc(State(app): State<AppState>, request: Request) -> Response {
    let limit = app.config.max_request_bytes;
    let timeout = app.live.load().body_timeout;
    let out = match context(&app, &request, Protocol::XmlRpc) {
        Err(e) => rpc::xmlrpc::fault_response(&e),
        Ok(ctx) => match read_limited(request.into_body(), limit, timeout, "request body").await {
            Ok(body) => rpc::xmlrpc::handle_xmlrpc(&app, &ctx, &body).await,
            Err(e) => rpc::xmlrpc::fault_response(&e),
        },
    };
    let mut response = Response::new(Body::from(out));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}
