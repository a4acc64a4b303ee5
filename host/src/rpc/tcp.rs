//! Newline-delimited JSON-RPC 2.0 over plain TCP (`fnhost serve --tcp ADDR`), for clients like
//! the classic Python `jsonrpc` TCP transport.
//!
//! Each line is a request or a batch; each answer is one line (none for notifications). The same
//! dispatcher as HTTP runs the calls. A connection that stays silent past the idle timeout, or
//! takes longer than the request timeout to send a line, is closed; a line longer than the
//! request body limit gets an error and the connection is closed; connections past the cap get
//! a `busy` error line and are closed. So slow or malformed clients cannot hold resources.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, timeout, timeout_at};

use super::{handle_jsonrpc, jsonrpc};
use crate::AppState;
use crate::error::{Error, Kind};

/// Timeouts and caps of the TCP transport.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// A connection with no request for this long is closed.
    pub idle: Duration,
    /// A request line must arrive completely within this, and an answer be written within it.
    pub request: Duration,
    /// Connections open at once; more are refused with `busy`.
    pub max_connections: usize,
}

impl TcpLimits {
    pub const DEFAULT_IDLE_MS: u64 = 60_000;
    pub const DEFAULT_REQUEST_MS: u64 = 10_000;
    pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            idle: Duration::from_millis(Self::DEFAULT_IDLE_MS),
            request: Duration::from_millis(Self::DEFAULT_REQUEST_MS),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves newline-delimited JSON-RPC on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    app: AppState,
    limits: TcpLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        let mut stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let line = error_line(
                &Error::new(
                    Kind::Busy,
                    format!(
                        "the host has its maximum of {} TCP connections open; try again shortly",
                        limits.max_connections
                    ),
                )
                .with("limit", limits.max_connections),
            );
            tokio::spawn(async move {
                let _ = timeout(Duration::from_secs(1), stream.write_all(&line)).await;
            });
            continue;
        };
        let (app, shutdown) = (app.clone(), shutdown.clone());
        tokio::spawn(async move {
            connection(stream, &app, limits, shutdown).await;
            drop(slot);
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

async fn connection(
    stream: TcpStream,
    app: &AppState,
    limits: TcpLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let max = app.config.max_request_bytes;
    let mut line = Vec::new();
    loop {
        line.clear();
        // Wait for the next request, at most `idle`, and not past shutdown.
        let waited = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            waited = timeout(limits.idle, reader.fill_buf()) => waited,
        };
        match waited {
            Ok(Ok([])) => return,
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return,
        }
        match read_line(&mut reader, &mut line, max, Instant::now() + limits.request).await {
            Ok(Line::Complete | Line::Eof) => {}
            Ok(Line::Closed) => return,
            Err(error) => {
                let _ = timeout(limits.request, writer.write_all(&error_line(&error))).await;
                return;
            }
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply = handle_jsonrpc(app, &line).await;
        if let Some(mut body) = reply.body {
            body.push(b'\n');
            match timeout(limits.request, writer.write_all(&body)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }
}

/// Reads up to and excluding the next `\n` into `line`, within `deadline` and `max` bytes.
async fn read_line(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
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
