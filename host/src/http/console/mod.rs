//! The web console at `/console`: server-rendered pages (escaped here, no template engine)
//! and one small script (`assets/console.js`) compiled into the binary; nothing is fetched from
//! elsewhere, so it works offline. docs/DESIGN.md (*The console*) says why this shape.
//!
//! Sign-in takes the admin token or a deploy key and starts a session ([`session`]): the pages
//! and the `/v1` API accept its cookie, and every state-changing request must carry the
//! session's CSRF token and, when the browser sends an `Origin`, come from this host. The
//! script talks to the same `/v1` API and `/rpc` any client uses, so the console can do
//! nothing the API cannot.

pub mod session;

use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::admin::Actor;
use crate::AppState;
use crate::error::{Error, Kind};
use crate::registry::Entry;
use session::{COOKIE, CSRF_HEADER, Session, Who};

const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// Content-Security-Policy of every console page: only this host's own script and style.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(functions_page))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/functions/{name}", get(function_page))
        .route("/console/deploy", get(deploy_page))
        .route("/console/keys", get(keys_page))
        .route("/console/assets/console.js", get(script))
        .route("/console/assets/console.css", get(style))
}

async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether a request's `Origin` (when the browser sent one) is this host: a cross-site page
/// may make a browser send the cookie, never an `Origin` of ours.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

fn session_of(app: &AppState, headers: &HeaderMap) -> Option<(String, Session)> {
    let cookie = headers.get(header::COOKIE)?.to_str().ok()?;
    let id = session::cookie_id(cookie)?;
    let s = app.sessions.get(id)?;
    Some((id.to_owned(), s))
}

/// The actor of a request authenticated by a console session (no `Authorization` header):
/// `None` without a live session; refused when a state-changing request lacks the session's
/// CSRF token or comes from another origin; a deploy key's session ends with the key.
pub(crate) fn session_actor(parts: &Parts, app: &AppState) -> Result<Option<Actor>, Error> {
    let Some((id, s)) = session_of(app, &parts.headers) else {
        return Ok(None);
    };
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        let token = parts
            .headers
            .get(CSRF_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !same_origin(&parts.headers) || !crate::auth::constant_time_eq(token, s.csrf.as_bytes())
        {
            return Err(cross_site());
        }
    }
    match s.who {
        Who::Admin => Ok(Some(Actor::Admin)),
        Who::Key(key_id) => match app.keys.list().into_iter().find(|k| k.id() == key_id) {
            Some(key) => Ok(Some(Actor::Key(key))),
            None => {
                app.sessions.end(&id);
                Ok(None)
            }
        },
    }
}

fn cross_site() -> Error {
    Error::new(
        Kind::Forbidden,
        "cross-site request refused: a console request that changes something must carry the \
         session's CSRF token and come from this host",
    )
    .with("reason", "csrf")
}

