//! Newline-delimited JSON-RPC 2.0 over plain TCP (`fnhost serve --tcp ADDR`), for clients like
//! the classic Python `jsonrpc` TCP transport.
//!
//! Each line is a request or a batch; each answer is one line (none for notifications). The same
//! dispatcher as HTTP runs the calls. A connection that stays silent past the idle timeout, or
//! takes longer than the request timeout to send a line, is closed; a line longer than the
//! request body limit gets an error and the connection is closed; connections past the cap get
//! a `busy` error line and are closed. So slow or malformed clients cannot hold resources.

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, timeout, timeout_at};

use super::{Listener, accept_backoff, stopped};
use crate::AppState;
use crate::context::{CallContext, Credentials, Protocol, RequestId, Transport};
use crate::error::{Error, Kind};
use crate::rpc::{handle_jsonrpc, jsonrpc};

/// Accepts connections on `listener` until `stop` turns true; each connection ends after the
/// request it is serving.
pub(super) async fn accept(listener: TcpListener, app: AppState, mut stop: watch::Receiver<bool>) {
    let max = app.config.tcp_max_connections;
    let slots = Arc::new(Semaphore::new(max));
    loop {
        let (mut stream, peer) = tokio::select! {
            () = stopped(&mut stop) => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_backoff(Listener::Tcp, &e).await;
                    continue;
                }
            },
        };
        let live = app.live.load();
        // No proxy forwards this protocol: the peer is the client.
        if !crate::net::allows(&live.allow_from, peer.ip()) {
            let line = error_line(&crate::net::refused(peer.ip().to_canonical(), "call"));
            tokio::spawn(async move {
                let _ = timeout(Duration::from_secs(1), stream.write_all(&line)).await;
            });
            continue;
        }
        let Some(guard) = app
            .connections
            .admit(Listener::Tcp, peer.ip(), live.caps, false)
        else {
            continue;
        };
        drop(live);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let line = error_line(&Error::busy(
                "tcp_connections",
                max,
                format!(
                    "the host has its maximum of {max} TCP connections open; try again shortly"
                ),
            ));
            tokio::spawn(async move {
                let _ = timeout(Duration::from_secs(1), stream.write_all(&line)).await;
                drop(guard);
            });
            continue;
        };
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match (&app.tls, app.config.tcp_tls) {
                (Some(tls), true) => {
                    // The handshake, like a request line, must finish within the request timeout.
                    let handshake = tls.acceptor(false).accept(stream);
                    match timeout(app.config.tcp_request_timeout, handshake).await {
                        Ok(Ok(tls_stream)) => connection(tls_stream, peer, &app, stop).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                _ => connection(stream, peer, &app, stop).await,
            }
            drop((slot, guard));
        });
    }
}

fn error_line(error: &Error) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    jsonrpc::write_error(&mut out, None, error);
    out.push(b'\n');
    out
}

enum Line {
    Complete,
    Eof,
    Closed,
}

async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    app: &AppState,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let config = &app.config;
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(reader);
    let max = app.config.max_request_bytes;
    let mut line = Vec::new();
    // What `rpc.auth` last accepted on this connection.
    let mut credentials = Credentials::None;
    loop {
        line.clear();
        // Wait for the next request, at most `idle`, and not past shutdown.
        let waited = tokio::select! {
            () = stopped(&mut shutdown) => return,
            waited = timeout(config.tcp_idle_timeout, reader.fill_buf()) => waited,
        };
        match waited {
            Ok(Ok([])) => return,
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return,
        }
        let deadline = Instant::now() + config.tcp_request_timeout;
        match read_line(&mut reader, &mut line, max, deadline).await {
            Ok(Line::Complete | Line::Eof) => {}
            Ok(Line::Closed) => return,
            Err(error) => {
                let answer = error_line(&error);
                let _ = timeout(config.tcp_request_timeout, writer.write_all(&answer)).await;
                return;
            }
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let answer = match auth_request(&line) {
            Some((id, secret)) => Some(authenticate(app, &mut credentials, id, secret)),
            None => {
                let ctx = CallContext {
                    transport: Transport::Tcp,
                    protocol: Protocol::JsonRpc,
                    peer: Some(peer),
                    client: Some(peer.ip().to_canonical()),
                    request_id: RequestId::generated(),
                    credentials: credentials.clone(),
                };
                handle_jsonrpc(app, &ctx, &line).await.body
            }
        };
        if let Some(mut body) = answer {
            body.push(b'\n');
            match timeout(config.tcp_request_timeout, writer.write_all(&body)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }
}

/// `{"jsonrpc":"2.0","id":…,"method":"rpc.auth","params":["fnk_…"]}` (or `{"key": "fnk_…"}`):
/// the id and the secret, when `line` is such a request.
fn auth_request(line: &[u8]) -> Option<(Option<Box<serde_json::value::RawValue>>, Option<String>)> {
    if !line.windows(8).any(|w| w == b"rpc.auth") {
        return None;
    }
    let Ok(jsonrpc::Body::Single(raw)) = jsonrpc::parse_body(line) else {
        return None;
    };
    let request = jsonrpc::parse_request(raw).ok()?;
    if request.method != "rpc.auth" {
        return None;
    }
    let secret = request.params.and_then(|p| {
        match serde_json::from_str::<serde_json::Value>(p.get()).ok()? {
            serde_json::Value::Array(a) if a.len() == 1 => a[0].as_str().map(str::to_owned),
            serde_json::Value::Object(o) => o.get("key")?.as_str().map(str::to_owned),
            _ => None,
        }
    });
    Some((request.id.map(|id| id.to_owned()), secret))
}

/// Answers `rpc.auth`: on success the connection's later requests carry the key; on failure
/// the connection keeps what it had.
fn authenticate(
    app: &AppState,
    credentials: &mut Credentials,
    id: Option<Box<serde_json::value::RawValue>>,
    secret: Option<String>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let id = id.as_deref();
    let Some(secret) = secret else {
        let e = Error::new(
            Kind::InvalidParams,
            "`rpc.auth` takes one parameter: the key, [\"fnk_…\"] or {\"key\": \"fnk_…\"}",
        )
        .with("param", "key");
        jsonrpc::write_error(&mut out, id, &e);
        return out;
    };
    match app.keys.verify(&secret) {
        Ok(key) => {
            *credentials = Credentials::Bearer(secret);
            let result = serde_json::json!({"key": key.id(), "name": key.record.name});
            let raw = serde_json::value::to_raw_value(&result).unwrap_or_default();
            jsonrpc::write_result(&mut out, id, &raw);
        }
        Err(e) => jsonrpc::write_error(&mut out, id, &e),
    }
    out
}

/// Reads up to and excluding the next `\n` into `line`, within `deadline` and `max` bytes.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
    max: usize,
    deadline: Instant,
) -> Result<Line, Error> {
    loop {
        let buf = match timeout_at(deadline, reader.fill_buf()).await {
            Ok(Ok(buf)) => buf,
            Ok(Err(_)) => return Ok(Line::Closed),
            Err(_) => {
                return Err(Error::new(
                    Kind::InvalidRequest,
                    "the request line did not arrive in time; closing",
                ));
            }
        };
        if buf.is_empty() {
            // The peer closed; a last line without a newline still counts.
            return Ok(if line.is_empty() {
                Line::Closed
            } else {
                Line::Eof
            });
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Err(Error::new(
                Kind::PayloadTooLarge,
                format!("the request line is longer than the limit of {max} bytes; closing"),
            )
            .with("limit_bytes", max));
        }
        line.extend_from_slice(&buf[..take]);
        reader.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Line::Complete);
        }
    }
}
