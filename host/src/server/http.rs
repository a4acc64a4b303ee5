//! The HTTP listener: accepts connections and serves each with hyper's HTTP/1.1 connection
//! driver and the application's router ([`crate::app`]), with the peer's address attached to
//! every request ([`Peer`](crate::context::Peer)). On shutdown, a connection finishes the
//! request it is serving and closes; an idle one closes at once.

use std::pin::pin;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use super::{Listener, accept_backoff, stopped};
use crate::AppState;
use crate::context::Peer;

pub(super) async fn accept(listener: TcpListener, app: AppState, mut stop: watch::Receiver<bool>) {
    let router = crate::app(app.clone());
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
        let guard = app.connections.track(Listener::Http);
        let service = router
            .clone()
            .map_request(move |request: hyper::Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(Peer(peer));
                request
            });
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let builder = hyper::server::conn::http1::Builder::new();
            let mut conn = pin!(
                builder
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .with_upgrades()
            );
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
                }
            }
        });
    }
}
