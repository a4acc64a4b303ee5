//! Calls: one dispatcher that every protocol front end uses, and the JSON-RPC front end.
//!
//! [`dispatch`] resolves `"<module>.<function>"`, takes a concurrency slot and runs the call;
//! it knows nothing of the wire format. [`handle_jsonrpc`] turns a `/rpc` body (single request,
//! notification or batch) into the response body. Other front ends (XML-RPC, a line-delimited
//! TCP transport) slot in beside it and share [`dispatch`].

pub mod jsonrpc;
pub mod params;
pub mod system;
pub mod xmlrpc;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::App;
use crate::context::CallContext;
use crate::error::{Error, Kind};
use crate::sandbox::CallOutput;

/// Runs `method` with `params` (raw JSON text, empty for none) for the caller `ctx`: a guest
/// function, or one of the protocol's own methods (`system.*`, `rpc.discover`).
///
/// `params` must be one well-formed JSON value without whitespace around it (or empty): what
/// the JSON-RPC parser finds and the XML-RPC front end writes. Guests rely on it (docs/ABI.md,
/// *One call*), and `#[export(raw)]` functions get the text unchecked.
pub async fn dispatch(
    app: &App,
    ctx: &CallContext,
    method: &str,
    params: &[u8],
) -> Result<CallOutput, Error> {
    let start = Instant::now();
    if let Some(answer) = builtin(app, ctx, method, params) {
        let value = answer?;
        let result = serde_json::value::to_raw_value(&value).map_err(|e| {
            tracing::error!(error = %e, method, "cannot encode a builtin answer");
            Error::internal()
        })?;
        return Ok(CallOutput {
            result,
            fuel_used: 0,
            elapsed: start.elapsed(),
            peak_memory_bytes: 0,
        });
    }
    let Some((module, function)) = method.split_once('.') else {
        app.stats.unknown_methods.fetch_add(1, Ordering::Relaxed);
        return Err(Error::new(
            Kind::MethodNotFound,
            format!("no method `{method}`: methods are named `<module>.<function>`"),
        )
        .with("method", method));
    };
    let Some(entry) = app.registry.get(module) else {
        app.stats.unknown_methods.fetch_add(1, Ordering::Relaxed);
        return Err(Error::new(
            Kind::MethodNotFound,
            format!("no method `{method}`: no module named `{module}` is deployed"),
        )
        .with("method", method)
        .with("module", module)
        .with("reason", "module_not_found"));
    };
    let Some((meta, stats)) = entry.function_stats(function) else {
        app.stats.unknown_methods.fetch_add(1, Ordering::Relaxed);
        return Err(Error::new(
            Kind::MethodNotFound,
            format!("no method `{method}`: the module `{module}` has no function `{function}`"),
        )
        .with("method", method)
        .with("module", module)
        .with("function", function)
        .with("reason", "function_not_found"));
    };
    let unavailable = |reason: String| {
        Error::new(
            Kind::ModuleUnavailable,
            format!("the module `{module}` cannot be served: {reason}"),
        )
        .with("module", module)
    };
    let admitted = admit(app, ctx, &entry, function).and_then(|()| params::check(meta, params));
    let result = match admitted {
        Err(e) => Err(e.with("module", module).with("function", function)),
        Ok(()) => match (app.call_slots.try_acquire(), entry.call_slots.try_acquire()) {
            (Ok(_total), Ok(_module)) => match app.registry.program(&entry).await {
                Ok(program) => {
                    program
                        .call(
                            &entry.name,
                            function,
                            params,
                            &entry.limits,
                            &ctx.request_id,
                            Some(&entry.log_sink),
                        )
                        .await
                }
                Err(reason) => Err(unavailable(reason)),
            },
            (Err(_), _) => Err(Error::busy(
                "host",
                app.config.max_concurrent_calls,
                format!(
                    "the host is running its maximum of {} calls; try again shortly",
                    app.config.max_concurrent_calls
                ),
            )),
            (_, Err(_)) => Err(Error::busy(
                "module",
                app.config.max_calls_per_module,
                format!(
                    "the module `{module}` is running its maximum of {} calls; try again shortly",
                    app.config.max_calls_per_module
                ),
            )
            .with("module", module)),
        },
    };
    let (fuel, elapsed) = match &result {
        Ok(out) => (out.fuel_used, out.elapsed.as_micros()),
        Err(e) => (
            e.data["fuel_used"].as_u64().unwrap_or(0),
            start.elapsed().as_micros(),
        ),
    };
    let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
    let kind = result.as_ref().err().map(|e| e.kind);
    match kind {
        Some(Kind::Busy) => app.stats.busy.fetch_add(1, Ordering::Relaxed),
        Some(Kind::RateLimited) => app.stats.rate_limited.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    stats.record(fuel, elapsed, kind);
    result
}

/// Whether `ctx` may call `function` of `entry` now: its client address within the function's
/// `allow_from`, an invoke key covering it for a `key` function, and within its rate (the
/// key's, or its address's for a public function).
fn admit(
    app: &App,
    ctx: &CallContext,
    entry: &crate::registry::Entry,
    function: &str,
) -> Result<(), Error> {
    let module = &*entry.name;
    let version = entry.current();
    if let Some(ip) = ctx.client
        && !crate::net::allows(&version.allow_from, ip)
    {
        return Err(crate::net::refused(ip, &format!("call `{module}`")));
    }
    match version.access {
        crate::store::Access::Key => {
            let key = app
                .keys
                .authorize_call(ctx.credentials.secret(), module, function)?;
            key.take().map_err(|wait| {
                crate::ratelimit::limited(
                    wait,
                    &format!("the key `{}`", key.id()),
                    key.record.rate_per_s.unwrap_or(0),
                )
                .with("key", key.id())
            })
        }
        crate::store::Access::Public => match (app.public_rate.load().as_ref(), ctx.client) {
            (Some(limiter), Some(ip)) => limiter.take(ip).map_err(|wait| {
                crate::ratelimit::limited(wait, &format!("the client address {ip}"), limiter.rate())
            }),
            _ => Ok(()),
        },
    }
}

/// The protocol's own methods; `None` for anything else.
fn builtin(
    app: &App,
    ctx: &CallContext,
    method: &str,
    params: &[u8],
) -> Option<Result<Value, Error>> {
    let method_param = || -> Result<String, Error> {
        let bad = || {
            Error::new(
                Kind::InvalidParams,
                format!("`{method}` takes one parameter: a method name, e.g. [\"math.add\"]"),
            )
            .with("param", "method")
        };
        match serde_json::from_slice::<Value>(params).map_err(|_| bad())? {
            Value::Array(a) if a.len() == 1 => a[0].as_str().map(str::to_owned).ok_or_else(bad),
            Value::Object(o) if o.len() == 1 => o
                .get("method")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(bad),
            _ => Err(bad()),
        }
    };
    Some(match method {
        "system.listMethods" => Ok(Value::from(system::list_methods(app, ctx))),
        "system.methodHelp" => {
            method_param().and_then(|m| system::method_help(app, ctx, &m).map(Value::from))
        }
        "system.methodSignature" => method_param()
            .and_then(|m| Ok(serde_json::json!(system::method_signature(app, ctx, &m)?))),
        "rpc.discover" => Ok(system::discover(app, ctx)),
        "system.multicall" => Err(Error::new(
            Kind::MethodNotFound,
            "`system.multicall` is answered on XML-RPC (/RPC2); JSON-RPC clients send a batch",
        )
        .with("method", method)),
        "rpc.auth" => Err(Error::new(
            Kind::MethodNotFound,
            "`rpc.auth` is answered on the TCP transport; over HTTP send the key as \
             `Authorization: Bearer fnk_…`",
        )
        .with("method", method)),
        _ if method.starts_with("rpc.") => Err(Error::new(
            Kind::MethodNotFound,
            format!("no method `{method}`: names starting with `rpc.` are reserved"),
        )
        .with("method", method)),
        _ => return None,
    })
}

/// The bytes of answers a batch (or an XML-RPC multicall) may still hold. Members take from it
/// as they finish; a member whose answer does not fit is answered `payload_too_large` instead,
/// so however many large results a batch asks for, the host holds at most the limit (plus the
/// answers being produced at that moment, each at most `max_result_bytes`).
#[derive(Debug)]
pub struct ResponseBudget {
    limit: usize,
    left: AtomicUsize,
}

impl ResponseBudget {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            left: AtomicUsize::new(limit),
        }
    }

    /// Takes `len` bytes for one member's answer, or says why they cannot be had.
    pub fn take(&self, len: usize) -> Result<(), Error> {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(len)
            })
            .map(|_| ())
            .map_err(|_| {
                Error::new(
                    Kind::PayloadTooLarge,
                    format!(
                        "this answer ({len} bytes) would take the batch's answers past their \
                         limit of {} bytes; send fewer or smaller calls per batch",
                        self.limit
                    ),
                )
                .with("limit_bytes", self.limit)
                .with("answer_bytes", len)
            })
    }
}