fn page(title: &str, csrf: Option<&str>, who: Option<&Who>, body: &str) -> Response {
    let nav = match who {
        Some(who) => {
            let who = match who {
                Who::Admin => "admin".to_owned(),
                Who::Key(id) => format!("deploy key {id}"),
            };
            format!(
                r#"<nav aria-label="Console"><a href="/console">Functions</a> <a href="/console/deploy">Deploy</a> <a href="/console/keys">Keys &amp; audit</a>
<form method="post" action="/console/logout" class="inline"><input type="hidden" name="csrf" value="{csrf}"><button type="submit">Sign out</button></form>
<span class="who">signed in as {who}</span></nav>"#,
                csrf = esc(csrf.unwrap_or("")),
                who = esc(&who),
            )
        }
        None => String::new(),
    };
    let csrf_meta = csrf.map_or(String::new(), |c| {
        format!(r#"<meta name="csrf-token" content="{}">"#, esc(c))
    });
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
{csrf_meta}<title>{title} · fnhost</title><link rel="stylesheet" href="/console/assets/console.css">
<script src="/console/assets/console.js" defer></script></head>
<body><header><a class="brand" href="/console">fnhost</a>{nav}</header>
<main id="main">{body}</main></body></html>"#,
        title = esc(title),
    );
    let mut r = (StatusCode::OK, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    r
}

/// The session of a page request (`None`: send the browser to sign in).
fn signed_in(app: &AppState, headers: &HeaderMap) -> Option<Session> {
    let (_, s) = session_of(app, headers)?;
    match &s.who {
        Who::Key(id) if !app.keys.list().iter().any(|k| k.id() == id) => None,
        _ => Some(s),
    }
}

fn to_sign_in() -> Response {
    Redirect::to("/console/login").into_response()
}

async fn login_page() -> Response {
    login_form(None)
}

fn login_form(error: Option<&str>) -> Response {
    let error = error.map_or(String::new(), |e| {
        format!(
            r#"<p class="error" role="alert" id="login-error">{}</p>"#,
            esc(e)
        )
    });
    let mut r = page(
        "Sign in",
        None,
        None,
        &format!(
            r#"<h1>Sign in</h1>{error}
<form method="post" action="/console/login" class="card">
<label for="token">Admin token or deploy key</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>
<p class="hint">The token is sent once and kept by the host as a session; this page stores nothing.</p>"#
        ),
    );
    if !error.is_empty() {
        *r.status_mut() = StatusCode::UNAUTHORIZED;
    }
    r
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(app): State<AppState>, headers: HeaderMap, form: Form<LoginForm>) -> Response {
    if !same_origin(&headers) {
        return cross_site().into_response();
    }
    let token = form.token.trim();
    let who = if app
        .admin
        .accepts(Some(format!("Bearer {token}").as_bytes()))
    {
        Some(Who::Admin)
    } else {
        match app.keys.verify(token) {
            Ok(key) if key.record.role == crate::store::Role::Deploy => {
                Some(Who::Key(key.id().to_owned()))
            }
            _ => None,
        }
    };
    let Some(who) = who else {
        return login_form(Some(
            "That is neither the admin token nor a deploy key (invoke keys cannot sign in).",
        ));
    };
    let Some((id, _)) = app.sessions.start(who) else {
        return Error::internal().into_response();
    };
    let secure = if app.tls.is_some() { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        session::TTL.as_secs()
    );
    let mut r = Redirect::to("/console").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
}

async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Form<LogoutForm>,
) -> Response {
    if let Some((id, s)) = session_of(&app, &headers) {
        if !same_origin(&headers)
            || !crate::auth::constant_time_eq(form.csrf.as_bytes(), s.csrf.as_bytes())
        {
            return cross_site().into_response();
        }
        app.sessions.end(&id);
    }
    let mut r = Redirect::to("/console/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("fnhost_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

fn us(v: Option<u64>) -> String {
    v.map_or("–".to_owned(), |v| {
        if v == u64::MAX {
            "> 30 s".to_owned()
        } else {
            format!("{v} µs")
        }
    })
}

fn status_cell(entry: &Entry) -> String {
    match entry.unavailable() {
        Some(why) => format!(r#"<span class="bad">unavailable</span>: {}"#, esc(why)),
        None => r#"<span class="ok">ready</span>"#.to_owned(),
    }
}

async fn functions_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = signed_in(&app, &headers) else {
        return to_sign_in();
    };
    let mut rows = String::new();
    for entry in app.registry.list() {
        let usage = entry.usage.snapshot();
        let calls: u64 = usage.iter().map(|u| u.calls).sum();
        let errors: u64 = usage
            .iter()
            .map(|u| u.errors.iter().map(|(_, n)| n).sum::<u64>())
            .sum();
        let fuel: u64 = usage.iter().map(|u| u.fuel_used).sum();
        let p50 = usage.iter().filter_map(|u| u.p50_us).max();
        let p99 = usage.iter().filter_map(|u| u.p99_us).max();
        let current = entry.current();
        let digest = current.sha256.to_string();
        rows.push_str(&format!(
            r#"<tr><th scope="row"><a href="/console/functions/{n}">{n}</a></th><td>{status}</td><td>{v}</td><td><code title="{digest}">{short}…</code></td><td>{calls}</td><td>{errors}</td><td>{p50}</td><td>{p99}</td><td>{fuel}</td></tr>"#,
            n = esc(&entry.name),
            status = status_cell(&entry),
            v = current.version,
            short = &digest[..12],
            p50 = us(p50),
            p99 = us(p99),
        ));
    }
    if rows.is_empty() {
        rows = r#"<tr><td colspan="9">Nothing deployed yet: <a href="/console/deploy">deploy a module</a>.</td></tr>"#.into();
    }
    page(
        "Functions",
        Some(&s.csrf),
        Some(&s.who),
        &format!(
            r#"<h1>Functions</h1><div class="scroll"><table id="functions"><caption>Deployed names, this replica's counters since start</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Version</th><th scope="col">sha256</th><th scope="col">Calls</th><th scope="col">Errors</th><th scope="col">p50 (slowest function)</th><th scope="col">p99</th><th scope="col">Fuel</th></tr></thead>
<tbody>{rows}</tbody></table></div>"#
        ),
    )
}

fn schema_type(schema: &serde_json::Value) -> &str {
    match schema.get("type").and_then(|t| t.as_str()) {
        Some(t @ ("integer" | "number" | "boolean" | "string" | "array" | "object")) => t,
        _ => "any",
    }
}

async fn function_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let Some(s) = signed_in(&app, &headers) else {
        return to_sign_in();
    };
    let Some(entry) = app.registry.get(&name) else {
        let mut r = page(
            "Not found",
            Some(&s.csrf),
            Some(&s.who),
            &format!("<h1>No function named <code>{}</code></h1>", esc(&name)),
        );
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let n = esc(&entry.name);
    let mut methods = String::new();
    for f in entry.functions() {
        let mut fields = String::new();
        for p in &f.params {
            let ty = schema_type(&p.schema);
            let id = format!("{}-{}", f.name, p.name);
            let optional = if p.required { "" } else { " (optional)" };
            let input = match ty {
                "boolean" => format!(
                    r#"<select id="{id}" name="{pn}" data-type="boolean"><option value=""></option><option>true</option><option>false</option></select>"#,
                    id = esc(&id),
                    pn = esc(&p.name)
                ),
                _ => format!(
                    r#"<input id="{id}" name="{pn}" data-type="{ty}" {req} autocomplete="off"{mode}>"#,
                    id = esc(&id),
                    pn = esc(&p.name),
                    req = if p.required { "required" } else { "" },
                    mode = if matches!(ty, "integer" | "number") {
                        r#" inputmode="decimal""#
                    } else {
                        ""
                    },
                ),
            };
            fields.push_str(&format!(
                r#"<div class="field"><label for="{id}">{pn} <small>{ty}{optional}</small></label>{input}</div>"#,
                id = esc(&id),
                pn = esc(&p.name),
            ));
        }
        methods.push_str(&format!(
            r#"<section class="card method" aria-labelledby="m-{fname}"><h3 id="m-{fname}"><code>{n}.{fname}</code></h3><pre class="doc">{doc}</pre>
<form class="try" data-method="{n}.{fname}" data-raw="{raw}">{fields}<button type="submit">Call {fname}</button>
<output class="answer" aria-live="polite"></output></form></section>"#,
            fname = esc(&f.name),
            doc = esc(&f.doc),
            raw = f.raw,
        ));
    }
    let mut history = String::new();
    let current_version = entry.current().version;
    for v in entry.record.versions.iter().rev() {
        let action = if v.version == current_version {
            "<strong>current</strong>".to_owned()
        } else {
            format!(
                r#"<button type="button" class="rollback" data-name="{n}" data-version="{v}">Roll back to version {v}</button>"#,
                v = v.version
            )
        };
        history.push_str(&format!(
            r#"<tr><td>{v}</td><td><code>{d}</code></td><td>{size}</td><td>{at}</td><td>{action}</td></tr>"#,
            v = v.version,
            d = esc(&v.sha256.to_string()[..16]),
            size = v.size,
            at = esc(&v.deployed_at),
        ));
    }
    let limits = &entry.limits;
    page(
        &entry.name,
        Some(&s.csrf),
        Some(&s.who),
        &format!(
            r#"<h1><code>{n}</code> <small>version {cv}</small></h1><p>Status: {status}. Access: {access}.</p>
<h2>Methods</h2>{methods}
<h2>Limits</h2><ul class="limits"><li>fuel {fuel}</li><li>deadline {timeout} ms</li><li>memory {mem} MiB</li></ul>
<h2>History</h2><div class="scroll"><table id="history"><thead><tr><th scope="col">Version</th><th scope="col">sha256</th><th scope="col">Bytes</th><th scope="col">Deployed</th><th scope="col">Action</th></tr></thead><tbody>{history}</tbody></table></div>
<p id="rollback-status" role="status"></p>
<h2>Live log</h2><ol id="log" class="log" data-name="{n}" aria-live="polite" aria-label="Guest log lines, newest last"></ol>"#,
            cv = current_version,
            status = status_cell(&entry),
            access = esc(&format!("{:?}", entry.current().access).to_lowercase()),
            fuel = limits.fuel,
            timeout = limits.timeout_ms,
            mem = limits.memory_bytes >> 20,
        ),
    )
}

async fn deploy_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = signed_in(&app, &headers) else {
        return to_sign_in();
    };
    page(
        "Deploy",
        Some(&s.csrf),
        Some(&s.who),
        r#"<h1>Deploy a module</h1>
<form id="deploy" class="card">
<div class="field"><label for="wasm">Module (.wasm)</label><input id="wasm" name="wasm" type="file" accept=".wasm,application/wasm" required></div>
<div class="field"><label for="name">Name</label><input id="name" name="name" required pattern="[a-z][a-z0-9_-]{0,62}" autocomplete="off"></div>
<fieldset><legend>Limits (empty: the host's defaults)</legend>
<div class="field"><label for="fuel">Fuel</label><input id="fuel" name="fuel" inputmode="numeric"></div>
<div class="field"><label for="timeout_ms">Deadline (ms)</label><input id="timeout_ms" name="timeout_ms" inputmode="numeric"></div>
<div class="field"><label for="memory_mib">Memory (MiB)</label><input id="memory_mib" name="memory_mib" inputmode="numeric"></div></fieldset>
<button type="submit">Deploy</button>
<p id="deploy-status" role="alert"></p></form>"#,
    )
}

async fn keys_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = signed_in(&app, &headers) else {
        return to_sign_in();
    };
    if s.who != Who::Admin {
        return page(
            "Keys",
            Some(&s.csrf),
            Some(&s.who),
            "<h1>Keys &amp; audit</h1><p>Only the admin token manages keys and reads the audit log.</p>",
        );
    }
    let mut keys = String::new();
    for k in app.keys.list() {
        let v = k.view();
        keys.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(k.id()),
            esc(v["name"].as_str().unwrap_or("")),
            esc(&v["role"].to_string()),
            esc(&v["scope"].to_string()),
            esc(v["expires_at"].as_str().unwrap_or("never")),
        ));
    }
    // The store reads the log forwards; the page shows the newest 50 of the first 100,000.
    let audit = app
        .registry
        .store()
        .audit(0, 100_000)
        .await
        .unwrap_or_default();
    let mut rows = String::new();
    for e in audit.iter().rev().take(50) {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.seq,
            esc(&e.time),
            esc(&e.actor),
            esc(&e.action),
            esc(&e.target),
            esc(&e.outcome),
        ));
    }
    page(
        "Keys & audit",
        Some(&s.csrf),
        Some(&s.who),
        &format!(
            r#"<h1>Keys &amp; audit</h1><h2>Keys</h2><div class="scroll"><table id="keys"><thead><tr><th scope="col">Id</th><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Scope</th><th scope="col">Expires</th></tr></thead><tbody>{keys}</tbody></table></div>
<p class="hint">Create and revoke keys with <code>fnhost keys</code> or <code>/v1/keys</code>.</p>
<h2>Audit log (latest 50)</h2><div class="scroll"><table id="audit"><thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Outcome</th></tr></thead><tbody>{rows}</tbody></table></div>"#
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(
            esc(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn only_this_hosts_origin_counts_as_same_origin() {
        let headers = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(
                header::HOST,
                HeaderValue::from_static("fnhost.example:7878"),
            );
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
            }
            h
        };
        assert!(same_origin(&headers(None)));
        assert!(same_origin(&headers(Some("https://fnhost.example:7878"))));
        assert!(!same_origin(&headers(Some("https://evil.example"))));
        assert!(!same_origin(&headers(Some(
            "https://fnhost.example:7878.evil.example"
        ))));
        assert!(!same_origin(&headers(Some("null"))));
    }
}
