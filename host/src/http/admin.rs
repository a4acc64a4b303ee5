//! The admin API under `/v1`: list, show, deploy, remove. Writes need the admin token, and
//! every route needs a client address inside `--admin-allow-from`.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{drain, read_body};
use crate::AppState;
use crate::config::LimitOverrides;
use crate::error::{Error, Kind};
use crate::registry::{self, DeployOptions, Deployed, Entry, Status};

/// Refuses (403) a client whose address is outside `--admin-allow-from`.
pub(super) async fn addresses(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(ip) = super::client_ip(&app, &request)
        && !crate::net::allows(&app.live.load().admin_allow_from, ip)
    {
        return crate::net::refused(ip, "use the admin API").into_response();
    }
    next.run(request).await
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

/// What a deploy may ask for in its query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeployQuery {
    fuel: Option<u64>,
    timeout_ms: Option<u64>,
    memory_mib: Option<u64>,
    /// CIDRs, comma-separated: who may call this function (within the host's `--allow-from`).
    allow_from: Option<String>,
}

pub(super) async fn list(State(app): State<AppState>) -> Json<Value> {
    let functions: Vec<Value> = app
        .registry
        .list()
        .iter()
        .map(|e| describe(e, false))
        .collect();
    Json(json!({ "functions": functions }))
}

pub(super) async fn show(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Error> {
    registry::validate_name(&name)?;
    let entry = app
        .registry
        .get(&name)
        .ok_or_else(|| Error::not_found(&name))?;
    Ok(Json(describe(&entry, true)))
}

pub(super) async fn deploy(
    State(app): State<AppState>,
    admin: Result<Admin, Error>,
    Path(name): Path<String>,
    query: Result<Query<DeployQuery>, QueryRejection>,
    request: Request,
) -> Result<(StatusCode, Json<Value>), Error> {
    let body_timeout = app.live.load().body_timeout;
    if let Err(e) = admin {
        // Take the upload off the wire (bounded) before answering, so the client reads the 401
        // instead of finding its write cut short.
        drain(
            request.into_body(),
            app.config.max_module_bytes,
            body_timeout,
        )
        .await;
        return Err(e);
    }
    registry::validate_name(&name)?;
    let Query(query) = query.map_err(|e| {
        Error::new(
            Kind::BadLimits,
            format!(
                "bad deploy parameters (fuel, timeout_ms, memory_mib, allow_from): {}",
                e.body_text()
            ),
        )
    })?;
    let options = deploy_options(&app, query)?;
    let body = read_body(request, app.config.max_module_bytes, body_timeout, "module").await?;
    match app
        .registry
        .deploy(&name, Arc::from(&body[..]), options)
        .await?
    {
        Deployed::Created(entry) => Ok((StatusCode::CREATED, Json(describe(&entry, true)))),
        Deployed::Unchanged(entry) => Ok((StatusCode::OK, Json(describe(&entry, true)))),
    }
}

/// The deploy's options, its address rule checked to lie within the host's.
fn deploy_options(app: &AppState, query: DeployQuery) -> Result<DeployOptions, Error> {
    let bad = |message: String| Error::new(Kind::BadLimits, message).with("limit", "allow_from");
    let allow_from = match &query.allow_from {
        None => Vec::new(),
        Some(list) => {
            let rule = crate::net::parse_rule("allow_from", std::slice::from_ref(list))
                .map_err(|(_, why)| bad(format!("allow_from: {why}")))?;
            if rule.is_empty() {
                return Err(bad(
                    "allow_from is empty; leave it out to allow the host's callers".into(),
                ));
            }
            let host = &app.live.load().allow_from;
            if !crate::net::within(&rule, host) {
                return Err(bad(format!(
                    "allow_from {list} is wider than the host's --allow-from ({})",
                    host.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            rule
        }
    };
    Ok(DeployOptions {
        limits: LimitOverrides {
            fuel: query.fuel,
            timeout_ms: query.timeout_ms,
            memory_mib: query.memory_mib,
        },
        allow_from,
    })
}

pub(super) async fn remove(
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
    if !current.allow_from.is_empty() {
        v["allow_from"] = json!(current.allow_from);
    }
    if full {
        v["usage"] = entry.usage.to_json();
        v["limits"] = json!(entry.limits);
        let versions: Vec<Value> = entry
            .record
            .versions
            .iter()
            .map(|r| {
                let mut version = json!({
                    "version": r.version,
                    "sha256": r.sha256,
                    "size": r.size,
                    "deployed_at": r.deployed_at,
                    "limits": r.limits,
                });
                if !r.allow_from.is_empty() {
                    version["allow_from"] = json!(r.allow_from);
                }
                version
            })
            .collect();
        v["versions"] = json!(versions);
    }
    v
}
