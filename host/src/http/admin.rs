//! The admin API under `/v1`: list, show, deploy, remove; keys and the audit log. Every route
//! needs a client address inside `--admin-allow-from`. Deploys and removals need the admin
//! token or a deploy key whose scope covers the name (asking for limits within its caps); keys
//! and the audit log need the admin token. Every write, done or refused, goes to the audit log.

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
use crate::context::Credentials;
use crate::error::{Error, Kind};
use crate::keys::Key;
use crate::registry::{self, DeployOptions, Deployed, Entry, Status};
use crate::store::Role;

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

/// Who is doing an admin action.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The admin token: may do everything.
    Admin,
    /// A deploy key: deploys, removes and rolls back the names its scope covers.
    Key(Arc<Key>),
}

impl Actor {
    pub(super) fn audit(&self) -> crate::audit::Who {
        match self {
            Actor::Admin => crate::audit::Who::admin(),
            Actor::Key(k) => crate::audit::Who::key(k),
        }
    }

    /// Who the audit log names for an attempt: the actor, or `anonymous` when the
    /// credentials were refused.
    pub(super) fn audit_of(actor: &Result<Actor, Error>) -> crate::audit::Who {
        actor
            .as_ref()
            .map_or_else(|_| crate::audit::Who::anonymous(), Actor::audit)
    }

    /// Refuses a deploy key whose scope does not cover `name`.
    pub(super) fn may_change(&self, name: &str) -> Result<(), Error> {
        match self {
            Actor::Admin => Ok(()),
            Actor::Key(k) if k.covers_name(name) => Ok(()),
            Actor::Key(k) => Err(Error::new(
                Kind::Forbidden,
                format!(
                    "the key `{}` may not deploy, remove or roll back `{name}`",
                    k.id()
                ),
            )
            .with("reason", "out_of_scope")
            .with("key", k.id())
            .with("name", name)),
        }
    }
}

fn not_admin() -> Error {
    Error::new(
        Kind::Unauthorized,
        "missing or wrong admin token: send `Authorization: Bearer <token>`",
    )
}

/// The actor of a request: the admin token, or a valid deploy key. Extracting it fails with
/// 401 before the body is read.
impl FromRequestParts<AppState> for Actor {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Error> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        if app.admin.accepts(given) {
            return Ok(Actor::Admin);
        }
        // No credentials: a console session (its cookie, and for a change its CSRF token).
        if given.is_none()
            && let Some(actor) = super::console::session_actor(parts, app)?
        {
            return Ok(actor);
        }
        let secret = given.and_then(|h| {
            Credentials::from_authorization(h)
                .secret()
                .map(str::to_owned)
        });
        match secret.map(|s| app.keys.verify(&s)) {
            Some(Ok(key)) if key.record.role == Role::Deploy => Ok(Actor::Key(key)),
            Some(Ok(_)) => Err(not_admin().with("reason", "not_a_deploy_key")),
            _ => Err(not_admin()),
        }
    }
}

/// Proof of the admin token itself (key management, the audit log).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Error> {
        match Actor::from_request_parts(parts, app).await? {
            Actor::Admin => Ok(Admin),
            Actor::Key(k) => Err(Error::new(
                Kind::Forbidden,
                "only the admin token manages keys and reads the audit log",
            )
            .with("reason", "admin_only")
            .with("key", k.id())),
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
    /// `public` or `key` (default: `--default-access`).
    access: Option<String>,
}

/// Every name the caller may call (the admin token and deploy keys: every name).
pub(super) async fn list(
    State(app): State<AppState>,
    actor: Result<Actor, Error>,
    request: Request,
) -> Json<Value> {
    let client = super::client_ip(&app, &request);
    let secret = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|h| Credentials::from_authorization(h.as_bytes()));
    let secret = secret.as_ref().and_then(Credentials::secret);
    let functions: Vec<Value> = app
        .registry
        .list()
        .iter()
        .filter(|e| actor.is_ok() || crate::rpc::system::may_call(&app, secret, client, e, None))
        .map(|e| describe(e, false))
        .collect();
    Json(json!({ "functions": functions }))
}

/// One name, if the caller may call it (the admin token and deploy keys: any name).
pub(super) async fn show(
    State(app): State<AppState>,
    actor: Result<Actor, Error>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, Error> {
    registry::validate_name(&name)?;
    let client = super::client_ip(&app, &request);
    let credentials = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|h| Credentials::from_authorization(h.as_bytes()));
    let secret = credentials.as_ref().and_then(Credentials::secret);
    let entry = app
        .registry
        .get(&name)
        .filter(|e| actor.is_ok() || crate::rpc::system::may_call(&app, secret, client, e, None))
        .ok_or_else(|| Error::not_found(&name))?;
    Ok(Json(describe(&entry, true)))
}

