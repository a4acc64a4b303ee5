//! A name's versions and logs on the admin API: roll back to an earlier version, fetch the
//! exact bytes of one (to replay a call locally with `fnhost run NAME@V`), read or follow its
//! guests' log lines. Each needs deploy rights on the name: the admin token, or a deploy key
//! whose scope covers it.

use std::convert::Infallible;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::admin::{Actor, describe};
use super::body::read_body;
use crate::AppState;
use crate::error::{Error, Kind};
use crate::registry::{self, RollbackTo};

/// `{"to": 3}` (a version), `{"to": "<sha256>"}`, or nothing: the version before the current.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    to: Option<Value>,
}

fn rollback_target(body: &[u8]) -> Result<RollbackTo, Error> {
    let bad = |why: String| Error::new(Kind::InvalidRequest, why).with("param", "to");
    let parsed: RollbackBody = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| bad(format!("bad rollback request: {e}")))?
    };
    match parsed.to {
        None | Some(Value::Null) => Ok(RollbackTo::Previous),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .map(RollbackTo::Version)
            .ok_or_else(|| bad(format!("`to` {n} is not a version number"))),
        Some(Value::String(s)) => match s.parse::<u32>() {
            Ok(v) => Ok(RollbackTo::Version(v)),
            Err(_) => s
                .parse()
                .map(RollbackTo::Digest)
                .map_err(|_| bad(format!("`to` {s:?} is neither a version nor a sha256"))),
        },
        Some(other) => Err(bad(format!(
            "`to` {other} is neither a version nor a sha256"
        ))),
    }
}

pub(super) async fn rollback(
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
        let timeout = app.live.load().body_timeout;
        let body = read_body(request, 4096, timeout, "rollback request").await?;
        let to = rollback_target(&body)?;
        let entry = app.registry.rollback(&name, to).await?;
        Ok(Json(describe(&entry, true)))
    }
    .await;
    crate::audit::record(&app, &who, client, "rollback", &name, &result).await;
    result
}

/// The exact bytes of one stored version (`application/wasm`).
pub(super) async fn module(
    State(app): State<AppState>,
    actor: Result<Actor, Error>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, Error> {
    let actor = actor?;
    registry::validate_name(&name)?;
    actor.may_change(&name)?;
    let entry = app
        .registry
        .get(&name)
        .ok_or_else(|| Error::not_found(&name))?;
    let record = match version.as_str() {
        "current" => Some(entry.current()),
        v => v
            .parse::<u32>()
            .ok()
            .and_then(|v| entry.record.versions.iter().find(|r| r.version == v)),
    }
    .ok_or_else(|| {
        Error::new(Kind::NotFound, format!("`{name}` has no version {version}"))
            .with("name", name.clone())
            .with("version", version.clone())
    })?;
    let bytes = app.registry.store().module(&record.sha256).await?;
    let mut response = bytes.to_vec().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/wasm"),
    );
    if let Ok(v) = HeaderValue::from_str(&record.sha256.to_hex()) {
        headers.insert("x-fnhost-sha256", v);
    }
    headers.insert("x-fnhost-version", HeaderValue::from(record.version));
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogsQuery {
    /// Stream new lines as server-sent events after the recent ones.
    #[serde(default)]
    follow: Option<String>,
    /// At most this many recent lines (default 100).
    limit: Option<usize>,
}

/// Recent guest log lines of `name` (`{"lines": [...]}`), or with `follow=1` those and then
/// new ones as server-sent events (`event: line`; `event: lost` with how many a slow reader
/// missed).
pub(super) async fn logs(
    State(app): State<AppState>,
    actor: Result<Actor, Error>,
    Path(name): Path<String>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Response, Error> {
    let actor = actor?;
    registry::validate_name(&name)?;
    actor.may_change(&name)?;
    let Query(q) = query.map_err(|e| {
        Error::new(
            Kind::InvalidRequest,
            format!("bad log parameters (follow, limit): {}", e.body_text()),
        )
    })?;
    let entry = app
        .registry
        .get(&name)
        .ok_or_else(|| Error::not_found(&name))?;
    let follow = matches!(q.follow.as_deref(), Some("1" | "true" | "yes"));
    // Subscribed before the backlog is read, so no line falls between the two.
    let live = follow.then(|| entry.logs.follow());
    let recent = entry.logs.recent(q.limit.unwrap_or(100));
    let Some(live) = live else {
        let lines: Vec<Value> = recent.iter().map(|l| l.to_json()).collect();
        return Ok(Json(json!({ "name": name, "lines": lines })).into_response());
    };
    Ok(Sse::new(follow_stream(recent, live))
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn follow_stream(
    recent: Vec<std::sync::Arc<crate::logs::LogLine>>,
    live: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::logs::LogLine>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let last = recent.last().map_or(0, |l| l.seq);
    let backlog = stream::iter(
        recent
            .into_iter()
            .map(|l| Ok(Event::default().event("line").data(l.to_json().to_string()))),
    );
    let new = stream::unfold((live, last), |(mut live, last)| async move {
        loop {
            match live.recv().await {
                // Lines that were already in the backlog.
                Ok(line) if line.seq <= last => continue,
                Ok(line) => {
                    let event = Event::default()
                        .event("line")
                        .data(line.to_json().to_string());
                    return Some((Ok(event), (live, last)));
                }
                Err(RecvError::Lagged(lost)) => {
                    let event = Event::default()
                        .event("lost")
                        .data(json!({ "lost": lost }).to_string());
                    return Some((Ok(event), (live, last)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    futures_util::StreamExt::chain(backlog, new)
}
