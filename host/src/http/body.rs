//! Reading request bodies: at most a route's limit, within the body timeout.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::{Error, Kind};

/// Reads a request's body, at most `limit` bytes, within `timeout`. An announced
/// `Content-Length` over the limit is refused before anything is read, so a client streaming
/// a huge upload is told at once; a chunked body is cut off at the limit.
pub(super) async fn read_body(
    request: Request,
    limit: usize,
    timeout: Duration,
    what: &str,
) -> Result<Bytes, Error> {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(Error::too_large(what, limit));
    }
    read_limited(request.into_body(), limit, timeout, what).await
}

/// Reads a body up to `limit` bytes within `timeout`; more is refused once the limit is
/// reached, and a body still arriving at the timeout is `request_timeout` (408).
pub(super) async fn read_limited(
    body: Body,
    limit: usize,
    timeout: Duration,
    what: &str,
) -> Result<Bytes, Error> {
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(Error::too_large(what, limit)),
        Ok(Err(e)) => Err(Error::new(
            Kind::InvalidRequest,
            format!("cannot read the request body: {e}"),
        )),
        Err(_) => Err(Error::new(
            Kind::RequestTimeout,
            format!(
                "the {what} did not arrive within {} ms; nothing was run",
                timeout.as_millis()
            ),
        )
        .with("limit_ms", timeout.as_millis() as u64)),
    }
}

/// Reads and discards at most `limit` bytes of a body we will not use (an unauthorized
/// upload), within `timeout`, so the client has sent its request before it is answered and
/// reads the answer instead of a broken pipe. Larger or slower bodies are left unread.
pub(super) async fn drain(body: Body, limit: usize, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
}