pub(super) async fn deploy(
    State(app): State<AppState>,
    actor: Result<Actor, Error>,
    Path(name): Path<String>,
    query: Result<Query<DeployQuery>, QueryRejection>,
    request: Request,
) -> Result<(StatusCode, Json<Value>), Error> {
    let body_timeout = app.live.load().body_timeout;
    let client = super::client_ip(&app, &request);
    let who = Actor::audit_of(&actor);
    let result = async {
        let actor = match actor {
            Ok(actor) => actor,
            Err(e) => {
                // Take the upload off the wire (bounded) before answering, so the client reads
                // the 401 instead of finding its write cut short.
                drain(
                    request.into_body(),
                    app.config.max_module_bytes,
                    body_timeout,
                )
                .await;
                return Err(e);
            }
        };
        registry::validate_name(&name)?;
        actor.may_change(&name)?;
        let Query(query) = query.map_err(|e| {
            Error::new(
                Kind::BadLimits,
                format!(
                    "bad deploy parameters (fuel, timeout_ms, memory_mib, allow_from, access): {}",
                    e.body_text()
                ),
            )
        })?;
        let options = deploy_options(&app, &actor, query)?;
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
    .await;
    crate::audit::record(&app, &who, client, "deploy", &name, &result).await;
    result
}

/// The deploy's options: its address rule checked to lie within the host's, its limits within
/// a deploy key's caps.
fn deploy_options(
    app: &AppState,
    actor: &Actor,
    query: DeployQuery,
) -> Result<DeployOptions, Error> {
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
    let access = match &query.access {
        None => app.live.load().default_access,
        Some(a) => a.parse().map_err(|why: String| {
            Error::new(Kind::BadLimits, format!("access: {why}")).with("limit", "access")
        })?,
    };
    let mut limits = LimitOverrides {
        fuel: query.fuel,
        timeout_ms: query.timeout_ms,
        memory_mib: query.memory_mib,
    };
    if let Actor::Key(key) = actor {
        let defaults = app.registry.defaults();
        let r = &key.record;
        cap(key, "fuel", &mut limits.fuel, defaults.fuel, r.max_fuel)?;
        cap(
            key,
            "timeout_ms",
            &mut limits.timeout_ms,
            defaults.timeout_ms,
            r.max_timeout_ms,
        )?;
        cap(
            key,
            "memory_mib",
            &mut limits.memory_mib,
            defaults.memory_bytes >> 20,
            r.max_memory_mib,
        )?;
    }
    Ok(DeployOptions {
        limits,
        allow_from,
        access,
        deployer: actor.audit().actor,
    })
}

/// Holds a deploy key's request for one limit to its cap: asking for more is `forbidden`; not
/// asking, when the host default is above the cap, gets the cap.
fn cap(
    key: &Key,
    limit: &str,
    asked: &mut Option<u64>,
    default: u64,
    max: Option<u64>,
) -> Result<(), Error> {
    let Some(max) = max else { return Ok(()) };
    match *asked {
        Some(v) if v > max => Err(Error::new(
            Kind::Forbidden,
            format!(
                "the key `{}` may ask for {limit} up to {max}, not {v}",
                key.id()
            ),
        )
        .with("reason", "above_key_cap")
        .with("limit", limit)
        .with("requested", v)
        .with("maximum", max)),
        None if default > max => {
            *asked = Some(max);
            Ok(())
        }
        _ => Ok(()),
    }
}

pub(super) async fn remove(
    State(app): State<AppState>,
    actor: Result<Actor, Error>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, Error> {
    let client = super::client_ip(&app, &request);
    let who = Actor::audit_of(&actor);
    let result = async {
        let actor = actor?;
        registry::validate_name(&name)?;
        actor.may_change(&name)?;
        let entry = app.registry.remove(&name).await?;
        Ok(Json(json!({
            "name": &*entry.name,
            "removed": true,
            "versions": entry.record.versions.len(),
        })))
    }
    .await;
    crate::audit::record(&app, &who, client, "remove", &name, &result).await;
    result
}

/// An entry as the admin API shows it; `full` adds params, docs and the version history.
pub(super) fn describe(entry: &Entry, full: bool) -> Value {
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
    v["access"] = json!(current.access);
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
                version["access"] = json!(r.access);
                version
            })
            .collect();
        v["versions"] = json!(versions);
    }
    v
}