/// Usage of a single call, for response headers.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub fuel_used: u64,
    pub elapsed_us: u128,
}

/// A `/rpc` answer: the body (none when every request was a notification).
#[derive(Debug, Default)]
pub struct Reply {
    pub body: Option<Vec<u8>>,
    /// Set for a single successful call.
    pub usage: Option<Usage>,
    /// Set for a single call refused for who the caller is (`unauthorized`, `forbidden`,
    /// `rate_limited`): HTTP answers with the kind's status (and `Retry-After`).
    pub refused: Option<Refused>,
}

/// Why a single call was refused, for the HTTP status of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub kind: Kind,
    pub retry_after_ms: Option<u64>,
}

impl Refused {
    fn of(e: &Error) -> Option<Self> {
        matches!(
            e.kind,
            Kind::Unauthorized | Kind::Forbidden | Kind::RateLimited
        )
        .then(|| Refused {
            kind: e.kind,
            retry_after_ms: e.data["retry_after_ms"].as_u64(),
        })
    }
}

/// What one request of a body came to.
enum Outcome {
    Done(Option<Usage>),
    Refused(Refused),
}

/// Handles a JSON-RPC 2.0 body from the caller `ctx`: a request, a notification, or a batch.
pub async fn handle_jsonrpc(app: &App, ctx: &CallContext, body: &[u8]) -> Reply {
    let parsed = match jsonrpc::parse_body(body) {
        Ok(parsed) => parsed,
        Err(e) => {
            let mut out = Vec::with_capacity(128);
            jsonrpc::write_error(&mut out, None, &e);
            return Reply {
                body: Some(out),
                ..Reply::default()
            };
        }
    };
    match parsed {
        jsonrpc::Body::Single(raw) => {
            let mut out = Vec::with_capacity(128);
            let outcome = one(app, ctx, raw, &mut out, None).await;
            let (usage, refused) = match outcome {
                Outcome::Done(usage) => (usage, None),
                Outcome::Refused(r) => (None, Some(r)),
            };
            Reply {
                body: (!out.is_empty()).then_some(out),
                usage,
                refused,
            }
        }
        jsonrpc::Body::Batch(items) => {
            let mut out = Vec::with_capacity(64 * items.len());
            if items.len() > app.config.max_batch_len {
                let e = Error::new(
                    Kind::InvalidRequest,
                    format!(
                        "the batch has {} requests; at most {} are allowed",
                        items.len(),
                        app.config.max_batch_len
                    ),
                )
                .with("limit", app.config.max_batch_len);
                jsonrpc::write_error(&mut out, None, &e);
                return Reply {
                    body: Some(out),
                    ..Reply::default()
                };
            }
            let budget = ResponseBudget::new(app.config.max_batch_response_bytes);
            let budget = &budget;
            let replies = futures_util::future::join_all(items.into_iter().map(|raw| async move {
                // Room for a small answer, so most members write theirs without growing it.
                let mut one_out = Vec::with_capacity(64);
                one(app, ctx, raw, &mut one_out, Some(budget)).await;
                one_out
            }))
            .await;
            for reply in replies.into_iter().filter(|r| !r.is_empty()) {
                out.push(if out.is_empty() { b'[' } else { b',' });
                out.extend_from_slice(&reply);
            }
            if out.is_empty() {
                return Reply::default();
            }
            out.push(b']');
            Reply {
                body: Some(out),
                ..Reply::default()
            }
        }
    }
}

