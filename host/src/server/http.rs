//! The HTTP listener: admits each connection within the caps, wraps it in its timeouts
//! ([`super::watch`]), does the TLS handshake when serving TLS, and serves it with hyper
//! (HTTP/1.1; HTTP/2 too when a TLS client asks for it by ALPN) and the application's router,
//! with the peer's address attached to every request ([`Peer`]). On shutdown a connection
//! finishes the request it is serving and closes; an idle one closes at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::Service;

use super::watch::{Activity, InFlight, Watched};
use super::{ConnectionGuard, Listener, accept_backoff, stopped};
use crate::AppState;
use crate::context::Peer;

pub(super) async fn accept(
    listener: TcpListener,
    app: AppState,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = stopped(&mut stop) => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_backoff(Listener::Http, &e).await;
                    continue;
                }
            },
        };
        let live = app.live.load();
        let exempt = crate::net::allows(&live.trusted_proxies, peer.ip())
            && !live.trusted_proxies.is_empty();
        let Some(guard) = app
            .connections
            .admit(Listener::Http, peer.ip(), live.caps, exempt)
        else {
            // Past a cap: closed at once (dropping the stream), counted and logged by `admit`.
            continue;
        };
        let activity = Activity::new(live.timeouts);
        drop(live);
        tokio::spawn(connection(
            stream,
            peer,
            app.clone(),
            router.clone(),
            activity,
            guard,
            stop.clone(),
        ));
    }
}

/// Serves one connection until it ends, times out, or shutdown closes it.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: AppState,
    router: axum::Router,
    activity: Arc<Activity>,
    _guard: ConnectionGuard,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let io = Watched::new(stream, activity.clone());
    let Some(tls) = &app.tls else {
        return serve(io, peer, router, activity, stop).await;
    };
    let handshake = tls.acceptor(true).accept(io);
    let tls_stream = tokio::select! {
        done = handshake => match done {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
        },
        why = activity.expired() => {
            tracing::debug!(%peer, why = why.as_str(), "connection cut during the TLS handshake");
            return;
        }
        () = stopped(&mut stop) => return,
    };
    serve(tls_stream, peer, router, activity, stop).await;
}

async fn serve<S>(
    io: S,
    peer: SocketAddr,
    router: axum::Router,
    activity: Arc<Activity>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = RequestService {
        router,
        peer,
        activity: activity.clone(),
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut conn = pin!(builder.serve_connection_with_upgrades(
        TokioIo::new(io),
        hyper_util::service::TowerToHyperService::new(service)
    ));
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = stopped(&mut stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            why = activity.expired() => {
                tracing::debug!(%peer, why = why.as_str(), "connection cut");
                return;
            }
        }
    }
}

/// The router, with each request marked in its connection's [`Activity`] (until its response
/// body is sent) and tagged with the peer's address.
#[derive(Clone)]
struct RequestService {
    router: axum::Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl Service<hyper::Request<Incoming>> for RequestService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        <axum::Router as Service<axum::extract::Request>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.request_started();
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(Peer(self.peer));
        let response = self.router.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| {
                Body::new(Tracked {
                    body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// A response body that keeps its request in flight until it is sent (or dropped).
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.body)
    }

    fn size_hint(&self) -> SizeHint {
        hyper::body::Body::size_hint(&self.body)
    }
}
