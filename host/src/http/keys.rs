//! Keys and the audit log on the admin API (admin token only): `POST/GET /v1/keys`,
//! `DELETE /v1/keys/{id}`, `GET /v1/audit`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::Admin;
use super::body::read_body;
use crate::AppState;
use crate::error::{Error, Kind};

pub(super) async fn create_key(
    State(app): State<AppState>,
    admin: Result<Admin, Error>,
    request: Request,
) -> Result<(StatusCode, Json<Value>), Error> {
    let client = super::client_ip(&app, &request);
    let who = match &admin {
        Ok(_) => crate::audit::Who::admin(),
        Err(_) => crate::audit::Who::anonymous(),
    };
    let mut target = String::from("-");
    let result = async {
        admin?;
        let timeout = app.live.load().body_timeout;
        let body = read_body(request, 64 << 10, timeout, "key request").await?;
        let new: crate::keys::NewKey = serde_json::from_slice(&body)
            .map_err(|e| Error::new(Kind::InvalidRequest, format!("bad key request: {e}")))?;
        let (key, secret) = app.keys.create(new).await?;
        target = key.id().to_owned();
        let mut v = key.view();
        v["secret"] = json!(secret);
        Ok((StatusCode::CREATED, Json(v)))
    }
    .await;
    crate::audit::record(&app, &who, client, "key_create", &target, &result).await;
    result
}

pub(super) async fn list_keys(State(app): State<AppState>, _admin: Admin) -> Json<Value> {
    let keys: Vec<Value> = app.keys.list().iter().map(|k| k.view()).collect();
    Json(json!({ "keys": keys }))
}

pub(super) async fn revoke_key(
    State(app): State<AppState>,
    admin: Result<Admin, Error>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<Value>, Error> {
    let client = super::client_ip(&app, &request);
    let who = match &admin {
        Ok(_) => crate::audit::Who::admin(),
        Err(_) => crate::audit::Who::anonymous(),
    };
    let result = async {
        admin?;
        match app.keys.revoke(&id).await? {
            Some(record) => Ok(Json(
                json!({ "id": record.id, "name": record.name, "revoked": true }),
            )),
            None => {
                Err(Error::new(Kind::NotFound, format!("no key `{id}`")).with("key", id.clone()))
            }
        }
    }
    .await;
    crate::audit::record(&app, &who, client, "key_revoke", &id, &result).await;
    result
}

/// `GET /v1/audit?since=SEQ&limit=N`: entries numbered above `since`, oldest first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    #[serde(default)]
    since: u64,
    limit: Option<usize>,
}

pub(super) async fn audit(
    State(app): State<AppState>,
    _admin: Admin,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Value>, Error> {
    let Query(q) = query.map_err(|e| {
        Error::new(
            Kind::InvalidRequest,
            format!("bad audit parameters (since, limit): {}", e.body_text()),
        )
    })?;
    let limit = q.limit.unwrap_or(100).min(10_000);
    let entries = app.registry.store().audit(q.since, limit).await?;
    Ok(Json(json!({ "entries": entries })))
}