/// Runs one request value, appending its response (nothing for a notification) to `out`; a
/// batch member's response must fit in the batch's `budget`.
async fn one(
    app: &App,
    ctx: &CallContext,
    raw: &RawValue,
    out: &mut Vec<u8>,
    budget: Option<&ResponseBudget>,
) -> Outcome {
    let request = match jsonrpc::parse_request(raw) {
        Ok(request) => request,
        Err((id, e)) => {
            jsonrpc::write_error(out, id, &e);
            return Outcome::Done(None);
        }
    };
    let params = request.params.map_or(&b""[..], |p| p.get().as_bytes());
    let result = dispatch(app, ctx, &request.method, params).await;
    let Some(id) = request.id else {
        return Outcome::Done(None);
    };
    let start = out.len();
    let outcome = match result {
        Ok(output) => {
            jsonrpc::write_result(out, Some(id), &output.result);
            Outcome::Done(Some(Usage {
                fuel_used: output.fuel_used,
                elapsed_us: output.elapsed.as_micros(),
            }))
        }
        Err(e) => {
            jsonrpc::write_error(out, Some(id), &e);
            Refused::of(&e).map_or(Outcome::Done(None), Outcome::Refused)
        }
    };
    if let Some(Err(e)) = budget.map(|b| b.take(out.len() - start)) {
        out.truncate(start);
        jsonrpc::write_error(out, Some(id), &e);
    }
    outcome
}
